"""Data: finding cases, reading volumes with exact geometry, normalization, slice cache, augmentation.

Typical training use::

    cases = require_sequences(find_cases(root), (*sources, *targets))
    cache = build_slice_cache(cases, sources, targets, cache_dir, normalization, axis=0)
    dataset = SliceDataset(cache, crop_size=(160, 128), augmentation=AugmentationConfig(), seed=0)
"""

from __future__ import annotations

from cones.data.augment import AugmentationConfig, augment_sample
from cones.data.cache import SliceCache, build_slice_cache
from cones.data.discovery import IMAGE_SUFFIXES, LABEL_NAMES, CaseFiles, find_cases, require_sequences
from cones.data.fingerprint import CACHE_DTYPES, CACHE_FORMAT, CacheSpec, data_fingerprint
from cones.data.geometry import (
    CANONICAL_ORIENTATION,
    check_same_grid,
    grid_difference,
    load_case,
    reorient,
    resample_to_reference,
    to_canonical,
)
from cones.data.io import array_to_image, image_to_array, read_image, write_image
from cones.data.normalization import denormalize_volume, foreground_mask, normalize_volume
from cones.data.slices import BrightTargetFocus, SliceDataset, bright_target_focus, crop_slice, sample_batch

__all__ = [
    "CACHE_DTYPES",
    "CACHE_FORMAT",
    "CANONICAL_ORIENTATION",
    "IMAGE_SUFFIXES",
    "LABEL_NAMES",
    "AugmentationConfig",
    "BrightTargetFocus",
    "CacheSpec",
    "CaseFiles",
    "SliceCache",
    "SliceDataset",
    "array_to_image",
    "augment_sample",
    "bright_target_focus",
    "build_slice_cache",
    "check_same_grid",
    "crop_slice",
    "data_fingerprint",
    "denormalize_volume",
    "find_cases",
    "foreground_mask",
    "grid_difference",
    "image_to_array",
    "load_case",
    "normalize_volume",
    "read_image",
    "reorient",
    "require_sequences",
    "resample_to_reference",
    "sample_batch",
    "to_canonical",
    "write_image",
]
