"""The two intensity protocols every evaluation reports, because they can rank methods differently.

The real target is always normalized by its 0.5 and 99.5 percentiles inside the brain to [0, 1]
(:func:`~cones.evaluation.methods.real_on_unit_scale`); what differs is how a prediction is put
beside it:

- **model scale** (``model_scale``): the prediction is taken as it is on the unit scale (a model's
  output divided by its output scale; copy-T1 the normalized T1; mean imputation the training
  mean; the linear map its prediction). A global intensity error counts: this is the scale the
  models are trained on, and what a reader of the synthesized file sees.
- **own percentiles** (``own_percentiles``, the paper's protocol): the prediction and the real
  target are each re-normalized by their own 0.5 and 99.5 percentiles inside the brain, which
  forgives any global brightness or contrast error and scores the structure.

On the real held-out case the two disagree: the linear baseline beats the bundled model on the
model scale and loses to it on its own percentiles (README, "Evaluation and baselines").
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np

from cones.metrics import normalize_by_own_percentiles

__all__ = ["IntensityProtocol", "on_protocol"]


class IntensityProtocol(StrEnum):
    """How predictions and the real target are put on one scale before they are scored."""

    MODEL_SCALE = "model_scale"
    OWN_PERCENTILES = "own_percentiles"

    @property
    def title(self) -> str:
        """The protocol's name in reports."""
        if self is IntensityProtocol.MODEL_SCALE:
            return "Model scale"
        return "Own percentiles (the paper's protocol)"

    @property
    def description(self) -> str:
        """One line for reports: what the scores of this protocol compare."""
        if self is IntensityProtocol.MODEL_SCALE:
            return (
                "the prediction as it is (a model's output divided by its output scale) against the real target "
                "normalized by its 0.5-99.5 brain percentiles to [0, 1]"
            )
        return "prediction and real target each normalized by its own 0.5-99.5 percentiles inside the brain to [0, 1]"


def on_protocol(volume: np.ndarray, brain: np.ndarray, protocol: IntensityProtocol) -> np.ndarray:
    """A volume on the unit scale (prediction or real target) as ``protocol`` scores it.

    Args:
        volume: (z, y, x) on [0, 1], 0 outside the brain.
        brain: the bool brain mask whose percentiles the own-percentile protocol uses.
        protocol: the protocol.
    """
    if protocol is IntensityProtocol.MODEL_SCALE:
        return volume
    return normalize_by_own_percentiles(volume, np.asarray(brain, dtype=bool))
