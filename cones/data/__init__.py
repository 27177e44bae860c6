"""Data: finding cases, reading volumes with exact geometry, normalization, slice cache, augmentation.

Typical training use::

    cases = require_sequences(find_cases(root), (*sources, *targets))
    cache = build_slice_cache(cases, sources, targets, cache_dir, normalization, axis=0)
    dataset = SliceDataset(cache, crop_size=(160, 128), augmentation=AugmentationConfig(), seed=0)
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "AugmentationConfig": "augment",
    "augment_sample": "augment",
    "SliceCache": "cache",
    "build_slice_cache": "cache",
    "IMAGE_SUFFIXES": "discovery",
    "LABEL_NAMES": "discovery",
    "CaseFiles": "discovery",
    "find_cases": "discovery",
    "require_sequences": "discovery",
    "CACHE_DTYPES": "fingerprint",
    "CACHE_FORMAT": "fingerprint",
    "CacheSpec": "fingerprint",
    "data_fingerprint": "fingerprint",
    "CANONICAL_ORIENTATION": "geometry",
    "check_same_grid": "geometry",
    "grid_difference": "geometry",
    "load_case": "geometry",
    "reorient": "geometry",
    "resample_to_reference": "geometry",
    "to_canonical": "geometry",
    "array_to_image": "io",
    "image_to_array": "io",
    "read_image": "io",
    "write_image": "io",
    "denormalize_volume": "normalization",
    "foreground_mask": "normalization",
    "normalize_volume": "normalization",
    "BrightTargetFocus": "slices",
    "SliceDataset": "slices",
    "bright_target_focus": "slices",
    "crop_slice": "slices",
    "sample_batch": "slices",
}
"""Where each public name lives. They are imported on first use, so that reading and checking volumes
(:mod:`cones.data.io`, :mod:`cones.data.geometry`; the input checks in Slicer's own process) does not
import torch, which only the slice dataset needs."""


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)


__all__ = sorted(_EXPORTS)
