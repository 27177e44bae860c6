"""Where synthesized images are compared: the whole image, the brain, the tumour's box and its regions.

The paper reports PSNR and SSIM on the whole image (after cropping the background to the
foreground's bounding box) and inside the tumour's bounding box (Tables 2 and 4), because the
enhancing tumour, which is what T1ce exists for, is a few percent of the brain and barely moves a
whole-image score. The brain mask adds the comparison that ignores the background entirely, and
the BraTS regions of an expert label map (enhancing tumour, tumour core, whole tumour) score the
tissue itself rather than the box around it, which is mostly healthy brain.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

import numpy as np

from cones.metrics.similarity import SSIM_WINDOW, check_pair, mean_absolute_error, psnr, ssim_map
from cones.segmentation.labels import BratsRegion, detect_labels, region_masks

__all__ = ["Metric", "Region", "bounding_box_mask", "evaluation_regions", "region_scores"]


class Region(StrEnum):
    """Regions in which a synthesized volume is scored.

    ``whole``: the bounding box of the brain, i.e. the whole image after the paper's background crop.
    ``brain``: the brain (foreground) mask itself.
    ``tumour_bbox``: the bounding box of all tumour labels (any label > 0), when the case has labels.
    ``enhancing_tumour``, ``tumour_core``, ``whole_tumour``: the BraTS regions of the labels
    (:mod:`cones.segmentation.labels`), each where the case has it.
    """

    WHOLE = "whole"
    BRAIN = "brain"
    TUMOUR_BBOX = "tumour_bbox"
    ENHANCING_TUMOUR = "enhancing_tumour"
    TUMOUR_CORE = "tumour_core"
    WHOLE_TUMOUR = "whole_tumour"


_BRATS_REGIONS = {
    BratsRegion.ET: Region.ENHANCING_TUMOUR,
    BratsRegion.TC: Region.TUMOUR_CORE,
    BratsRegion.WT: Region.WHOLE_TUMOUR,
}


class Metric(StrEnum):
    """Scores of one region: PSNR (dB) and SSIM of images in [0, 1], and their mean absolute error."""

    PSNR = "psnr"
    SSIM = "ssim"
    MAE = "mae"


def bounding_box_mask(mask: np.ndarray) -> np.ndarray:
    """A bool array, true inside the smallest axis-aligned box that holds every true voxel of ``mask``.

    Raises:
        ValueError: ``mask`` is empty (it has no bounding box).
    """
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        raise ValueError("mask is empty: it has no bounding box")
    box = np.zeros_like(mask)
    box[tuple(slice(int(i.min()), int(i.max()) + 1) for i in np.nonzero(mask))] = True
    return box


def evaluation_regions(brain: np.ndarray, labels: np.ndarray | None = None) -> dict[Region, np.ndarray]:
    """The masks of every region that exists for a case.

    Args:
        brain: bool foreground mask of the case.
        labels: tumour label map of the same shape (BraTS 1/2/4 or 1/2/3, any value > 0 counts for
            the box), or ``None``; without labels, or with an empty label map, there is no tumour
            region, and a BraTS region the map does not hold (no enhancing voxel, say) is left out.

    Raises:
        ValueError: the brain mask is empty, the shapes differ, or the labels are not a BraTS map.
    """
    brain = np.asarray(brain, dtype=bool)
    regions = {Region.WHOLE: bounding_box_mask(brain), Region.BRAIN: brain}
    if labels is not None:
        if labels.shape != brain.shape:
            raise ValueError(f"labels shape {labels.shape} differs from the brain mask's {brain.shape}")
        if (labels > 0).any():
            regions[Region.TUMOUR_BBOX] = bounding_box_mask(labels > 0)
            for brats_region, mask in region_masks(labels, detect_labels(labels)).items():
                if mask.any():
                    regions[_BRATS_REGIONS[brats_region]] = mask
    return regions


def region_scores(
    prediction: np.ndarray, reference: np.ndarray, regions: Mapping[Region, np.ndarray], axis: int = 0
) -> dict[Region, dict[Metric, float]]:
    """PSNR, SSIM and MAE of two images in [0, 1] inside each region.

    A region that fills its bounding box (``whole``, ``tumour_bbox``) is scored as the paper does:
    both images are cropped to the box and SSIM is the usual 2D SSIM of each slice of the crop,
    averaged over slices. Any other region (``brain``) averages the local 2D SSIM map over its
    voxels, with the map computed on the region's bounding box, so that windows at its edge see
    their neighbourhood. Boxes thinner than the 7-pixel SSIM window within a slice are widened to
    it (the slice axis needs no widening: windows are 2D). PSNR and MAE use the region's voxels.

    Args:
        prediction: synthesized image in [0, 1], a ``(z, y, x)`` volume or a 2D slice.
        reference: real image in [0, 1], of the same shape.
        regions: bool masks of the image's shape, e.g. from :func:`evaluation_regions`.
        axis: the slice axis of a volume (the models' slice axis).

    Returns:
        ``{region: {metric: value}}`` in the order of ``regions``.

    Raises:
        ValueError: shapes differ, an image holds NaN or infinite values, or a region is empty.
    """
    check_pair(prediction, reference)
    for region, mask in regions.items():
        if mask.shape != reference.shape or not mask.any():
            raise ValueError(f"region {region} must be a non-empty mask of shape {reference.shape}, got {mask.shape}")
    structural: dict[tuple[tuple[int, int], ...], tuple[float, np.ndarray]] = {}
    scores = {}
    for region, mask in regions.items():
        box = _ssim_box(mask, axis)
        key = tuple((part.start, part.stop) for part in box)
        if key not in structural:
            structural[key] = ssim_map(prediction[box], reference[box], axis)
        box_ssim, local_ssim = structural[key]
        inside = mask[box]
        scores[region] = {
            Metric.PSNR: psnr(prediction[mask], reference[mask]),
            Metric.SSIM: box_ssim if inside.all() else float(local_ssim[inside].mean()),
            Metric.MAE: mean_absolute_error(prediction[mask], reference[mask]),
        }
    return scores


def _ssim_box(mask: np.ndarray, axis: int) -> tuple[slice, ...]:
    """The bounding box of ``mask``, widened within each slice to at least the SSIM window."""
    slice_axis = axis % mask.ndim if mask.ndim == 3 else None
    box = []
    for dimension, (indices, size) in enumerate(zip(np.nonzero(mask), mask.shape, strict=True)):
        start, stop = int(indices.min()), int(indices.max()) + 1
        box.append(slice(start, stop) if dimension == slice_axis else _widened(start, stop, size))
    return tuple(box)


def _widened(start: int, stop: int, size: int) -> slice:
    """``start:stop`` grown around its centre to at least the SSIM window, kept within ``0:size``."""
    width = min(SSIM_WINDOW, size)
    if stop - start >= width:
        return slice(start, stop)
    start = max(0, min(start - (width - (stop - start)) // 2, size - width))
    return slice(start, start + width)
