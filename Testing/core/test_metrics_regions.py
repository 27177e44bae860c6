"""Evaluation regions, region scores against scikit-image, and the paired Wilcoxon test against scipy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import wilcoxon
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

from cones.metrics import (
    Metric,
    Region,
    bounding_box_mask,
    evaluation_regions,
    mean_and_std,
    region_scores,
    wilcoxon_signed_rank,
)


def brain_and_labels(shape: tuple[int, int, int] = (12, 30, 28)) -> tuple[np.ndarray, np.ndarray]:
    z, y, x = np.meshgrid(*(np.linspace(-1, 1, n) for n in shape), indexing="ij")
    brain = (z / 0.8) ** 2 + (y / 0.9) ** 2 + (x / 0.85) ** 2 < 1
    labels = np.zeros(shape, dtype=np.uint8)
    labels[3:10, 8:20, 9:21] = 2
    labels[6, 11:13, 13] = 4
    return brain, labels


def noisy_pair(brain: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A random reference in [0, 1] inside the brain and a noisy prediction of it."""
    rng = np.random.default_rng(seed)
    reference = np.where(brain, rng.random(brain.shape), 0.0)
    return np.clip(reference + np.where(brain, rng.normal(0, 0.1, brain.shape), 0.0), 0, 1), reference


def box_of(mask: np.ndarray) -> tuple[slice, ...]:
    return tuple(slice(int(i.min()), int(i.max()) + 1) for i in np.nonzero(mask))


def slice_ssim(prediction: np.ndarray, reference: np.ndarray, axis: int = 0) -> tuple[float, np.ndarray]:
    """scikit-image, one 2D slice at a time: the mean of the slices' SSIMs, and the stacked local maps."""
    results = [
        structural_similarity(np.take(reference, i, axis), np.take(prediction, i, axis), data_range=1.0, full=True)
        for i in range(reference.shape[axis])
    ]
    return float(np.mean([value for value, _ in results])), np.stack([local for _, local in results], axis=axis)


def test_bounding_box_mask_is_the_smallest_box() -> None:
    mask = np.zeros((5, 6, 7), dtype=bool)
    mask[1, 2, 3] = mask[3, 4, 1] = True
    box = bounding_box_mask(mask)
    assert box.sum() == 3 * 3 * 3 and box[1:4, 2:5, 1:4].all()
    with pytest.raises(ValueError, match="mask is empty"):
        bounding_box_mask(np.zeros((2, 2), dtype=bool))


def test_evaluation_regions_add_the_tumour_box_and_label_regions_only_with_labels() -> None:
    brain, labels = brain_and_labels()
    regions = evaluation_regions(brain, labels)
    tumour_regions = [Region.ENHANCING_TUMOUR, Region.TUMOUR_CORE, Region.WHOLE_TUMOUR]
    assert list(regions) == [Region.WHOLE, Region.BRAIN, Region.TUMOUR_BBOX, *tumour_regions]
    assert regions[Region.ENHANCING_TUMOUR].sum() == 2 and np.array_equal(regions[Region.TUMOUR_CORE], labels == 4)
    assert np.array_equal(regions[Region.WHOLE_TUMOUR], labels > 0)
    oedema_only = np.where(labels == 4, 2, labels)
    assert Region.ENHANCING_TUMOUR not in evaluation_regions(brain, oedema_only)
    assert Region.TUMOUR_CORE not in evaluation_regions(brain, oedema_only)
    brats_2023 = np.where(labels == 4, 3, labels)
    assert np.array_equal(evaluation_regions(brain, brats_2023)[Region.ENHANCING_TUMOUR], labels == 4)
    assert regions[Region.TUMOUR_BBOX].sum() == 7 * 12 * 12 and regions[Region.TUMOUR_BBOX][box_of(labels)].all()
    assert regions[Region.WHOLE].sum() > brain.sum() and regions[Region.WHOLE][box_of(brain)].all()
    assert regions[Region.BRAIN] is not regions[Region.WHOLE] and np.array_equal(regions[Region.BRAIN], brain)
    assert Region.TUMOUR_BBOX not in evaluation_regions(brain)
    assert Region.TUMOUR_BBOX not in evaluation_regions(brain, np.zeros_like(labels))
    with pytest.raises(ValueError, match="labels shape"):
        evaluation_regions(brain, labels[:-1])
    with pytest.raises(ValueError, match="mask is empty"):
        evaluation_regions(np.zeros_like(brain), labels)


