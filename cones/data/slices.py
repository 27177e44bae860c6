"""Training samples drawn from a :class:`~cones.data.cache.SliceCache`: foreground crops with their offsets.

Offset convention: a sample's ``offset`` is the (row, column) of its crop's top-left pixel in the
frame of the whole cached slice, which is the frame inference uses (whole slices, offset 0). The
positional encoding is computed from it, so it is always exactly the crop's position and is never
negative: a slice smaller than the crop is padded at the bottom and right with background (-1,
mask False) and its offset along that side is 0, just as the cache pads smaller cases.
Augmentation then leaves the offset unchanged (see :mod:`cones.data.augment` for why).

Bright-target crops: what makes T1ce hard to synthesize, the enhancing rim, vessels and dura, is a
percent or two of the brain's pixels, so uniformly placed crops show it rarely and the L1 term
barely notices a model that leaves it out. A :class:`BrightTargetFocus` places a share of each
batch's crops around a target pixel brighter than a threshold, from slices that hold such pixels;
the rest stay uniform, so the model still sees the whole brain as often as it is asked to.

Randomness comes only from the ``numpy.random.Generator`` passed in, or, in
:class:`SliceDataset`, one derived from (seed, epoch, index): no global seeding, and a sample
is the same whichever worker draws it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from cones.data.augment import AugmentationConfig, augment_sample
from cones.data.cache import SliceCache

__all__ = ["BrightTargetFocus", "SliceDataset", "bright_target_focus", "crop_slice", "sample_batch"]

_BRIGHT_ROWS_CHUNK = 256  # slices scanned at a time when looking for bright targets (bounds memory)


def _check_crop(crop_size: tuple[int, int] | None) -> tuple[int, int] | None:
    if crop_size is None:
        return None
    if len(crop_size) != 2 or min(crop_size) < 1:
        raise ValueError(f"crop_size must be two positive sizes or None, got {crop_size!r}")
    return int(crop_size[0]), int(crop_size[1])


def _crop_offset(mask: np.ndarray, crop_size: tuple[int, int], rng: np.random.Generator) -> tuple[int, int]:
    """A random top-left such that the crop lies in the slice (where it fits) and holds a ``mask`` pixel.

    A pixel of ``mask`` (the foreground, or its bright target pixels) is drawn uniformly, then a
    window containing it: crops are thereby biased towards where the brain is, and never all
    background, which would teach nothing.
    """
    rows, cols = np.nonzero(mask)
    pick = int(rng.integers(len(rows))) if len(rows) else None
    offset = []
    for extent, size, pixels in zip(mask.shape, crop_size, (rows, cols), strict=True):
        if extent <= size:
            offset.append(0)
            continue
        if pick is None:
            offset.append(int(rng.integers(extent - size + 1)))
            continue
        pixel = int(pixels[pick])
        offset.append(int(rng.integers(max(0, pixel - size + 1), min(extent - size, pixel) + 1)))
    return offset[0], offset[1]


def _window(array: np.ndarray, offset: tuple[int, int], crop_size: tuple[int, int], fill: float) -> np.ndarray:
    """``array[..., r:r+h, c:c+w]`` as a new array, padded with ``fill`` at the bottom/right past the slice."""
    (row, col), (height, width) = offset, crop_size
    window = np.asarray(array[..., row : row + height, col : col + width])
    pad = [(0, 0)] * (window.ndim - 2) + [(0, height - window.shape[-2]), (0, width - window.shape[-1])]
    return np.pad(window, pad, constant_values=fill)


def crop_slice(
    cache: SliceCache,
    row: int,
    crop_size: tuple[int, int] | None,
    rng: np.random.Generator,
    augmentation: AugmentationConfig | None = None,
    bright_threshold: float | None = None,
) -> dict[str, np.ndarray]:
    """One training sample from cache row ``row``.

    Args:
        cache: the slice cache.
        row: the slice's row in the cache.
        crop_size: (rows, columns) of the crop; None for the whole slice (offset 0), as used for
            validation.
        rng: the only source of randomness (crop position and augmentation).
        augmentation: applied after cropping when given.
        bright_threshold: when given, the crop holds a foreground pixel whose target (any
            channel) exceeds this normalized value, if the slice has one.

    Returns:
        ``sources (C_s, h, w)`` and ``target (C_t, h, w)`` float32, ``mask (h, w)`` bool and
        ``offset (2,)`` int64, the crop's top-left (row, column) in the slice.

    Raises:
        ValueError: ``row`` is outside the cache or ``crop_size`` is invalid.
    """
    crop_size = _check_crop(crop_size)
    if not 0 <= row < len(cache):
        raise ValueError(f"row must be in [0, {len(cache)}), got {row!r}")
    mask = np.asarray(cache.masks[row])
    crop_size = crop_size or mask.shape
    anchors = mask
    if bright_threshold is not None:
        bright = mask & (np.asarray(cache.targets[row]).max(axis=0) > bright_threshold)
        anchors = bright if bright.any() else mask
    offset = _crop_offset(anchors, crop_size, rng) if crop_size != mask.shape else (0, 0)
    sources = _window(cache.sources[row], offset, crop_size, -1.0).astype(np.float32)
    target = _window(cache.targets[row], offset, crop_size, -1.0).astype(np.float32)
    mask = _window(mask, offset, crop_size, False)
    if augmentation is not None:
        sources, target, mask = augment_sample(sources, target, mask, augmentation, rng)
    return {"sources": sources, "target": target, "mask": mask, "offset": np.array(offset, dtype=np.int64)}


@dataclass(frozen=True)
class BrightTargetFocus:
    """How many crops of a batch go to bright target pixels, and where those are.

    Attributes:
        fraction: share of each batch's crops (rounded to whole crops) placed around a bright pixel.
        threshold: normalized target value (in [-1, 1]) above which a pixel counts as bright.
        rows: the cache rows holding bright pixels, which those crops are drawn from.
    """

    fraction: float
    threshold: float
    rows: np.ndarray


def bright_target_focus(
    cache: SliceCache, rows: np.ndarray, fraction: float, threshold: float, min_pixels: int = 20
) -> BrightTargetFocus:
    """Find the slices among ``rows`` with at least ``min_pixels`` foreground target pixels above ``threshold``.

    Raises:
        ValueError: ``fraction`` is outside [0, 1], ``threshold`` outside (-1, 1), or ``fraction``
            is positive but no slice has bright pixels (a threshold above the data's range).
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must lie in [0, 1], got {fraction!r}")
    if not -1.0 < threshold < 1.0:
        raise ValueError(f"threshold must lie in (-1, 1) (targets are normalized to [-1, 1]), got {threshold!r}")
    rows = np.asarray(rows, dtype=np.int64)
    counts = [
        ((np.asarray(cache.targets[chunk]).max(axis=1) > threshold) & np.asarray(cache.masks[chunk])).sum(axis=(1, 2))
        for chunk in (rows[start : start + _BRIGHT_ROWS_CHUNK] for start in range(0, len(rows), _BRIGHT_ROWS_CHUNK))
    ]
    bright_rows = rows[np.concatenate(counts) >= min_pixels] if counts else rows
    if fraction > 0 and len(bright_rows) == 0:
        raise ValueError(
            f"no slice has {min_pixels} foreground target pixels above {threshold}: lower the threshold "
            "or sample uniformly (fraction 0)"
        )
    return BrightTargetFocus(fraction=float(fraction), threshold=float(threshold), rows=bright_rows)


def sample_batch(
    cache: SliceCache,
    rows: np.ndarray,
    batch_size: int,
    crop_size: tuple[int, int],
    rng: np.random.Generator,
    augmentation: AugmentationConfig | None = None,
    focus: BrightTargetFocus | None = None,
) -> dict[str, np.ndarray]:
    """Draw ``batch_size`` random crops from random slices among ``rows`` (with replacement).

    With ``focus``, ``round(focus.fraction * batch_size)`` of them come from ``focus.rows`` and hold
    a bright target pixel; they come first in the batch (which is not shuffled further: every
    sample is independent). Seeding ``rng`` from (seed, iteration, rank) makes every batch
    reproducible, which lets a resumed run continue exactly.

    Returns:
        ``sources (B, C_s, h, w)``, ``target (B, C_t, h, w)``, ``mask (B, h, w)`` and ``offset (B, 2)``.

    Raises:
        ValueError: ``rows`` is empty or ``batch_size`` is not positive.
    """
    if len(rows) == 0:
        raise ValueError("rows must not be empty: no slice to sample from")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size!r}")
    focused = round(focus.fraction * batch_size) if focus is not None else 0
    samples = [
        crop_slice(cache, int(row), crop_size, rng, augmentation, focus.threshold)
        for row in (rng.choice(focus.rows, size=focused) if focused else ())
    ]
    samples += [
        crop_slice(cache, int(row), crop_size, rng, augmentation) for row in rng.choice(rows, size=batch_size - focused)
    ]
    return {key: np.stack([sample[key] for sample in samples]) for key in samples[0]}


