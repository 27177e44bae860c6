"""Augmentation: one spatial transform for all channels, intensity on the sources only, background -1."""

from __future__ import annotations

import numpy as np
import pytest

from cones.data import AugmentationConfig, augment_sample

SPATIAL_ONLY = {"intensity_probability": 0.0}
INTENSITY_ONLY = {"flip_probability": 0.0, "max_rotation_degrees": 0.0, "intensity_probability": 1.0}


def sample(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sources (2, 20, 24), target (1, 20, 24) and mask of an off-centre, asymmetric blob."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:20, 0:24]
    mask = ((rows - 9) / 7.0) ** 2 + ((cols - 10) / 9.0) ** 2 < 1.0
    mask[3:6, 14:20] = True
    values = rng.uniform(-0.9, 0.9, (3, 20, 24)).astype(np.float32)
    values[:, ~mask] = -1.0
    return values[:2], values[2:], mask


def test_intensity_augmentation_changes_sources_only() -> None:
    sources, target, mask = sample()
    originals = (sources.copy(), target.copy(), mask.copy())
    config = AugmentationConfig(**INTENSITY_ONLY, noise_std=0.1, blur_sigma_range=(0.5, 1.0))
    new_sources, new_target, new_mask = augment_sample(sources, target, mask, config, np.random.default_rng(1))
    np.testing.assert_array_equal(new_target, target)
    np.testing.assert_array_equal(new_mask, mask)
    assert not np.allclose(new_sources[:, mask], sources[:, mask], atol=1e-3)
    assert np.all(new_sources[:, ~mask] == -1.0), "background stays exactly -1"
    assert new_sources.min() >= -1.0 and new_sources.max() <= 1.0
    assert new_sources.dtype == np.float32
    for before, after in zip(originals, (sources, target, mask), strict=True):
        np.testing.assert_array_equal(before, after)


def test_each_source_gets_its_own_intensity_change() -> None:
    sources, target, mask = sample()
    sources[1] = sources[0]
    config = AugmentationConfig(**INTENSITY_ONLY, noise_std=0.0, blur_sigma_range=(0.0, 0.0))
    new_sources, _, _ = augment_sample(sources, target, mask, config, np.random.default_rng(2))
    assert not np.allclose(new_sources[0], new_sources[1])


def test_flip_moves_sources_target_and_mask_together() -> None:
    sources, target, mask = sample()
    config = AugmentationConfig(flip_probability=1.0, max_rotation_degrees=0.0, **SPATIAL_ONLY)
    new_sources, new_target, new_mask = augment_sample(sources, target, mask, config, np.random.default_rng(0))
    np.testing.assert_array_equal(new_sources, sources[..., ::-1])
    np.testing.assert_array_equal(new_target, target[..., ::-1])
    np.testing.assert_array_equal(new_mask, mask[:, ::-1])


def test_rotation_applies_one_transform_to_all_channels() -> None:
    sources, target, mask = sample()
    target = sources[:1].copy()
    config = AugmentationConfig(flip_probability=0.0, max_rotation_degrees=10.0, **SPATIAL_ONLY)
    new_sources, new_target, new_mask = augment_sample(sources, target, mask, config, np.random.default_rng(3))
    np.testing.assert_array_equal(new_target[0], new_sources[0])
    assert not np.array_equal(new_mask, mask), "the mask rotated too"
    assert abs(int(new_mask.sum()) - int(mask.sum())) < 0.1 * mask.sum(), "nearest neighbour keeps the area"
    assert np.all(new_sources[:, ~new_mask] == -1.0) and np.all(new_target[:, ~new_mask] == -1.0)


def test_augmentation_is_deterministic_for_a_seed() -> None:
    sources, target, mask = sample()
    config = AugmentationConfig(intensity_probability=1.0)
    first = augment_sample(sources, target, mask, config, np.random.default_rng(42))
    second = augment_sample(sources, target, mask, config, np.random.default_rng(42))
    other = augment_sample(sources, target, mask, config, np.random.default_rng(43))
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], other[0])


def test_disabled_augmentation_is_the_identity() -> None:
    sources, target, mask = sample()
    config = AugmentationConfig(flip_probability=0.0, max_rotation_degrees=0.0, intensity_probability=0.0)
    for before, after in zip(
        (sources, target, mask), augment_sample(sources, target, mask, config, np.random.default_rng(0)), strict=True
    ):
        np.testing.assert_array_equal(after, before)


def test_augmentation_config_round_trips_through_json_dicts() -> None:
    config = AugmentationConfig(gamma_range=(0.7, 1.4), noise_std=0.0)
    assert AugmentationConfig.from_dict(config.to_dict()) == config
    assert config.to_dict()["gamma_range"] == [0.7, 1.4]


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("flip_probability", 1.5, r"flip_probability must be in \[0, 1\], got 1.5"),
        ("intensity_probability", -0.1, r"intensity_probability must be in \[0, 1\], got -0.1"),
        ("max_rotation_degrees", 90.0, r"max_rotation_degrees must be in \[0, 45\], got 90.0"),
        ("gamma_range", (1.2, 0.8), r"gamma_range must be \(low, high\) with 0.001 <= low <= high, got \(1.2, 0.8\)"),
        ("gamma_range", (0.0, 1.0), "gamma_range must be"),
        ("contrast_range", (0.9,), "contrast_range must be"),
        ("blur_sigma_range", (-0.5, 1.0), r"blur_sigma_range must be \(low, high\) with 0.0 <= low"),
        ("noise_std", -0.01, "noise_std must be >= 0, got -0.01"),
    ],
)
def test_augmentation_config_refuses_bad_values(field: str, value: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        AugmentationConfig(**{field: value})


def test_augment_sample_refuses_mismatched_shapes() -> None:
    sources, target, mask = sample()
    with pytest.raises(ValueError, match=r"expected sources \(C_s, h, w\), target \(C_t, h, w\) and mask \(h, w\)"):
        augment_sample(sources, target[:, :10], mask, AugmentationConfig(), np.random.default_rng(0))
