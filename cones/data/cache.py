"""A disk cache of normalized training slices, reused across epochs and runs.

Reading and normalizing gzipped NIfTI for every sample made the reference code slow. Here each
case is read once: its sequences are normalized with one foreground mask built from the sources
(exactly as inference does), slices along ``axis`` that hold enough foreground are kept, and the
result is stored in ``cache_dir`` as::

    index.json     format, fingerprint, its description, sequences, axis, dtype, per-case slice indices
    sources.npy    (N, C_s, H, W)  normalized sources, float16 by default (values in [-1, 1])
    targets.npy    (N, C_t, H, W)  normalized targets, same dtype
    masks.npy      (N, H, W)       bool foreground masks

The arrays are opened as memory maps, so the cache may be larger than RAM and shared by DataLoader
workers. Slices of cases with different in-plane sizes are padded at the bottom and right with
background, which keeps every pixel's (row, column) index, and so its positional encoding,
unchanged. ``index.json`` is written last and atomically: a build that was interrupted has no index
and is redone.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib.format import open_memmap

from cones.config import NormalizationConfig
from cones.data.discovery import CaseFiles
from cones.data.fingerprint import CACHE_FORMAT, CacheSpec
from cones.data.geometry import load_case
from cones.data.io import image_to_array
from cones.data.normalization import foreground_mask, normalize_volume
from cones.sequences import Sequence, parse_sequences

__all__ = ["SliceCache", "build_slice_cache"]

logger = logging.getLogger(__name__)

_INDEX = "index.json"
_ARRAYS = ("sources", "targets", "masks")


class SliceCache:
    """An opened slice cache (see the module docstring for its files).

    Pickling keeps only the directory and reopens the memory maps, so a DataLoader worker started
    with ``spawn`` maps the files instead of receiving a copy of the whole cache.

    Attributes:
        directory: the cache folder.
        fingerprint: sha256 hex of what the cache was built from (see :func:`data_fingerprint`).
        source_sequences: the sequences of the ``sources`` channels, in order.
        target_sequences: the sequences of the ``targets`` channels, in order.
        axis: numpy axis of the canonical (z, y, x) volumes the slices were taken along.
        sources: ``(N, C_s, H, W)`` memory map.
        targets: ``(N, C_t, H, W)`` memory map.
        masks: ``(N, H, W)`` bool memory map.
        case_ids: the case of each slice.
        slice_indices: ``(N,)`` int64, each slice's index along ``axis`` in its volume.
    """

    def __init__(self, directory: str | Path) -> None:
        """Open the cache in ``directory``.

        Raises:
            ValueError: the folder holds no complete cache of a known format.
        """
        self.directory = Path(directory)
        try:
            index = json.loads((self.directory / _INDEX).read_text())
            arrays = {name: np.load(self.directory / f"{name}.npy", mmap_mode="r") for name in _ARRAYS}
            if index["format"] != CACHE_FORMAT:
                raise ValueError(f"format {index['format']!r} is not {CACHE_FORMAT}")
            self.fingerprint: str = index["fingerprint"]
            self.source_sequences = parse_sequences(index["sources"])
            self.target_sequences = parse_sequences(index["targets"])
            self.axis: int = index["axis"]
            cases = index["cases"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ValueError(f"no readable slice cache in {str(self.directory)!r}: {error}") from None
        self.case_ids = tuple(case["case_id"] for case in cases for _ in case["slice_indices"])
        self.slice_indices = np.array([i for case in cases for i in case["slice_indices"]], dtype=np.int64)
        self.sources, self.targets, self.masks = (arrays[name] for name in _ARRAYS)
        counts = {len(self.case_ids), *(len(array) for array in arrays.values())}
        if len(counts) != 1 or self.sources.shape[1] != len(self.source_sequences):
            raise ValueError(f"slice cache {str(self.directory)!r} is inconsistent; delete it to rebuild")

    def __len__(self) -> int:
        return len(self.case_ids)

    def __getstate__(self) -> dict[str, Any]:
        return {"directory": self.directory}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["directory"])

    def slices_of(self, case_ids: Iterable[str]) -> np.ndarray:
        """Row indices (int64) of the slices of ``case_ids``, e.g. to split training and validation."""
        wanted = set(case_ids)
        return np.array([row for row, case in enumerate(self.case_ids) if case in wanted], dtype=np.int64)


def build_slice_cache(
    cases: Iterable[CaseFiles],
    sources: Iterable[Sequence | str],
    targets: Iterable[Sequence | str],
    cache_dir: str | Path,
    config: NormalizationConfig,
    axis: int = 0,
    resample: bool = False,
    *,
    dtype: str = "float16",
    min_foreground_fraction: float = 0.01,
) -> SliceCache:
    """Build the slice cache of ``cases`` in ``cache_dir``, or reuse the one there if it matches.

    Args:
        cases: the cases to cache (all must have every source and target).
        sources: source sequences, in channel order.
        targets: target sequences, in channel order.
        cache_dir: the cache folder; created if needed, its cache files replaced when stale.
        config: the normalization (the one the model will record).
        axis: numpy axis of the canonical (z, y, x) volumes to slice along; 0 is axial.
        resample: resample sequences on other grids onto the first source instead of refusing.
        dtype: ``"float16"`` halves the disk and page-cache footprint (about 5e-4 error in [-1, 1]);
            ``"float32"`` stores the exact normalization.
        min_foreground_fraction: slices with this fraction of foreground or less are skipped: they
            are almost all background and would teach the model little.

    Returns:
        The opened cache.

    Raises:
        ValueError: invalid arguments, or errors from reading, grid checks and normalization
            (naming the case and sequence), or no slice with enough foreground in any case.
    """
    spec = CacheSpec.create(cases, sources, targets, config, axis, resample, dtype, min_foreground_fraction)
    description = spec.description()
    fingerprint = spec.fingerprint(description)
    cache_dir = Path(cache_dir)
    try:
        cache = SliceCache(cache_dir)
        if cache.fingerprint == fingerprint:
            logger.info("reusing slice cache %s (%d slices)", cache_dir, len(cache))
            return cache
        logger.info("slice cache %s is stale; rebuilding", cache_dir)
    except ValueError:
        logger.info("building slice cache %s", cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    (cache_dir / _INDEX).unlink(missing_ok=True)
    staging = cache_dir / ".staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        staged = _stage_cases(spec, staging)
        _assemble(spec, staging, cache_dir, [number for _, _, number in staged])
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    index = {
        "format": CACHE_FORMAT,
        "fingerprint": fingerprint,
        "description": description,
        "sources": description["sources"],
        "targets": description["targets"],
        "axis": axis,
        "cases": [{"case_id": case_id, "slice_indices": indices} for case_id, indices, _ in staged],
    }
    temporary = cache_dir / f".{_INDEX}.tmp"
    temporary.write_text(json.dumps(index, indent=1))
    os.replace(temporary, cache_dir / _INDEX)
    cache = SliceCache(cache_dir)
    logger.info("cached %d slices of %d cases in %s", len(cache), len(spec.cases), cache_dir)
    return cache


def _case_slices(spec: CacheSpec, case: CaseFiles) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(slices (S, C_s + C_t, rows, cols), masks (S, rows, cols), slice indices) of the kept slices."""
    images = load_case(case, (*spec.sources, *spec.targets), resample=spec.resample)
    volumes = {seq: image_to_array(image) for seq, image in images.items()}
    mask = foreground_mask([volumes[seq] for seq in spec.sources], spec.config)
    normalized = np.stack(
        [
            normalize_volume(volumes[seq], mask, spec.config, name=f"case {case.case_id} {seq.display_name}")
            for seq in images
        ]
    )
    slices, masks = np.moveaxis(normalized, spec.axis + 1, 0), np.moveaxis(mask, spec.axis, 0)
    keep = np.flatnonzero(masks.mean(axis=(1, 2)) > spec.min_foreground_fraction)
    return slices[keep], masks[keep], keep


