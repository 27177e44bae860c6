"""The shared normalization: hand-computed percentiles, exact background, clear refusals."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from cones.config import NormalizationConfig
from cones.data import denormalize_volume, foreground_mask, normalize_volume

Change = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
CONFIG = NormalizationConfig(lower_percentile=5.0, upper_percentile=95.0, output_scale=1000.0)


def brain(seed: int = 0) -> np.ndarray:
    """(12, 20, 24) volume: a positive block with a few very bright voxels, 0 around it."""
    rng = np.random.default_rng(seed)
    volume = np.zeros((12, 20, 24), dtype=np.float32)
    volume[2:10, 4:16, 5:19] = rng.gamma(4.0, 100.0, (8, 12, 14))
    volume[5, 8, 8:12] = 50_000.0  # vessels: the percentile scale must ignore them
    return volume


def test_foreground_mask_is_the_union_over_sequences() -> None:
    first, second = np.zeros((2, 3, 4)), np.zeros((2, 3, 4))
    first[0, 0, 0], second[1, 2, 3], second[1, 1, 1] = 5.0, 2.0, -3.0
    second[0, 1, 1] = np.nan
    mask = foreground_mask([first, second], NormalizationConfig())
    assert mask.dtype == bool and sorted(zip(*np.nonzero(mask), strict=True)) == [(0, 0, 0), (1, 2, 3)]
    raised = foreground_mask([first, second], NormalizationConfig(foreground_threshold=3.0))
    assert np.count_nonzero(raised) == 1


@pytest.mark.parametrize(
    ("volumes", "match"),
    [
        ([], "volumes must not be empty"),
        ([np.ones((2, 3, 4)), np.ones((2, 3, 5))], r"volumes must share one shape, got \[\(2, 3, 4\), \(2, 3, 5\)\]"),
        ([np.zeros((2, 3, 4)), -np.ones((2, 3, 4))], "empty foreground: no voxel above foreground_threshold=0.0"),
    ],
)
def test_foreground_mask_refuses_bad_volumes(volumes: list[np.ndarray], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        foreground_mask(volumes, NormalizationConfig())


def test_normalize_volume_matches_hand_computed_percentiles() -> None:
    volume = brain()
    mask = foreground_mask([volume], CONFIG)
    low, high = np.percentile(volume[mask], [5.0, 95.0])
    expected = np.where(mask, np.clip(2.0 * (volume - low) / (high - low) - 1.0, -1.0, 1.0), -1.0)
    normalized = normalize_volume(volume, mask, CONFIG, name="T2")
    assert normalized.dtype == np.float32 and normalized.shape == volume.shape
    np.testing.assert_allclose(normalized, expected, atol=1e-5)
    assert np.all(normalized[~mask] == -1.0), "background is exactly -1"
    assert normalized.min() == -1.0 and normalized.max() == 1.0
    inside = normalized[mask]
    assert np.mean(inside <= -1.0) == pytest.approx(0.05, abs=0.01)
    assert np.mean(inside >= 1.0) == pytest.approx(0.05, abs=0.01)


def test_normalize_volume_ignores_the_background_for_percentiles() -> None:
    volume = brain()
    mask = volume > 0
    padded = np.pad(volume, 20)
    padded_mask = np.pad(mask, 20)
    np.testing.assert_array_equal(
        normalize_volume(padded, padded_mask, CONFIG)[20:-20, 20:-20, 20:-20], normalize_volume(volume, mask, CONFIG)
    )


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda v, m: (np.where(m, np.nan, v), m), "T1ce: the volume contains NaN or infinite values"),
        (lambda v, m: (np.where(m, np.inf, v), m), "T1ce: the volume contains NaN or infinite values"),
        (lambda v, m: (np.where(m, 7.0, v), m), r"T1ce: the volume is constant inside the foreground .* both 7"),
        (lambda v, m: (v, np.zeros_like(m)), "T1ce: the foreground mask is empty"),
        (lambda v, m: (v, m[:-1]), r"T1ce: volume shape \(12, 20, 24\) differs from mask shape \(11, 20, 24\)"),
    ],
)
def test_normalize_volume_refuses_unusable_volumes(change: Change, match: str) -> None:
    volume = brain()
    volume, mask = change(volume, volume > 0)
    with pytest.raises(ValueError, match=match):
        normalize_volume(volume, mask, CONFIG, name="T1ce")


def test_denormalize_volume_uses_the_documented_scale_and_zero_background() -> None:
    mask = np.zeros((1, 2, 3), dtype=bool)
    mask[0, :, :2] = True
    output = np.array([[[-1.0, 0.0, 0.3], [1.0, 1.5, -0.2]]], dtype=np.float32)
    result = denormalize_volume(output, mask, CONFIG)
    assert result.dtype == np.float32
    np.testing.assert_allclose(result, [[[0.0, 500.0, 0.0], [1000.0, 1000.0, 0.0]]], atol=1e-4)
    with pytest.raises(ValueError, match=r"synthesized T1ce: volume shape \(1, 2, 3\) differs from mask shape"):
        denormalize_volume(output, mask[:, :1], CONFIG, name="synthesized T1ce")


def test_denormalize_inverts_normalize_inside_the_percentile_range() -> None:
    volume = brain()
    mask = volume > 0
    low, high = np.percentile(volume[mask], [5.0, 95.0])
    restored = denormalize_volume(normalize_volume(volume, mask, CONFIG), mask, CONFIG)
    inside = mask & (volume > low) & (volume < high)
    np.testing.assert_allclose(restored[inside], (volume[inside] - low) / (high - low) * 1000.0, rtol=1e-4, atol=1e-2)
