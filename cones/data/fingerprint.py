"""What a slice cache, and so a trained model, depends on: files, sequences and settings.

The fingerprint is the sha256 of a JSON description holding each used file's resolved path, size
and modification time, the sequences, the normalization and the slicing settings. The cache is
rebuilt when it changes, and checkpoints record it so two models can be told apart by the data
they saw. Sizes and times (not contents) keep it cheap: hashing the voxels would mean reading
every volume again, which the cache exists to avoid.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cones.config import NormalizationConfig
from cones.data.discovery import CaseFiles, require_sequences
from cones.sequences import Sequence, parse_sequences

__all__ = ["CACHE_DTYPES", "CACHE_FORMAT", "CacheSpec", "data_fingerprint"]

CACHE_FORMAT = 1
"""Version of the cache layout; part of the fingerprint, so a layout change forces a rebuild."""

CACHE_DTYPES = ("float16", "float32")
"""Storage types of the normalized slices."""


@dataclass(frozen=True)
class CacheSpec:
    """The validated arguments of a slice-cache build (see :func:`~cones.data.cache.build_slice_cache`).

    Raises:
        ValueError: sources or targets empty or overlapping, ``axis`` not 0-2, ``dtype`` unknown,
            ``min_foreground_fraction`` outside [0, 1), or a case lacking a sequence.
    """

    cases: tuple[CaseFiles, ...]
    sources: tuple[Sequence, ...]
    targets: tuple[Sequence, ...]
    config: NormalizationConfig
    axis: int = 0
    resample: bool = False
    dtype: str = "float16"
    min_foreground_fraction: float = 0.01

    def __post_init__(self) -> None:
        if not self.sources or not self.targets or set(self.sources) & set(self.targets):
            raise ValueError(
                f"sources and targets must be non-empty and disjoint, got {self.sources!r} and {self.targets!r}"
            )
        if self.axis not in (0, 1, 2):
            raise ValueError(f"axis must be 0, 1 or 2, got {self.axis!r}")
        if self.dtype not in CACHE_DTYPES:
            raise ValueError(f"dtype must be one of {CACHE_DTYPES}, got {self.dtype!r}")
        if not 0.0 <= self.min_foreground_fraction < 1.0:
            raise ValueError(f"min_foreground_fraction must be in [0, 1), got {self.min_foreground_fraction!r}")
        require_sequences(self.cases, (*self.sources, *self.targets))

    @classmethod
    def create(
        cls,
        cases: Iterable[CaseFiles],
        sources: Iterable[Sequence | str],
        targets: Iterable[Sequence | str],
        config: NormalizationConfig,
        axis: int = 0,
        resample: bool = False,
        dtype: str = "float16",
        min_foreground_fraction: float = 0.01,
    ) -> CacheSpec:
        """Build a spec from any iterables and sequence spellings."""
        sources, targets = parse_sequences(tuple(sources)), parse_sequences(tuple(targets))
        return cls(tuple(cases), sources, targets, config, axis, resample, dtype, min_foreground_fraction)

    def description(self) -> dict[str, Any]:
        """The JSON-compatible description the fingerprint hashes (stored in the cache index too)."""
        cases = []
        for case in self.cases:
            files = {}
            for seq in (*self.sources, *self.targets):
                path = Path(case.sequences[seq]).resolve()
                status = path.stat()
                files[seq.value] = [str(path), status.st_size, status.st_mtime_ns]
            cases.append({"case_id": case.case_id, "files": files})
        return {
            "format": CACHE_FORMAT,
            "cases": cases,
            "sources": [seq.value for seq in self.sources],
            "targets": [seq.value for seq in self.targets],
            "normalization": self.config.to_dict(),
            "axis": self.axis,
            "resample": self.resample,
            "dtype": self.dtype,
            "min_foreground_fraction": self.min_foreground_fraction,
        }

    def fingerprint(self, description: dict[str, Any] | None = None) -> str:
        """sha256 hex of :meth:`description` (pass it when already computed, so files are stat-ed once)."""
        description = self.description() if description is None else description
        return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()


def data_fingerprint(
    cases: Iterable[CaseFiles],
    sources: Iterable[Sequence | str],
    targets: Iterable[Sequence | str],
    config: NormalizationConfig,
    axis: int = 0,
    resample: bool = False,
    *,
    dtype: str = "float16",
    min_foreground_fraction: float = 0.01,
) -> str:
    """Fingerprint of the cache :func:`~cones.data.cache.build_slice_cache` builds from the same arguments.

    Returns:
        64 hexadecimal characters, equal to that cache's ``fingerprint``.

    Raises:
        ValueError: see :class:`CacheSpec`.
    """
    return CacheSpec.create(
        cases, sources, targets, config, axis, resample, dtype, min_foreground_fraction
    ).fingerprint()
