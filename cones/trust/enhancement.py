"""The virtual enhancement map: synthesized T1ce minus T1, each on its own intensity scale.

Radiologists find enhancement on subtraction images (post-contrast minus pre-contrast T1). The
synthesized T1ce has the model's output scale and the T1 the scanner's, so each is first mapped by
its own 0.5 and 99.5 percentiles inside the brain to [0, 1] (the protocol of
:func:`cones.metrics.own_scale.normalize_by_own_percentiles`); the difference is in [-1, 1], a
fraction of each image's own range, and 0 outside the brain. Bright is where the model draws more
signal than T1 has: the enhancement it predicts, which is a prediction and is marked as such.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from cones.data.geometry import grid_difference
from cones.data.io import array_to_image, image_to_array
from cones.metrics.own_scale import normalize_by_own_percentiles

__all__ = ["virtual_enhancement", "virtual_enhancement_image"]


def virtual_enhancement(synthesized: np.ndarray, t1: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """Each volume normalized by its own brain percentiles, synthesized minus T1, float32, 0 outside ``brain``.

    Raises:
        ValueError: the shapes differ or the brain is empty.
    """
    brain = np.asarray(brain, dtype=bool)
    if not synthesized.shape == t1.shape == brain.shape:
        raise ValueError(f"shapes differ: synthesized {synthesized.shape}, T1 {t1.shape}, brain {brain.shape}")
    if not brain.any():
        raise ValueError("the brain is empty: no virtual enhancement to draw")
    difference = normalize_by_own_percentiles(synthesized, brain) - normalize_by_own_percentiles(t1, brain)
    return difference.astype(np.float32)


def virtual_enhancement_image(synthesized: sitk.Image, t1: sitk.Image) -> sitk.Image:
    """:func:`virtual_enhancement` of two images on one grid; the brain is where the synthesis is not background.

    A synthesized volume is exactly 0 outside the brain it was made for (the foreground of
    skull-stripped sources, the extracted brain of raw scans), so its support is the brain, also
    where T1 still shows the skull.

    Raises:
        ValueError: the grids differ, or the synthesized volume is empty.
    """
    difference = grid_difference(synthesized, t1)
    if difference:
        raise ValueError(f"the synthesized volume and T1 are on different grids ({difference})")
    synthesized_array = image_to_array(synthesized)
    enhancement = virtual_enhancement(synthesized_array, image_to_array(t1), synthesized_array > 0)
    return array_to_image(enhancement, synthesized)
