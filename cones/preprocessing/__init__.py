"""Preparing raw clinical scans for synthesis: co-registration, brain extraction, the working grid.

The sequences a clinic acquires are separate acquisitions, each on its own grid and position,
with the skull on; the models were trained on co-registered, skull-stripped 1 mm BraTS volumes.
:func:`synthesize_raw` closes that gap and returns the synthesized sequence on the grid of the
reference the user picked::

    result = synthesize_raw(load_model("model.pt"), {"t1": t1, "t2": t2, "flair": flair})
    sitk.WriteImage(result.outputs[Sequence.T1CE], "t1ce_synthesized.nii.gz")
    print(result.prepared.report.summary())
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "PoseFigures": "alignment",
    "measure_pose": "alignment",
    "BrainExtractor": "brain_extraction",
    "DeepBetExtractor": "brain_extraction",
    "brain_mask_of_stripped": "brain_extraction",
    "looks_skull_stripped": "brain_extraction",
    "TRAINING_FIELD_OF_VIEW": "grid",
    "TRAINING_SPACING_MM": "grid",
    "working_grid": "grid",
    "STAGES": "pipeline",
    "PreparationReport": "pipeline",
    "PreparedCase": "pipeline",
    "RawSynthesis": "pipeline",
    "StageProgress": "pipeline",
    "prepare_sources": "pipeline",
    "synthesize_raw": "pipeline",
    "RegistrationFailed": "registration",
    "RegistrationResult": "registration",
    "TransformKind": "registration",
    "check_registration": "registration",
    "normalized_mutual_information": "registration",
    "register": "registration",
}
"""Where each public name lives. They are imported on first use, so that ``cones.cli`` (and the
Slicer GUI process, which builds its parser) can import :mod:`cones.preprocessing.cli` without
importing torch."""


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)


__all__ = [
    "STAGES",
    "TRAINING_FIELD_OF_VIEW",
    "TRAINING_SPACING_MM",
    "BrainExtractor",
    "DeepBetExtractor",
    "PoseFigures",
    "PreparationReport",
    "PreparedCase",
    "RawSynthesis",
    "RegistrationFailed",
    "RegistrationResult",
    "StageProgress",
    "TransformKind",
    "brain_mask_of_stripped",
    "check_registration",
    "looks_skull_stripped",
    "measure_pose",
    "normalized_mutual_information",
    "prepare_sources",
    "register",
    "synthesize_raw",
    "working_grid",
]
