"""What is compared: trained models and the no-training baselines, all producing [0, 1] volumes.

Every method turns one case into a prediction of the target on the scale the metrics use: the
model's output scale divided by itself, so the real target (passed through the same normalization
and output mapping, see :func:`real_on_unit_scale`) spans [0, 1] and a global intensity error is
penalised rather than normalised away.

The trivial methods are the floor a model has to clear: *copy a source* (T1 for T1ce: the anatomy
is right, only the contrast agent is missing), *zero imputation* (the paper's downstream baseline:
the missing channel is left empty) and *mean imputation* (the brain filled with the mean intensity
the target has in other cases). The learned-linear map of the sources (:mod:`cones.evaluation.linear`)
is the cheapest method that learns anything: what a network must beat to show its spatial context helps.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from cones.checkpoint import LoadedModel
from cones.config import NormalizationConfig
from cones.data import denormalize_volume, normalize_volume
from cones.inference import SynthesisOptions, synthesize_volume, synthesize_volume_with_uncertainty
from cones.sequences import Sequence

__all__ = [
    "CaseVolumes",
    "CopySource",
    "MeanImputation",
    "Method",
    "ModelMethod",
    "ZeroImputation",
    "real_on_unit_scale",
]


@dataclass(frozen=True)
class CaseVolumes:
    """One evaluation case, in canonical orientation ``(z, y, x)``.

    Attributes:
        case_id: the case folder's name.
        sources: raw scanner-intensity source volumes.
        target: the real target on the unit scale (see :func:`real_on_unit_scale`).
        mask: the brain (foreground of the sources).
        labels: the tumour label map, or ``None`` when the case has none.
        target_foreground: where the real target is foreground, or ``None``: the sources' foreground.
        raw_target: the real target in scanner units, or ``None``; scores that normalize each volume
            their own way (BraSyn's SSIM, :mod:`cones.metrics.brasyn`) start from it.
    """

    case_id: str
    sources: Mapping[Sequence, np.ndarray]
    target: np.ndarray
    mask: np.ndarray
    labels: np.ndarray | None
    target_foreground: np.ndarray | None = None
    raw_target: np.ndarray | None = None

    @property
    def target_brain(self) -> np.ndarray:
        """The target's foreground inside the mask: where the real target exists.

        The brain of the uncertainty calibration (:mod:`cones.trust.calibration`) and of the
        learned-linear fit (:mod:`cones.evaluation.linear`).
        """
        return self.mask if self.target_foreground is None else self.mask & self.target_foreground


def real_on_unit_scale(volume: np.ndarray, mask: np.ndarray, normalization: NormalizationConfig) -> np.ndarray:
    """A real volume normalized as the models' targets were, on [0, 1] (background 0).

    The models were trained to match the normalized target, and their outputs are put on
    ``[0, output_scale]`` by :func:`~cones.data.denormalize_volume`; the real target goes through the
    same two maps, so the comparison measures the synthesis, not a difference of intensity scales.
    """
    normalized = normalize_volume(volume, mask, normalization)
    return denormalize_volume(normalized, mask, normalization) / normalization.output_scale


class Method(Protocol):
    """Anything that predicts a case's target on the unit scale."""

    name: str
    description: str

    def predict(self, case: CaseVolumes) -> np.ndarray:
        """The predicted target volume, of the case's shape, in [0, 1]."""
        ...


class ModelMethod:
    """A trained generator (CoNeS or a baseline), run slice by slice as ``cones synthesize`` does.

    Args:
        name: the method's name in tables.
        model: the loaded model; its card gives sources, target, normalization and slice axis.
        options: device and batch size.
    """

    def __init__(self, name: str, model: LoadedModel, options: SynthesisOptions) -> None:
        card = model.card
        self.name, self.model = name, model
        self.options = replace(options, slice_axis=card.slice_axis)
        self.description = f"{card.architecture.value} ({card.preset or 'custom'}) model {model.path}"

    def predict(self, case: CaseVolumes) -> np.ndarray:
        card = self.model.card
        volumes = synthesize_volume(
            self.model.generator, case.sources, card.sources, card.targets, card.normalization, self.options
        )
        return volumes[card.targets[0]] / card.normalization.output_scale

    def predict_with_uncertainty(self, case: CaseVolumes) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`predict` and the prediction's uncertainty map, both divided by the output scale."""
        card = self.model.card
        volumes, uncertainty = synthesize_volume_with_uncertainty(
            self.model.generator, case.sources, card.sources, card.targets, card.normalization, self.options
        )
        scale = card.normalization.output_scale
        return volumes[card.targets[0]] / scale, uncertainty[card.targets[0]] / scale


class CopySource:
    """The real source volume handed in as the target (e.g. T1 for T1ce): what a model must beat."""

    def __init__(self, sequence: Sequence, normalization: NormalizationConfig) -> None:
        self.sequence, self.normalization = sequence, normalization
        self.name = f"copy_{sequence.value}"
        self.description = f"the real {sequence.display_name}, normalized like the target"

    def predict(self, case: CaseVolumes) -> np.ndarray:
        return real_on_unit_scale(case.sources[self.sequence], case.mask, self.normalization)


class ZeroImputation:
    """An empty volume: the missing sequence left out, as the paper's downstream baseline does."""

    name = "zero_imputation"
    description = "the missing sequence filled with zeros (background)"

    def predict(self, case: CaseVolumes) -> np.ndarray:
        return np.zeros(case.target.shape)


class MeanImputation:
    """The brain filled with one constant: the mean the target has inside the brain of other cases.

    Args:
        values: per evaluated case, the constant to use (computed without that case, so nothing of
            the real target leaks into its own prediction).
    """

    name = "mean_imputation"
    description = "the brain filled with the target's mean brain intensity in other cases"

    def __init__(self, values: Mapping[str, float]) -> None:
        self.values = dict(values)

    def predict(self, case: CaseVolumes) -> np.ndarray:
        if case.case_id not in self.values:
            raise ValueError(f"mean imputation has no value for case {case.case_id}")
        return np.where(case.mask, self.values[case.case_id], 0.0)
