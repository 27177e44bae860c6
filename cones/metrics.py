"""Image similarity metrics as the paper reports them: PSNR and SSIM on images rescaled to [0, 1].

The formulas come from scikit-image (well tested and what most synthesis papers use); this module
only fixes the conventions: both images share one rescaling, so a global intensity error is
penalised rather than normalised away, and an optional mask restricts the comparison to the brain.
"""

from __future__ import annotations

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

__all__ = ["mean_absolute_error", "psnr", "rescale_pair", "ssim"]


def _check_pair(prediction: np.ndarray, reference: np.ndarray, mask: np.ndarray | None) -> None:
    if prediction.shape != reference.shape:
        raise ValueError(f"prediction and reference differ in shape: {prediction.shape} vs {reference.shape}")
    if mask is not None:
        if mask.shape != reference.shape:
            raise ValueError(f"mask shape {mask.shape} differs from image shape {reference.shape}")
        if not mask.any():
            raise ValueError("mask is empty: no voxel to compare")


def rescale_pair(
    prediction: np.ndarray, reference: np.ndarray, value_range: tuple[float, float] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Map both images to [0, 1] with the same linear map.

    Args:
        prediction: synthesized image.
        reference: real image.
        value_range: (low, high) mapped to (0, 1); default: the reference's min and max, so the
            real image spans [0, 1] as in the paper, and the prediction is clipped into it.
    """
    low, high = value_range if value_range is not None else (float(reference.min()), float(reference.max()))
    if not high > low:
        raise ValueError(f"cannot rescale: the value range ({low}, {high}) is empty (constant reference?)")
    scale = 1.0 / (high - low)
    return (
        np.clip((prediction.astype(np.float64) - low) * scale, 0.0, 1.0),
        np.clip((reference.astype(np.float64) - low) * scale, 0.0, 1.0),
    )


def psnr(prediction: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None) -> float:
    """PSNR in dB of images already in [0, 1] (data range 1), over the mask when given."""
    _check_pair(prediction, reference, mask)
    if mask is not None:
        prediction, reference = prediction[mask], reference[mask]
    return float(peak_signal_noise_ratio(reference, prediction, data_range=1.0))


def ssim(prediction: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None) -> float:
    """SSIM of images in [0, 1]; with a mask, the mean of the local SSIM map inside the mask.

    SSIM is a windowed statistic, so the map is computed on the whole image (the window needs its
    neighbourhood) and only its average is restricted to the mask.
    """
    _check_pair(prediction, reference, mask)
    value, ssim_map = structural_similarity(reference, prediction, data_range=1.0, full=True)
    return float(ssim_map[mask].mean()) if mask is not None else float(value)


def mean_absolute_error(prediction: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean absolute difference, over the mask when given (in the images' own units)."""
    _check_pair(prediction, reference, mask)
    difference = np.abs(prediction.astype(np.float64) - reference.astype(np.float64))
    return float(difference[mask].mean() if mask is not None else difference.mean())
