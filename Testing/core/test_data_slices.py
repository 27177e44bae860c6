"""Training samples: crops at their offsets, foreground bias, bright-target focus, padding, seeded determinism."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from synthetic_cases import write_dataset
from torch.utils.data import DataLoader

from cones.config import NormalizationConfig
from cones.data import (
    AugmentationConfig,
    SliceCache,
    SliceDataset,
    bright_target_focus,
    build_slice_cache,
    crop_slice,
    find_cases,
    sample_batch,
)

CROP = (12, 10)
BRIGHT = 0.5  # the synthetic lesion, bright in T1ce only, is the only target above it


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> SliceCache:
    root = tmp_path_factory.mktemp("slices")
    write_dataset(root / "data", cases=2, shape=(12, 20, 24))
    cases = find_cases(root / "data")
    return build_slice_cache(cases, ("t1", "t2", "flair"), ("t1ce",), root / "cache", NormalizationConfig())


def window(array: np.ndarray, offset: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    row, col = (int(v) for v in offset)
    return np.asarray(array[..., row : row + size[0], col : col + size[1]], dtype=np.float32)


def test_crop_is_the_window_of_the_slice_at_its_offset(cache: SliceCache) -> None:
    dataset = SliceDataset(cache, CROP, seed=5)
    offsets = set()
    for index in range(len(dataset)):
        sample = dataset[index]
        assert sample["sources"].shape == (3, *CROP) and sample["target"].shape == (1, *CROP)
        assert sample["sources"].dtype == torch.float32 and sample["mask"].dtype == torch.bool
        assert sample["offset"].dtype == torch.int64 and sample["offset"].shape == (2,)
        row, col = (int(v) for v in sample["offset"])
        assert 0 <= row <= 20 - CROP[0] and 0 <= col <= 24 - CROP[1]
        np.testing.assert_array_equal(sample["sources"].numpy(), window(cache.sources[index], sample["offset"], CROP))
        np.testing.assert_array_equal(sample["target"].numpy(), window(cache.targets[index], sample["offset"], CROP))
        np.testing.assert_array_equal(sample["mask"].numpy(), window(cache.masks[index], sample["offset"], CROP) > 0)
        assert sample["mask"].any(), "crops always hold foreground"
        offsets.add((row, col))
    assert len(offsets) > 3, "crop positions vary"


def test_crop_larger_than_the_slice_is_padded_at_the_bottom_right_with_offset_zero(cache: SliceCache) -> None:
    sample = crop_slice(cache, 3, (24, 16), np.random.default_rng(0))
    assert sample["offset"][0] == 0, "rows: the slice (20) is smaller than the crop (24)"
    col = int(sample["offset"][1])
    np.testing.assert_array_equal(sample["sources"][:, :20], np.asarray(cache.sources[3][:, :, col : col + 16]))
    assert np.all(sample["sources"][:, 20:] == -1.0) and np.all(sample["target"][:, 20:] == -1.0)
    assert not sample["mask"][20:].any()


def test_whole_slices_have_offset_zero(cache: SliceCache) -> None:
    sample = SliceDataset(cache)[2]
    assert sample["offset"].tolist() == [0, 0] and sample["sources"].shape == (3, 20, 24)
    np.testing.assert_array_equal(sample["sources"].numpy(), np.asarray(cache.sources[2], dtype=np.float32))


def test_items_are_reproducible_per_seed_epoch_and_index(cache: SliceCache) -> None:
    augmentation = AugmentationConfig(intensity_probability=1.0)
    first, again = SliceDataset(cache, CROP, augmentation, seed=3), SliceDataset(cache, CROP, augmentation, seed=3)
    other_seed = SliceDataset(cache, CROP, augmentation, seed=4)
    items = [first[i] for i in range(len(first))]
    for index, item in enumerate(items):
        for key, value in again[index].items():
            assert torch.equal(value, item[key])
    assert any(not torch.equal(other_seed[i]["sources"], items[i]["sources"]) for i in range(len(items)))
    first.set_epoch(1)
    assert any(not torch.equal(first[i]["sources"], items[i]["sources"]) for i in range(len(items)))
    first.set_epoch(0)
    assert torch.equal(first[0]["sources"], items[0]["sources"])


def test_dataset_restricted_to_rows_and_batched_by_a_dataloader(cache: SliceCache) -> None:
    rows = cache.slices_of(["CASE-001"])
    dataset = SliceDataset(cache, CROP, AugmentationConfig(), seed=0, rows=rows)
    assert len(dataset) == len(rows) < len(cache)
    sample = dataset[0]
    assert torch.all(sample["target"][:, ~sample["mask"]] == -1), "background stays -1 after augmentation"
    batch = next(iter(DataLoader(dataset, batch_size=4)))
    assert batch["sources"].shape == (4, 3, *CROP) and batch["offset"].shape == (4, 2)
    full = SliceDataset(cache, None, seed=0, rows=rows)[0]
    np.testing.assert_array_equal(full["sources"].numpy(), np.asarray(cache.sources[rows[0]], dtype=np.float32))


def test_sample_batch_is_reproducible_and_draws_from_the_given_rows(cache: SliceCache) -> None:
    rows = np.array([5])
    batch = sample_batch(cache, rows, 3, CROP, np.random.default_rng(11))
    assert batch["sources"].shape == (3, 3, *CROP) and batch["offset"].dtype == np.int64
    for sample in range(3):
        offset = torch.from_numpy(batch["offset"][sample])
        np.testing.assert_array_equal(batch["sources"][sample], window(cache.sources[5], offset, CROP))
    again = sample_batch(cache, rows, 3, CROP, np.random.default_rng(11))
    for key, value in batch.items():
        np.testing.assert_array_equal(again[key], value)


def holds_bright_target(target: np.ndarray, mask: np.ndarray) -> bool:
    return bool(((target.max(axis=0) > BRIGHT) & mask).any())


def test_bright_target_focus_puts_its_share_of_crops_on_bright_target_pixels(cache: SliceCache) -> None:
    rows = np.arange(len(cache))
    focus = bright_target_focus(cache, rows, fraction=0.5, threshold=BRIGHT, min_pixels=1)
    expected = [
        row for row in rows if holds_bright_target(np.asarray(cache.targets[row]), np.asarray(cache.masks[row]))
    ]
    assert focus.rows.tolist() == expected and 0 < len(expected) < len(rows)

    focused, uniform = [], []
    for seed in range(20):
        batch = sample_batch(cache, rows, 4, CROP, np.random.default_rng(seed), focus=focus)
        hits = [holds_bright_target(target, mask) for target, mask in zip(batch["target"], batch["mask"], strict=True)]
        focused += hits[:2]
        uniform += hits[2:]
    assert all(focused), "half the batch (2 of 4 crops) holds a bright target pixel"
    assert not all(uniform), "the other half is drawn uniformly, as without focus"


def test_bright_target_focus_of_zero_draws_the_batches_of_uniform_sampling(cache: SliceCache) -> None:
    """Fraction 0 is the paper's sampling: the same batches for a seed, so runs and resumes are unchanged."""
    rows = np.arange(len(cache))
    focus = bright_target_focus(cache, rows, fraction=0.0, threshold=BRIGHT)
    with_focus = sample_batch(cache, rows, 4, CROP, np.random.default_rng(7), focus=focus)
    without = sample_batch(cache, rows, 4, CROP, np.random.default_rng(7))
    for key, value in without.items():
        np.testing.assert_array_equal(with_focus[key], value)


