"""Tumour segmentation after synthesis: one interface, three backends, and the downstream experiment.

A segmentation model (:class:`SegmentationModel`) needs a fixed set of co-registered sequences and
writes a BraTS label map (NCR, ED, ET). It can be the built-in MONAI U-Net trained by
``cones train-seg`` (a self-describing ``SEGRUN/last.pt``), a TorchScript or ONNX network with a
JSON sidecar, or a trained nnU-Net v2 folder; :func:`load_segmentation_model` tells them apart.
Synthesis completes a case for it (:func:`segment_with_synthesis`), and
:func:`~cones.segmentation.evaluation.evaluate_segmentation` measures what that is worth against
zero and mean imputation.

Example:
    >>> model = load_segmentation_model("SEGRUN/last.pt")                            # doctest: +SKIP
    >>> check_segmentation_inputs(model, given=["t1", "t2", "flair"], synthesized=["t1ce"])  # doctest: +SKIP
    >>> label_map = segment_with_synthesis(model, sources, {"t1ce": synthesized})     # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

# Names resolve on first use: ``cones.cli`` imports ``cones.segmentation.cli`` to build its parser,
# and importing torch, SimpleITK and MONAI then would make every ``cones --help`` take seconds.
_HOMES = {
    "Imputation": "base",
    "InputNormalization": "base",
    "NormalizationMethod": "base",
    "SegmentationInfo": "base",
    "SegmentationModel": "base",
    "check_segmentation_grids": "chain",
    "check_segmentation_inputs": "chain",
    "segment_to_file": "chain",
    "segment_with_synthesis": "chain",
    "BRATS_2018_LABELS": "labels",
    "BRATS_2023_LABELS": "labels",
    "LabelSet": "labels",
    "BratsRegion": "labels",
    "detect_labels": "labels",
    "load_segmentation_model": "loading",
    "read_segmentation_info": "loading",
    "RegionScore": "metrics",
    "dice_hd95": "metrics",
    "score_regions": "metrics",
}

__all__ = [
    "BRATS_2018_LABELS",
    "BRATS_2023_LABELS",
    "BratsRegion",
    "Imputation",
    "InputNormalization",
    "LabelSet",
    "NormalizationMethod",
    "RegionScore",
    "SegmentationInfo",
    "SegmentationModel",
    "check_segmentation_grids",
    "check_segmentation_inputs",
    "detect_labels",
    "dice_hd95",
    "load_segmentation_model",
    "read_segmentation_info",
    "score_regions",
    "segment_to_file",
    "segment_with_synthesis",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