def _stage_cases(spec: CacheSpec, staging: Path) -> list[tuple[str, list[int], int]]:
    """Normalize each case once and stage its kept slices, so memory holds one case at a time.

    Returns:
        (case id, kept slice indices, staging number) of each case that has kept slices.
    """
    staged = []
    for number, case in enumerate(spec.cases):
        slices, masks, kept = _case_slices(spec, case)
        if not len(kept):
            logger.warning("case %s has no slice with enough foreground; it is left out", case.case_id)
            continue
        np.save(staging / f"{number}-slices.npy", slices)
        np.save(staging / f"{number}-masks.npy", masks)
        staged.append((case.case_id, kept.tolist(), number))
    if not staged:
        raise ValueError(
            "no slice with enough foreground in any case: are the volumes skull-stripped, with background "
            "at or below the normalization's foreground_threshold?"
        )
    return staged


def _assemble(spec: CacheSpec, staging: Path, cache_dir: Path, numbers: list[int]) -> None:
    """Copy the staged cases into the final arrays, padding smaller slices at the bottom/right.

    Each array is written under a staging name and renamed into place, so memory maps of a
    previous cache that are still open keep their (old) file instead of seeing it truncated.
    """
    staged = [
        tuple(np.load(staging / f"{number}-{kind}.npy", mmap_mode="r") for kind in ("slices", "masks"))
        for number in numbers
    ]
    total = sum(len(masks) for _, masks in staged)
    height = max(masks.shape[1] for _, masks in staged)
    width = max(masks.shape[2] for _, masks in staged)
    shapes = {
        "sources": (total, len(spec.sources), height, width),
        "targets": (total, len(spec.targets), height, width),
        "masks": (total, height, width),
    }
    arrays = {
        name: open_memmap(staging / f"{name}.npy", "w+", bool if name == "masks" else spec.dtype, shape)
        for name, shape in shapes.items()
    }
    arrays["sources"][:], arrays["targets"][:], arrays["masks"][:] = -1.0, -1.0, False
    row, split = 0, len(spec.sources)
    for slices, masks in staged:
        end, rows, cols = row + len(masks), masks.shape[1], masks.shape[2]
        arrays["sources"][row:end, :, :rows, :cols] = slices[:, :split]
        arrays["targets"][row:end, :, :rows, :cols] = slices[:, split:]
        arrays["masks"][row:end, :rows, :cols] = masks
        row = end
    for name, array in arrays.items():
        array.flush()
        os.replace(staging / f"{name}.npy", cache_dir / f"{name}.npy")
