"""Baseline generators of the paper's comparison, written from their papers for the same trainer.

Both follow the :class:`~cones.model.CoNeSGenerator` contract, ``generator(sources, offsets)`` ->
``GeneratorOutput(image, latent)``, so training, validation, inference and benchmarks treat every
architecture alike.
"""

from __future__ import annotations

from cones.model.baselines.asapnet import ASAPNetGenerator
from cones.model.baselines.config import ASAPNetConfig, Pix2PixConfig
from cones.model.baselines.pix2pix import Pix2PixGenerator

__all__ = ["ASAPNetConfig", "ASAPNetGenerator", "Pix2PixConfig", "Pix2PixGenerator"]