class SliceDataset(Dataset):
    """A torch Dataset of (optionally cropped and augmented) cache slices.

    Item ``i`` uses a generator seeded with ``(seed, epoch, i)``: reproducible, independent of the
    DataLoader's worker count and order, and different every epoch once :meth:`set_epoch` is called
    (call it before creating the epoch's iterator; persistent workers keep the epoch they started with).

    Args:
        cache: the slice cache.
        crop_size: (rows, columns) of random foreground crops; None for whole slices.
        augmentation: applied to every item when given.
        seed: non-negative base seed.
        rows: the cache rows this dataset covers (e.g. from :meth:`SliceCache.slices_of`); all by default.

    Raises:
        ValueError: ``seed`` is negative, ``crop_size`` invalid, or ``rows`` outside the cache.
    """

    def __init__(
        self,
        cache: SliceCache,
        crop_size: tuple[int, int] | None = None,
        augmentation: AugmentationConfig | None = None,
        seed: int = 0,
        rows: np.ndarray | None = None,
    ) -> None:
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed!r}")
        self.rows = np.arange(len(cache)) if rows is None else np.asarray(rows, dtype=np.int64)
        if len(self.rows) and not (self.rows.min() >= 0 and self.rows.max() < len(cache)):
            raise ValueError(f"rows must lie in [0, {len(cache)}), got {self.rows.min()}..{self.rows.max()}")
        self.cache, self.crop_size, self.augmentation = cache, _check_crop(crop_size), augmentation
        self.seed, self.epoch = int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        """Draw different crops and augmentations in ``epoch`` (>= 0)."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch!r}")
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        """``sources (C_s, h, w)``, ``target (C_t, h, w)`` float32, ``mask (h, w)`` bool, ``offset (2,)`` int64."""
        if not 0 <= index < len(self.rows):
            raise IndexError(f"index {index} out of range for {len(self.rows)} slices")
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        sample = crop_slice(self.cache, int(self.rows[index]), self.crop_size, rng, self.augmentation)
        return {key: torch.from_numpy(np.ascontiguousarray(value)) for key, value in sample.items()}