@pytest.mark.parametrize("axis", [0, 1])
def test_region_scores_agree_with_scikit_image_on_random_data(axis: int) -> None:
    brain, labels = brain_and_labels()
    prediction, reference = noisy_pair(brain)
    scores = region_scores(prediction, reference, evaluation_regions(brain, labels), axis)
    # whole and tumour box: the images cropped to the box, 2D SSIM per slice averaged (as the paper)
    for region, mask in ((Region.WHOLE, brain), (Region.TUMOUR_BBOX, labels > 0)):
        box = box_of(mask)
        crop_prediction, crop_reference = prediction[box], reference[box]
        expected = peak_signal_noise_ratio(crop_reference, crop_prediction, data_range=1)
        assert scores[region][Metric.PSNR] == pytest.approx(expected)
        assert scores[region][Metric.SSIM] == pytest.approx(slice_ssim(crop_prediction, crop_reference, axis)[0])
        assert scores[region][Metric.MAE] == pytest.approx(np.abs(crop_prediction - crop_reference).mean())
    # brain: the voxels of the mask; SSIM is the 2D map (computed on the brain's box) averaged inside it
    box = box_of(brain)
    mse_brain = mean_squared_error(reference[brain], prediction[brain])
    assert scores[Region.BRAIN][Metric.PSNR] == pytest.approx(10 * np.log10(1 / mse_brain))
    local = slice_ssim(prediction[box], reference[box], axis)[1]
    assert scores[Region.BRAIN][Metric.SSIM] == pytest.approx(local[brain[box]].mean())
    assert scores[Region.BRAIN][Metric.MAE] == pytest.approx(np.abs(prediction - reference)[brain].mean())


def test_region_scores_of_identical_images_are_perfect() -> None:
    brain, labels = brain_and_labels()
    _, reference = noisy_pair(brain)
    with np.errstate(divide="ignore"):  # identical images: the PSNR is infinite
        perfect = region_scores(reference, reference, evaluation_regions(brain, labels))
    assert all(regional[Metric.PSNR] == np.inf for regional in perfect.values())
    assert all(regional[Metric.SSIM] == pytest.approx(1.0) for regional in perfect.values())
    assert all(regional[Metric.MAE] == 0.0 for regional in perfect.values())


def test_a_box_thinner_than_the_ssim_window_is_widened_within_slices() -> None:
    brain, _ = brain_and_labels()
    prediction, reference = noisy_pair(brain, seed=3)
    tumour = np.zeros(brain.shape, dtype=bool)
    tumour[6, 14:17, 12:14] = True  # one slice, 3 x 2 pixels
    scores = region_scores(prediction, reference, {Region.TUMOUR_BBOX: tumour})[Region.TUMOUR_BBOX]
    # grown around its centre to 7 x 7 within the slice; the slice axis stays one slice thick
    widened = (slice(6, 7), slice(12, 19), slice(10, 17))
    local = slice_ssim(prediction[widened], reference[widened])[1]
    assert scores[Metric.SSIM] == pytest.approx(local[tumour[widened]].mean())
    assert scores[Metric.PSNR] == pytest.approx(
        peak_signal_noise_ratio(reference[tumour], prediction[tumour], data_range=1)
    )


def test_region_scores_refuse_mismatched_inputs() -> None:
    brain, _ = brain_and_labels()
    with pytest.raises(ValueError, match="differ in shape"):
        region_scores(np.zeros(brain.shape), np.zeros(brain.shape[1:]), {Region.BRAIN: brain})
    with pytest.raises(ValueError, match="non-empty mask"):
        region_scores(np.zeros(brain.shape), np.zeros(brain.shape), {Region.BRAIN: np.zeros_like(brain)})
    with pytest.raises(ValueError, match="non-empty mask"):
        region_scores(np.zeros(brain.shape), np.zeros(brain.shape), {Region.BRAIN: brain[1:]})
    prediction = np.zeros(brain.shape)
    prediction[3, 4, 5] = np.nan
    with pytest.raises(ValueError, match="prediction holds NaN"):
        region_scores(prediction, np.zeros(brain.shape), {Region.BRAIN: brain})


def test_wilcoxon_matches_scipy_and_handles_degenerate_pairs() -> None:
    rng = np.random.default_rng(1)
    first = rng.normal(30, 2, 12)
    second = first - rng.normal(0.5, 0.5, 12)
    expected = wilcoxon(first, second)
    result = wilcoxon_signed_rank(first, second)
    assert result.p_value == pytest.approx(expected.pvalue) and result.statistic == pytest.approx(expected.statistic)
    assert result.pairs == 12
    assert wilcoxon_signed_rank(second, first).p_value == pytest.approx(result.p_value)  # two-sided
    assert wilcoxon_signed_rank([1.0, 2.0], [1.0, 2.0]).p_value == 1.0
    assert np.isnan(wilcoxon_signed_rank([1.0], [2.0]).p_value)
    with pytest.raises(ValueError, match="one length"):
        wilcoxon_signed_rank([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="finite"):
        wilcoxon_signed_rank([1.0, np.nan], [1.0, 2.0])


@pytest.mark.parametrize("cases", [3, 4, 5, 8])
def test_wilcoxon_p_value_has_a_floor_of_two_over_two_to_the_n(cases: int) -> None:
    # Every case better, by different amounts: the most extreme outcome there is, yet p = 2 / 2^n.
    rng = np.random.default_rng(cases)
    second = rng.normal(25, 1, cases)
    first = second + rng.permutation(cases) + 1.0
    assert wilcoxon_signed_rank(first, second).p_value == pytest.approx(2.0 / 2**cases)


def test_mean_and_std_use_the_sample_deviation() -> None:
    assert mean_and_std([1.0, 3.0]) == pytest.approx((2.0, np.sqrt(2.0)))
    mean, std = mean_and_std([5.0])
    assert mean == 5.0 and np.isnan(std)  # one value has no sample deviation
    with pytest.raises(ValueError, match="empty"):
        mean_and_std([])
