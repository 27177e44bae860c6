"""The BraSyn 2023 challenge's SSIM: 3D, each volume on its own percentiles, tumour and healthy tissue apart.

The Brain MR Image Synthesis challenge (BraSyn, BraTS 2023) ranks a synthesized sequence by two
SSIMs: one of the tumour and one of everything else. Each volume (synthesized and real) is
clipped to its own 0.5 and 99.5 percentiles over the *whole* volume, background included, and
scaled to [0, 1]; both are multiplied by the mask (the whole tumour, or its complement); and SSIM is
the mean of the 3D SSIM map with an 11-voxel Gaussian window (sigma 1.5) over the volume, without
the window's half-width at each face (where the window is cut off). Reporting it beside the
project's own 2D scores makes the figures comparable with the challenge's.

Per-volume percentiles forgive a global scale, so this SSIM scores structure, like the
own-percentile protocol of :mod:`cones.evaluation.protocols`; unlike it, the window is 3D and
the background (SSIM 1 where both are 0) counts, which lifts every score towards 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from cones.metrics.similarity import check_pair

__all__ = ["BRASYN_SIGMA", "BRASYN_WINDOW", "BrasynSSIM", "brasyn_ssim", "gaussian_ssim_3d", "percentile_scaled"]

BRASYN_SIGMA = 1.5
"""Standard deviation of the Gaussian window (voxels)."""
BRASYN_WINDOW = 11
"""Width of the Gaussian window (voxels): the kernel is truncated at 5 voxels from its centre."""
_C1, _C2 = 0.01**2, 0.03**2  # SSIM's stabilizing constants for a data range of 1


@dataclass(frozen=True)
class BrasynSSIM:
    """The two BraSyn scores of one synthesized volume."""

    tumour: float
    non_tumour: float


def percentile_scaled(volume: np.ndarray, lower: float = 0.5, upper: float = 99.5) -> np.ndarray:
    """``volume`` clipped to its own percentiles over the whole array and scaled to [0, 1] (float32).

    Raises:
        ValueError: the volume is constant between those percentiles.
    """
    volume = np.asarray(volume, dtype=np.float32)
    low, high = np.percentile(volume, [lower, upper])
    if not high > low:
        raise ValueError(f"the volume is constant between its {lower} and {upper} percentiles ({low:g})")
    return (np.clip(volume, low, high) - np.float32(low)) / np.float32(high - low)


def gaussian_ssim_3d(prediction: np.ndarray, reference: np.ndarray) -> float:
    """Mean 3D SSIM of two [0, 1] volumes with BraSyn's Gaussian window (population statistics).

    The same as ``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1)``, computed in float32 with separable filters so
    that a 240 x 240 x 155 volume takes about a second.
    """
    check_pair(prediction, reference)
    if min(prediction.shape) < BRASYN_WINDOW:
        raise ValueError(f"volumes must be at least {BRASYN_WINDOW} voxels along every axis, got {prediction.shape}")
    x, y = np.asarray(prediction, dtype=np.float32), np.asarray(reference, dtype=np.float32)
    truncate = (BRASYN_WINDOW // 2) / BRASYN_SIGMA

    def blur(image: np.ndarray) -> np.ndarray:
        return gaussian_filter(image, BRASYN_SIGMA, truncate=truncate, mode="reflect")

    mean_x, mean_y = blur(x), blur(y)
    var_x = blur(x * x) - mean_x * mean_x
    var_y = blur(y * y) - mean_y * mean_y
    covariance = blur(x * y) - mean_x * mean_y
    ssim_map = ((2 * mean_x * mean_y + _C1) * (2 * covariance + _C2)) / (
        (mean_x * mean_x + mean_y * mean_y + _C1) * (var_x + var_y + _C2)
    )
    half = BRASYN_WINDOW // 2
    return float(ssim_map[(slice(half, -half),) * ssim_map.ndim].astype(np.float64).mean())


def brasyn_ssim(prediction: np.ndarray, reference: np.ndarray, tumour: np.ndarray) -> BrasynSSIM:
    """BraSyn's tumour and non-tumour SSIM of a synthesized volume against the real one.

    Args:
        prediction: the synthesized volume, any intensity scale, background 0.
        reference: the real volume, any intensity scale, background 0.
        tumour: the whole-tumour mask (every label > 0) of the volumes' shape.

    Raises:
        ValueError: shapes differ, non-finite values, an empty tumour, or a constant volume.
    """
    check_pair(prediction, reference, tumour)
    tumour = np.asarray(tumour, dtype=bool)
    scaled_prediction, scaled_reference = percentile_scaled(prediction), percentile_scaled(reference)
    return BrasynSSIM(
        tumour=gaussian_ssim_3d(scaled_prediction * tumour, scaled_reference * tumour),
        non_tumour=gaussian_ssim_3d(scaled_prediction * ~tumour, scaled_reference * ~tumour),
    )
