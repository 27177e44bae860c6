"""BraSyn 2023's SSIM: its 3D Gaussian SSIM against scikit-image, the per-volume percentile scaling, the two masks."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from cones.metrics.brasyn import brasyn_ssim, gaussian_ssim_3d, percentile_scaled


def volumes(seed: int = 0, shape: tuple[int, int, int] = (24, 30, 28)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A real-like volume (background 0), a noisy synthesis of it and a tumour mask."""
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(*(np.linspace(-1, 1, n) for n in shape), indexing="ij")
    brain = z**2 + y**2 + x**2 < 0.8
    real = np.where(brain, 300 + 100 * rng.random(shape), 0.0)
    synthesized = np.where(brain, real + rng.normal(0, 30, shape), 0.0)
    tumour = brain & (x > 0.2) & (np.abs(z) < 0.4)
    return synthesized, real, tumour


def test_gaussian_ssim_3d_equals_scikit_image_with_the_challenge_window() -> None:
    rng = np.random.default_rng(1)
    first = rng.random((20, 24, 22))
    second = np.clip(first + rng.normal(0, 0.2, first.shape), 0, 1)
    expected = structural_similarity(
        first, second, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )
    assert gaussian_ssim_3d(first, second) == pytest.approx(expected, abs=1e-5)
    assert gaussian_ssim_3d(first, first) == pytest.approx(1.0, abs=1e-6)


def test_percentile_scaling_uses_the_whole_volume_and_clips() -> None:
    volume = np.concatenate([np.zeros(900), np.linspace(1, 100, 100)])
    scaled = percentile_scaled(volume)
    assert scaled.min() == 0.0 and scaled.max() == pytest.approx(1.0)
    assert scaled[-1] == scaled[-2] == pytest.approx(1.0)  # the brightest voxels are clipped at the 99.5th percentile
    with pytest.raises(ValueError, match="constant"):
        percentile_scaled(np.zeros(10))


def test_brasyn_ssim_forgives_a_global_scale_and_scores_the_masks_apart() -> None:
    synthesized, real, tumour = volumes()
    scores = brasyn_ssim(synthesized, real, tumour)
    scaled = brasyn_ssim(3 * synthesized, real, tumour)
    assert (scaled.tumour, scaled.non_tumour) == pytest.approx((scores.tumour, scores.non_tumour), abs=1e-6)
    assert brasyn_ssim(real, real, tumour).tumour == pytest.approx(1.0, abs=1e-6)
    spoiled_tumour = np.where(tumour, synthesized[::-1, ::-1, ::-1], synthesized)
    spoiled = brasyn_ssim(spoiled_tumour, real, tumour)
    assert spoiled.tumour < scores.tumour - 0.01
    assert spoiled.non_tumour == pytest.approx(scores.non_tumour, abs=0.02)
    expected = gaussian_ssim_3d(percentile_scaled(synthesized) * tumour, percentile_scaled(real) * tumour)
    assert scores.tumour == pytest.approx(expected)
    with pytest.raises(ValueError, match="mask is empty"):
        brasyn_ssim(synthesized, real, np.zeros_like(tumour))
