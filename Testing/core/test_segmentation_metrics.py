"""Dice and HD95 per BraTS region against values worked out by hand, the label conventions, the summary."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import wilcoxon

from cones.segmentation.base import check_orientation
from cones.segmentation.evaluation import Condition, SegmentationRow, summary_markdown
from cones.segmentation.labels import BRATS_2018_LABELS, BRATS_2023_LABELS, BratsRegion, LabelSet, detect_labels
from cones.segmentation.metrics import dice_hd95, score_regions
from cones.sequences import Sequence

SPACING = (1.0, 1.0, 2.0)  # (z, y, x) mm: a shift along x is 2 mm


def cube(shift: int = 0) -> np.ndarray:
    mask = np.zeros((10, 10, 10), dtype=bool)
    mask[2:6, 2:6, 2 + shift : 6 + shift] = True
    return mask


def test_shifted_cube_matches_hand_values() -> None:
    # 4x4x4 cubes shifted by one voxel along x: overlap 4*4*3 = 48, Dice = 2*48 / (64 + 64) = 0.75.
    # 20 of the 56 surface voxels of each cube lie one voxel (2 mm) from the other's surface, the
    # rest on it, so the 95th percentile distance is 2 mm.
    dice, hd95 = dice_hd95(cube(1), cube(0), SPACING)
    assert dice == pytest.approx(0.75)
    assert hd95 == pytest.approx(2.0)


def test_identical_masks_score_perfectly() -> None:
    assert dice_hd95(cube(), cube(), SPACING) == pytest.approx((1.0, 0.0))


def test_both_empty_scores_dice_one_and_an_undefined_distance() -> None:
    empty = np.zeros((10, 10, 10), dtype=bool)
    dice, hd95 = dice_hd95(empty, empty, SPACING)
    assert dice == 1.0
    assert math.isnan(hd95)


@pytest.mark.parametrize("predicted_empty", [True, False])
def test_one_empty_scores_dice_zero_and_an_undefined_distance(predicted_empty: bool) -> None:
    empty = np.zeros((10, 10, 10), dtype=bool)
    prediction, reference = (empty, cube()) if predicted_empty else (cube(), empty)
    dice, hd95 = dice_hd95(prediction, reference, SPACING)
    assert dice == 0.0
    assert math.isnan(hd95)


def test_single_voxels_apart_match_their_physical_distance() -> None:
    # one voxel each, 3 voxels apart along y (1 mm) and 2 along x (2 mm): sqrt(3^2 + 4^2) = 5 mm both ways
    prediction, reference = np.zeros((10, 10, 10), dtype=bool), np.zeros((10, 10, 10), dtype=bool)
    prediction[5, 2, 2], reference[5, 5, 4] = True, True
    assert dice_hd95(prediction, reference, SPACING) == pytest.approx((0.0, 5.0))


def test_mismatched_shapes_and_bad_spacing_are_refused() -> None:
    with pytest.raises(ValueError, match="shape"):
        dice_hd95(cube(), np.zeros((5, 5, 5), dtype=bool), SPACING)
    with pytest.raises(ValueError, match="spacing"):
        dice_hd95(cube(), cube(), (1.0, 0.0, 1.0))


def test_regions_are_compared_across_label_conventions() -> None:
    reference = np.zeros((10, 10, 10), dtype=np.uint8)
    reference[2:8, 2:8, 2:8] = 2  # oedema
    reference[3:6, 3:6, 3:6] = 1  # necrosis
    reference[4:6, 4:6, 4:6] = 3  # enhancing, BraTS 2023 value
    prediction = np.where(reference == 3, 4, reference)  # the same map in BraTS 2018 values
    scores = score_regions(prediction, BRATS_2018_LABELS, reference, detect_labels(reference), SPACING)
    assert [score.region for score in scores] == [BratsRegion.ET, BratsRegion.TC, BratsRegion.WT]
    assert [score.dice for score in scores] == pytest.approx([1.0, 1.0, 1.0])
    assert [score.reference_voxels for score in scores] == [8, 27, 216]


def test_oedema_predicted_as_enhancing_lowers_et_but_not_wt() -> None:
    reference = np.zeros((10, 10, 10), dtype=np.uint8)
    reference[2:6, 2:6, 2:6] = 2
    reference[2:6, 2:6, 4:6] = 4
    prediction = np.where(reference > 0, 4, 0).astype(np.uint8)
    scores = {s.region: s for s in score_regions(prediction, BRATS_2018_LABELS, reference, BRATS_2018_LABELS, SPACING)}
    assert scores[BratsRegion.ET].dice == pytest.approx(2 * 32 / (64 + 32))
    assert scores[BratsRegion.WT].dice == pytest.approx(1.0)


def test_detect_labels_reads_the_enhancing_value() -> None:
    assert detect_labels(np.array([0, 1, 2, 4])) == BRATS_2018_LABELS
    assert detect_labels(np.array([0, 1, 2, 3])) == BRATS_2023_LABELS
    with pytest.raises(ValueError, match="both 3 and 4"):
        detect_labels(np.array([0, 3, 4]))
    with pytest.raises(ValueError, match=r"\[5\]"):
        detect_labels(np.array([0, 5]))


def test_label_set_needs_the_brats_classes_and_a_zero_background() -> None:
    with pytest.raises(ValueError, match="ET"):
        LabelSet(("background", "NCR", "ED"), (0, 1, 2))
    with pytest.raises(ValueError, match="value 0"):
        LabelSet(("background", "NCR", "ED", "ET"), (9, 1, 2, 4))
    assert BRATS_2023_LABELS.value_of("ET") == 3


def test_summary_averages_hd95_where_defined_and_says_on_how_many() -> None:
    rows = [
        SegmentationRow("a", "zeros", "ET", 1.0, 2.0, 8, 8),
        SegmentationRow("b", "zeros", "ET", 0.0, math.nan, 8, 0),  # ET missed: Dice 0, HD95 undefined
        SegmentationRow("a", "zeros", "WT", 0.5, 4.0, 9, 9),
        SegmentationRow("b", "zeros", "WT", 0.7, 6.0, 9, 9),
    ]
    table = summary_markdown(rows, [Condition("zeros", "T1ce = zeros")], Sequence.T1CE, cases=2)
    row = next(line for line in table.splitlines() if line.startswith("| T1ce = zeros"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells == ["T1ce = zeros", "0.500 ± 0.500", "n/a", "0.600 ± 0.100", "2.0 ± 0.0 (n=1/2)", "n/a", "5.0 ± 1.0"]
    assert "T1ce missing, 2 case(s)" in table


def test_orientation_codes_name_each_axis_once() -> None:
    assert check_orientation("ras") == "RAS"
    assert check_orientation("stored") == "stored"
    for bad in ("LPR", "LP", "XYZ", "LPSI"):
        with pytest.raises(ValueError, match="orientation"):
            check_orientation(bad)


def test_summary_tests_every_row_against_the_first_cones_row() -> None:
    dice = {"zeros": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], "cones": [0.5, 0.6, 0.7, 0.8, 0.9, 0.55]}
    rows = [
        SegmentationRow(f"case{index}", condition, region, value, 1.0, 8, 8)
        for condition, values in dice.items()
        for index, value in enumerate(values)
        for region in ("ET", "TC", "WT")
    ]
    conditions = [Condition("zeros", "T1ce = zeros"), Condition("cones", "T1ce = cones synthesis", is_cones=True)]
    table = summary_markdown(rows, conditions, Sequence.T1CE, cases=6)
    assert "Wilcoxon signed-rank test (two-sided) of per-case Dice against T1ce = cones synthesis" in table
    row = next(line for line in table.splitlines() if line.startswith("| T1ce = zeros |") and "(" in line)
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    p_value = wilcoxon(dice["zeros"], dice["cones"]).pvalue
    assert cells == ["T1ce = zeros", *[f"{p_value:.3f} (1/5)"] * 3]
    without_cones = summary_markdown(rows, conditions[:1], Sequence.T1CE, cases=6)
    assert "Wilcoxon" not in without_cones
