"""Metrics agree with hand computation and with scikit-image's reference implementation."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from cones.metrics import mean_absolute_error, psnr, rescale_pair, ssim


def test_psnr_matches_hand_computation() -> None:
    reference = np.zeros((4, 4, 4))
    prediction = reference.copy()
    prediction[0, 0, 0] = 0.5  # mse = 0.25 / 64
    assert psnr(prediction, reference) == pytest.approx(10 * np.log10(1 / (0.25 / 64)))


def test_psnr_inside_mask_only_counts_masked_voxels() -> None:
    reference = np.zeros((2, 4, 4))
    prediction = reference.copy()
    prediction[1] = 1.0
    mask = np.zeros_like(reference, dtype=bool)
    mask[0] = True
    mask[1, 0, 0] = True  # one wrong voxel out of 17
    assert psnr(prediction, reference, mask) == pytest.approx(10 * np.log10(17))


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_ssim_is_the_mean_of_2d_slice_ssims_from_skimage(axis: int) -> None:
    rng = np.random.default_rng(0)
    reference = rng.random((16, 24, 20))
    prediction = np.clip(reference + rng.normal(0, 0.1, reference.shape), 0, 1)
    slices = [
        structural_similarity(np.take(reference, i, axis), np.take(prediction, i, axis), data_range=1.0)
        for i in range(reference.shape[axis])
    ]
    assert ssim(prediction, reference, axis=axis) == pytest.approx(np.mean(slices))
    assert ssim(reference, reference, axis=axis) == pytest.approx(1.0)
    assert ssim(prediction, reference, axis=axis) < 0.99
    assert ssim(prediction[0], reference[0]) == pytest.approx(
        structural_similarity(reference[0], prediction[0], data_range=1.0)
    )


def test_ssim_windows_do_not_cross_slices() -> None:
    # 2D windows: reordering the slices of both volumes alike changes nothing (a 3D window would mix them).
    rng = np.random.default_rng(2)
    reference = rng.random((8, 16, 16))
    prediction = np.clip(reference + rng.normal(0, 0.2, reference.shape), 0, 1)
    order = rng.permutation(8)
    assert ssim(prediction[order], reference[order]) == pytest.approx(ssim(prediction, reference), rel=1e-12)


def test_ssim_with_mask_averages_the_map_inside() -> None:
    rng = np.random.default_rng(1)
    reference = rng.random((8, 20, 20))
    prediction = reference.copy()
    prediction[:, :10] = rng.random((8, 10, 20))
    mask = np.zeros(reference.shape, dtype=bool)
    mask[:, 14:] = True
    assert ssim(prediction, reference, mask) > ssim(prediction, reference)


def test_rescale_pair_uses_the_reference_range_for_both() -> None:
    prediction, reference = rescale_pair(np.array([0.0, 150.0, 300.0]), np.array([100.0, 200.0, 300.0]))
    np.testing.assert_allclose(reference, [0.0, 0.5, 1.0])
    np.testing.assert_allclose(prediction, [0.0, 0.25, 1.0])
    with pytest.raises(ValueError, match="value range"):
        rescale_pair(np.ones(3), np.ones(3))


def test_mean_absolute_error_and_shape_checks() -> None:
    assert mean_absolute_error(np.array([1.0, 3.0]), np.array([2.0, 1.0])) == pytest.approx(1.5)
    with pytest.raises(ValueError, match="differ in shape"):
        psnr(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="mask is empty"):
        ssim(np.zeros((8, 8)), np.zeros((8, 8)), np.zeros((8, 8), dtype=bool))
    with pytest.raises(ValueError, match="prediction holds NaN"):
        mean_absolute_error(np.array([np.nan, 1.0]), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="reference holds NaN or infinite"):
        ssim(np.zeros((8, 8)), np.full((8, 8), np.inf))
    with pytest.raises(ValueError, match="2D image or a 3D stack"):
        ssim(np.zeros((2, 8, 8, 8)), np.zeros((2, 8, 8, 8)))
