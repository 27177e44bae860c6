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


def test_ssim_of_identical_images_is_one_and_matches_skimage() -> None:
    rng = np.random.default_rng(0)
    reference = rng.random((16, 24, 24))
    prediction = np.clip(reference + rng.normal(0, 0.1, reference.shape), 0, 1)
    assert ssim(reference, reference) == pytest.approx(1.0)
    assert ssim(prediction, reference) == pytest.approx(structural_similarity(reference, prediction, data_range=1.0))
    assert ssim(prediction, reference) < 0.99


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
