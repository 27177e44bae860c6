"""What a model card records about the data a model was trained on: its *training domain*.

A network only knows the images it was shown. Recording their voxel spacing, slice plane, whether
the skull was removed, and how each source's intensities are distributed inside the brain lets
inference compare a new input with that domain (:mod:`cones.domain.checks`) and say so before it
synthesizes something plausible and wrong. Model files written before these fields existed read
with :meth:`TrainingDomain.assumed`, the conditions the first models were trained under.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cones.config import JsonConfig
from cones.sequences import Sequence, parse_sequence

__all__ = ["DOMAIN_PERCENTILES", "SLICE_PLANES", "TISSUE_CLASSES", "SourceStatistics", "TrainingDomain"]

DOMAIN_PERCENTILES = (5.0, 25.0, 50.0, 75.0, 95.0)
"""Percentiles of each source's brain intensities that the card records (after normalization to [0, 1])."""

SLICE_PLANES = {0: "axial", 1: "coronal", 2: "sagittal"}
"""The anatomical plane of the slices along each numpy axis of a canonically (LPS) oriented volume."""

TISSUE_CLASSES = 3
"""The brain is split into thirds of the first source's intensity (for T1: CSF, grey matter, white matter)."""


@dataclass(frozen=True)
class SourceStatistics(JsonConfig):
    """How one source sequence looked inside the brain of the training cases.

    Intensities are first normalized the model's way (foreground percentiles to [0, 1]), so the
    numbers compare across scanners.

    Attributes:
        sequence: the source.
        percentiles: the training cases' mean of each :data:`DOMAIN_PERCENTILES` percentile.
        percentiles_low: the smallest value of each percentile over the training cases.
        percentiles_high: the largest.
        tissue_ranks: the median intensity *rank* (0: darkest, 1: brightest voxel of this source in
            the brain) of this source inside each third of the first source's intensities, darkest
            third first: the contrast signature. With T1 first, T2 reads high, middle, low (CSF bright,
            white matter dark) and FLAIR low, high, middle (CSF suppressed): a swapped pair shows.
    """

    sequence: Sequence
    percentiles: tuple[float, ...]
    percentiles_low: tuple[float, ...]
    percentiles_high: tuple[float, ...]
    tissue_ranks: tuple[float, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "sequence", parse_sequence(self.sequence))
        for name, size in (
            ("percentiles", len(DOMAIN_PERCENTILES)),
            ("percentiles_low", len(DOMAIN_PERCENTILES)),
            ("percentiles_high", len(DOMAIN_PERCENTILES)),
            ("tissue_ranks", TISSUE_CLASSES),
        ):
            values = getattr(self, name)
            if not isinstance(values, tuple) or len(values) != size or not all(0.0 <= v <= 1.0 for v in values):
                raise ValueError(f"SourceStatistics.{name} must be {size} numbers in [0, 1], got {values!r}")


@dataclass(frozen=True)
class TrainingDomain(JsonConfig):
    """The conditions a model was trained under, as far as they can be checked on an input.

    Attributes:
        in_plane_spacing_mm: voxel spacing within the slices the model translates (median over the
            training cases, in the canonical orientation).
        skull_stripped: whether the training inputs had the skull removed (background exactly 0).
        orientations: the orientation codes the training volumes were stored in (informative; they
            are reoriented losslessly before slicing).
        cases: how many training cases the statistics come from (0: none recorded).
        statistics: per source, in the model's channel order; empty when not recorded.
    """

    in_plane_spacing_mm: tuple[float, float] = (1.0, 1.0)
    skull_stripped: bool = True
    orientations: tuple[str, ...] = ()
    cases: int = 0
    statistics: tuple[SourceStatistics, ...] = field(default=())

    @classmethod
    def assumed(cls) -> TrainingDomain:
        """The domain of a model file that records none: 1 mm in-plane, skull-stripped, no statistics.

        Every model before format version 2 was trained on BraTS-style data (1 mm, skull-stripped).
        """
        return cls()

    @classmethod
    def from_dict(cls, data: dict) -> TrainingDomain:
        """As :meth:`JsonConfig.from_dict`, rebuilding the per-source statistics."""
        if isinstance(data, dict) and isinstance(data.get("statistics"), list):
            data = {**data, "statistics": tuple(SourceStatistics.from_dict(item) for item in data["statistics"])}
        return super().from_dict(data)

    def __post_init__(self) -> None:
        spacing = self.in_plane_spacing_mm
        if not isinstance(spacing, tuple) or len(spacing) != 2 or not all(value > 0 for value in spacing):
            raise ValueError(f"TrainingDomain.in_plane_spacing_mm must be two positive numbers, got {spacing!r}")
        if not isinstance(self.skull_stripped, bool):
            raise ValueError(f"TrainingDomain.skull_stripped must be true or false, got {self.skull_stripped!r}")
        if type(self.cases) is not int or self.cases < 0:
            raise ValueError(f"TrainingDomain.cases must be a non-negative int, got {self.cases!r}")
        if not all(isinstance(item, SourceStatistics) for item in self.statistics):
            raise ValueError("TrainingDomain.statistics must hold SourceStatistics")

    def statistics_of(self, sequence: Sequence) -> SourceStatistics | None:
        """The recorded statistics of one source, if any."""
        return next((item for item in self.statistics if item.sequence is sequence), None)
