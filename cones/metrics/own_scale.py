"""Scores of two volumes each normalized by its own intensity percentiles inside the brain.

Raw clinical scans have arbitrary units and a synthesized volume its model's output scale, so a
comparison must first put each on a common scale. This is the paper's protocol, and the one the
raw-scan evaluation fixes: each volume's 0.5 and 99.5 percentiles inside the brain map to 0 and 1
(clipped), PSNR is taken over the brain voxels, and SSIM is averaged over the axial slices that
hold enough brain to mean something (thick clinical series have slices that graze the brain).
"""

from __future__ import annotations

import numpy as np

from cones.metrics.similarity import psnr, ssim

__all__ = ["MIN_SLICE_BRAIN_VOXELS", "normalize_by_own_percentiles", "own_scale_scores"]

MIN_SLICE_BRAIN_VOXELS = 500
"""An axial slice counts for SSIM when it holds more brain voxels than this."""


def normalize_by_own_percentiles(volume: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """``volume`` with its 0.5 and 99.5 percentiles inside ``brain`` mapped to 0 and 1, clipped, 0 outside."""
    low, high = np.percentile(volume[brain], [0.5, 99.5])
    scaled = np.clip((volume.astype(np.float64) - low) / max(high - low, np.finfo(float).eps), 0.0, 1.0)
    return np.where(brain, scaled, 0.0)


def own_scale_scores(prediction: np.ndarray, reference: np.ndarray, brain: np.ndarray) -> tuple[float, float]:
    """(PSNR in dB over the brain, mean SSIM of axial slices with > :data:`MIN_SLICE_BRAIN_VOXELS` brain voxels).

    Args:
        prediction, reference: (z, y, x) volumes on one grid, in any units.
        brain: boolean (z, y, x) brain mask.

    Raises:
        ValueError: the shapes differ, or no slice holds enough brain.
    """
    brain = np.asarray(brain, dtype=bool)
    if not prediction.shape == reference.shape == brain.shape:
        raise ValueError(f"shapes differ: {prediction.shape}, {reference.shape}, brain {brain.shape}")
    slices = np.flatnonzero(brain.sum(axis=(1, 2)) > MIN_SLICE_BRAIN_VOXELS)
    if slices.size == 0:
        raise ValueError(f"no axial slice holds more than {MIN_SLICE_BRAIN_VOXELS} brain voxels")
    predicted = normalize_by_own_percentiles(prediction, brain)
    real = normalize_by_own_percentiles(reference, brain)
    return psnr(predicted, real, brain), ssim(predicted[slices], real[slices])
