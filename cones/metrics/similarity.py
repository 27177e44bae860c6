"""Image similarity metrics as the paper reports them: PSNR and SSIM on images rescaled to [0, 1].

The formulas come from scikit-image (well tested and what most synthesis papers use); this module
only fixes the conventions: both images share one rescaling, so a global intensity error is
penalised rather than normalised away; an optional mask restricts the comparison to the brain; and
SSIM is computed in 2D, slice by slice, then averaged over slices. CoNeS and its baselines
translate 2D slices, and the paper evaluates slices: a 3D window would mix neighbouring slices
(2-6 mm apart in BraTS 2018 before resampling) that the models never saw together.
"""

from __future__ import annotations

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

__all__ = ["SSIM_WINDOW", "check_pair", "mean_absolute_error", "psnr", "rescale_pair", "ssim", "ssim_map"]

SSIM_WINDOW = 7
"""scikit-image's default SSIM window (pixels): every slice must be at least this wide and tall."""


def check_pair(prediction: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None) -> None:
    """Refuse images that cannot be compared: different shapes, non-finite values, a bad or empty mask.

    Raises:
        ValueError: naming the problem and the shapes involved.
    """
    if prediction.shape != reference.shape:
        raise ValueError(f"prediction and reference differ in shape: {prediction.shape} vs {reference.shape}")
    for name, image in (("prediction", prediction), ("reference", reference)):
        if not np.isfinite(image).all():
            raise ValueError(f"{name} holds NaN or infinite values; metrics need finite images")
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

    Raises:
        ValueError: the images cannot be compared (see :func:`check_pair`) or the range is empty.
    """
    check_pair(prediction, reference)
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
    check_pair(prediction, reference, mask)
    if mask is not None:
        prediction, reference = prediction[mask], reference[mask]
    return float(peak_signal_noise_ratio(reference, prediction, data_range=1.0))


def _structural_similarity(prediction: np.ndarray, reference: np.ndarray, axis: int) -> tuple[float, np.ndarray]:
    """scikit-image's SSIM of 2D slices along ``axis``: (mean over slices of each slice's SSIM, local map)."""
    if reference.ndim not in (2, 3):
        raise ValueError(f"SSIM needs a 2D image or a 3D stack of slices, got shape {reference.shape}")
    if reference.ndim == 3 and not -3 <= axis < 3:
        raise ValueError(f"axis must name one of the 3 axes, got {axis!r}")
    # scikit-image computes each "channel" as its own 2D image: with the slice axis as the channel
    # axis, that is exactly SSIM per slice, averaged over slices.
    channel_axis = axis if reference.ndim == 3 else None
    value, local = structural_similarity(
        reference, prediction, data_range=1.0, full=True, win_size=SSIM_WINDOW, channel_axis=channel_axis
    )
    return float(value), local


def ssim(prediction: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None, axis: int = 0) -> float:
    """SSIM of images in [0, 1], in 2D: per slice along ``axis``, averaged over slices.

    Without a mask this is scikit-image's mean SSIM of each slice (border windows excluded, as
    scikit-image does), averaged over slices. With a mask it is the mean of the local SSIM map
    inside the mask: SSIM is a windowed statistic, so the map is computed on whole slices (the
    windows need their neighbourhood) and only its average is restricted.

    Args:
        prediction: synthesized image, 2D ``(H, W)`` or a stack of slices.
        reference: real image of the same shape.
        mask: bool mask of the same shape, or ``None``.
        axis: the slice axis of a 3D stack (ignored for 2D images).

    Raises:
        ValueError: see :func:`check_pair`; an image that is neither 2D nor 3D, or slices smaller
            than the 7-pixel window.
    """
    check_pair(prediction, reference, mask)
    value, local = _structural_similarity(prediction, reference, axis)
    return float(local[mask].mean()) if mask is not None else value


def ssim_map(prediction: np.ndarray, reference: np.ndarray, axis: int = 0) -> tuple[float, np.ndarray]:
    """The SSIM of :func:`ssim` without mask, and the local 2D SSIM at every voxel.

    One computation gives both the value of a cropped box and the averages over any mask inside it
    (see :func:`cones.metrics.region_scores`), which matters for 240 x 240 x 155 volumes.
    """
    check_pair(prediction, reference)
    return _structural_similarity(prediction, reference, axis)


def mean_absolute_error(prediction: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean absolute difference, over the mask when given (in the images' own units)."""
    check_pair(prediction, reference, mask)
    difference = np.abs(prediction.astype(np.float64) - reference.astype(np.float64))
    return float(difference[mask].mean() if mask is not None else difference.mean())