@pytest.mark.parametrize(
    ("fraction", "threshold", "min_pixels", "match"),
    [
        (1.5, BRIGHT, 1, r"fraction must lie in \[0, 1\], got 1.5"),
        (0.5, 1.0, 1, r"threshold must lie in \(-1, 1\)"),
        (0.5, BRIGHT, 20 * 24 + 1, "no slice has 481 foreground target pixels above 0.5"),
    ],
)
def test_bad_bright_target_focus_is_refused(
    cache: SliceCache, fraction: float, threshold: float, min_pixels: int, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        bright_target_focus(cache, np.arange(len(cache)), fraction, threshold, min_pixels)


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda c: SliceDataset(c, (0, 8)), ValueError, r"crop_size must be two positive sizes or None, got \(0, 8\)"),
        (lambda c: SliceDataset(c, CROP, seed=-1), ValueError, "seed must be >= 0, got -1"),
        (lambda c: SliceDataset(c, CROP, rows=np.array([0, len(c)])), ValueError, "rows must lie in"),
        (lambda c: SliceDataset(c, CROP)[len(c)], IndexError, "out of range"),
        (lambda c: SliceDataset(c, CROP).set_epoch(-2), ValueError, "epoch must be >= 0, got -2"),
        (lambda c: crop_slice(c, -1, CROP, np.random.default_rng()), ValueError, "row must be in"),
        (lambda c: sample_batch(c, np.array([]), 2, CROP, np.random.default_rng()), ValueError, "rows must not be"),
        (lambda c: sample_batch(c, np.array([0]), 0, CROP, np.random.default_rng()), ValueError, "batch_size must"),
    ],
)
def test_bad_sampling_arguments_are_refused(
    cache: SliceCache, make: Callable[[SliceCache], object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        make(cache)


def test_slices_without_cache_path_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no readable slice cache"):
        SliceCache(tmp_path)
