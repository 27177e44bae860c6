"""What tells a reader how far to trust a synthesized image.

:mod:`cones.trust.uncertainty` estimates, voxel by voxel, where the model is unsure (from the one
model file: the spread of test-time perturbations of its inputs and the uncertainty of its
intensity calibration); :mod:`cones.trust.enhancement` draws the virtual enhancement (synthesized
T1ce minus T1), the subtraction image radiologists read; :mod:`cones.trust.calibration` measures
whether an uncertainty map points at the real errors.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "UncertaintyCalibration": "calibration",
    "calibrate_uncertainty": "calibration",
    "plot_calibration": "calibration",
    "synthesis_error": "calibration",
    "virtual_enhancement": "enhancement",
    "virtual_enhancement_image": "enhancement",
    "DEFAULT_CALIBRATION": "uncertainty",
    "DEFAULT_GAMMAS": "uncertainty",
    "SourceGamma": "uncertainty",
    "PerturbedPasses": "uncertainty",
    "perturb_source": "uncertainty",
}
"""Where each public name lives, imported on first use: ``cones --help`` and the command line's
checks (:mod:`cones.trust.cli`) must not import torch, which only the perturbed passes need."""


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)


__all__ = sorted(_EXPORTS)
