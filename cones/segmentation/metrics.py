"""Dice and HD95 per BraTS region, computed with MONAI's metrics.

MONAI's functions leave empty masks to the caller (Dice may come back NaN, HD95 infinite or NaN
with a warning), and a BraTS case often has no enhancing tumour, so empty regions are decided here,
explicitly, before MONAI is called:

- reference and prediction both empty: Dice 1 (the model correctly found nothing); HD95 is
  undefined (there is no boundary to measure) and reported as NaN;
- exactly one of them empty: Dice 0 (every voxel is wrong); HD95 is undefined and NaN.

NaN is not replaced by a penalty distance (BraTS uses 373.13 mm, the diagonal of its grid): such a
number depends on the field of view and would dominate any mean. Summaries average HD95 over the
cases where it is defined and say on how many (:func:`cones.segmentation.evaluation.summary_markdown`);
Dice, defined for every case, carries the penalty for a missed or hallucinated region.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence as SequenceOf
from dataclasses import dataclass

import numpy as np
import torch
from monai.metrics import compute_dice, compute_hausdorff_distance

from cones.segmentation.labels import BratsRegion, LabelSet, region_masks

__all__ = ["RegionScore", "dice_hd95", "score_regions"]


@dataclass(frozen=True)
class RegionScore:
    """The overlap and boundary distance of one region of one case.

    Attributes:
        region: ET, TC or WT.
        dice: Dice similarity in [0, 1].
        hd95: 95th percentile Hausdorff distance in millimetres; NaN when either mask is empty.
        reference_voxels: voxels of the region in the reference (0: empty region).
        predicted_voxels: voxels of the region in the prediction.
    """

    region: BratsRegion
    dice: float
    hd95: float
    reference_voxels: int
    predicted_voxels: int


def dice_hd95(prediction: np.ndarray, reference: np.ndarray, spacing: SequenceOf[float]) -> tuple[float, float]:
    """Dice and HD95 (mm) of two boolean masks on one grid, with the empty cases of the module docstring.

    Returns:
        ``(dice, hd95)``; ``hd95`` is NaN when either mask is empty.

    Args:
        prediction: the predicted mask.
        reference: the reference mask, same shape.
        spacing: voxel size in mm per array axis (for SimpleITK arrays: ``image.GetSpacing()[::-1]``).

    Raises:
        ValueError: the shapes differ, or ``spacing`` has not one positive value per axis.
    """
    prediction, reference = np.asarray(prediction, dtype=bool), np.asarray(reference, dtype=bool)
    if prediction.shape != reference.shape:
        raise ValueError(f"prediction shape {prediction.shape} differs from reference shape {reference.shape}")
    spacing = tuple(float(value) for value in spacing)
    if len(spacing) != prediction.ndim or min(spacing) <= 0:
        raise ValueError(f"spacing must give one positive size per axis ({prediction.ndim}), got {spacing!r}")
    has_prediction, has_reference = bool(prediction.any()), bool(reference.any())
    if not has_prediction or not has_reference:
        return (1.0 if has_prediction == has_reference else 0.0), math.nan
    y_pred = torch.from_numpy(prediction)[None, None].float()
    y = torch.from_numpy(reference)[None, None].float()
    dice = compute_dice(y_pred, y, include_background=True, ignore_empty=False)
    with warnings.catch_warnings():
        # MONAI 1.5-1.6 warns about an argument its own HD95 code passes; nothing a caller can change.
        warnings.filterwarnings("ignore", message=".*always_return_as_numpy", category=FutureWarning)
        hd95 = compute_hausdorff_distance(y_pred, y, include_background=True, percentile=95, spacing=list(spacing))
    return float(dice.item()), float(hd95.item())


def score_regions(
    prediction: np.ndarray,
    prediction_labels: LabelSet,
    reference: np.ndarray,
    reference_labels: LabelSet,
    spacing: SequenceOf[float],
) -> list[RegionScore]:
    """Dice and HD95 for ET, TC and WT of one case; each map is read in its own label convention.

    Args:
        prediction: the predicted label map.
        prediction_labels: the values of NCR, ED and ET in ``prediction``.
        reference: the reference label map on the same grid.
        reference_labels: the values in ``reference`` (see :func:`~cones.segmentation.labels.detect_labels`).
        spacing: voxel size in mm per array axis.

    Returns:
        One score per region, in :class:`BratsRegion` order.
    """
    predicted, expected = region_masks(prediction, prediction_labels), region_masks(reference, reference_labels)
    scores = []
    for region in BratsRegion:
        dice, hd95 = dice_hd95(predicted[region], expected[region], spacing)
        scores.append(RegionScore(region, dice, hd95, int(expected[region].sum()), int(predicted[region].sum())))
    return scores
