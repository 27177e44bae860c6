"""Measuring a case the way the training domain records it, for training (the card) and for checks.

Both sides call :func:`measure_sources`, so an input is compared with the training cases through
exactly the same numbers: intensities normalized by the model's foreground percentiles, and ranks
inside the brain, which no scanner gain or offset changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from collections.abc import Sequence as SequenceOf
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import SimpleITK as sitk

from cones.config import NormalizationConfig
from cones.domain.record import DOMAIN_PERCENTILES, TISSUE_CLASSES, SourceStatistics, TrainingDomain
from cones.sequences import Sequence

if TYPE_CHECKING:
    from cones.data.discovery import CaseFiles

__all__ = [
    "BrainSamples",
    "SourceMeasurement",
    "in_plane_spacing",
    "measure_cases",
    "measure_sources",
    "summarize_domain",
]

_MAX_SAMPLES = 200_000
"""Brain voxels measured per case: percentiles and median ranks are stable to about 0.005 with this many."""


@dataclass(frozen=True)
class SourceMeasurement:
    """One source of one case: normalized brain percentiles and contrast signature (:class:`SourceStatistics`)."""

    percentiles: tuple[float, ...]
    tissue_ranks: tuple[float, ...]


def in_plane_spacing(image: sitk.Image, slice_axis: int) -> tuple[float, float]:
    """Voxel spacing (mm) within the slices along numpy ``slice_axis`` of a canonically oriented image.

    Numpy axis ``a`` of ``sitk.GetArrayFromImage`` is SimpleITK index ``2 - a``.
    """
    spacing = image.GetSpacing()
    return tuple(float(spacing[2 - axis]) for axis in range(3) if axis != slice_axis)


def measure_sources(
    volumes: Mapping[Sequence, np.ndarray],
    brain: np.ndarray,
    normalization: NormalizationConfig,
) -> dict[Sequence, SourceMeasurement]:
    """Measure each source inside the brain; the first source's intensity thirds are the tissue classes.

    Args:
        volumes: the sources of one case on one grid, in the model's channel order.
        brain: bool mask of the brain (the foreground of skull-stripped volumes).
        normalization: the model's percentiles, which map each source to [0, 1] here.

    Raises:
        ValueError: the brain mask is empty or a source is constant in it.
    """
    samples = BrainSamples(volumes, brain, normalization)
    return samples.measure(tuple(volumes))


class BrainSamples:
    """The brain voxels of a case's volumes, sampled, normalized and ranked once, then measured in any order.

    The input checks measure one case under every assignment of its volumes to the model's sources;
    only the tissue classes (thirds of whichever volume comes first) change between assignments.
    """

    def __init__(
        self, volumes: Mapping[Sequence, np.ndarray], brain: np.ndarray, normalization: NormalizationConfig
    ) -> None:
        brain = np.asarray(brain, dtype=bool)
        voxels = np.flatnonzero(brain)
        if voxels.size == 0:
            raise ValueError("the brain mask is empty")
        sample = voxels[:: max(1, voxels.size // _MAX_SAMPLES)]
        self.ranks: dict[Sequence, np.ndarray] = {}
        self.percentiles: dict[Sequence, tuple[float, ...]] = {}
        for sequence, volume in volumes.items():
            values = np.asarray(volume, dtype=np.float64).ravel()[sample]
            low, high = np.percentile(values, [normalization.lower_percentile, normalization.upper_percentile])
            if not high > low:
                raise ValueError(f"{sequence.display_name} is constant inside the brain")
            normalized = np.clip((values - low) / (high - low), 0.0, 1.0)
            self.percentiles[sequence] = tuple(float(v) for v in np.percentile(normalized, DOMAIN_PERCENTILES))
            self.ranks[sequence] = _ranks(values)

    def measure(self, order: tuple[Sequence, ...]) -> dict[Sequence, SourceMeasurement]:
        """Each volume's measurement, with the tissue classes taken from ``order[0]``; keyed by volume."""
        anchor = self.ranks[order[0]]
        tissue = np.minimum((anchor * TISSUE_CLASSES).astype(int), TISSUE_CLASSES - 1)
        return {
            sequence: SourceMeasurement(
                percentiles=self.percentiles[sequence],
                tissue_ranks=tuple(float(np.median(self.ranks[sequence][tissue == c])) for c in range(TISSUE_CLASSES)),
            )
            for sequence in order
        }


def _ranks(samples: np.ndarray) -> np.ndarray:
    """Each sample's rank in [0, 1], ties sharing their mean rank (so a flat region gets one value)."""
    order = np.argsort(samples, kind="stable")
    sorted_values = samples[order]
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], sorted_values.size]
    mean_positions = (starts + ends - 1) / 2.0
    positions = np.empty(samples.size)
    positions[order] = np.repeat(mean_positions, ends - starts)
    return positions / max(samples.size - 1, 1)


def summarize_domain(
    cases: Iterable[Mapping[Sequence, SourceMeasurement]],
    sources: tuple[Sequence, ...],
    spacings: Iterable[tuple[float, float]],
    skull_stripped: bool,
    orientations: Iterable[str],
) -> TrainingDomain:
    """The card's :class:`TrainingDomain` from per-case measurements.

    Raises:
        ValueError: no case was measured.
    """
    cases = list(cases)
    if not cases:
        raise ValueError("no training case to measure the training domain on")
    statistics = []
    for sequence in sources:
        percentiles = np.array([case[sequence].percentiles for case in cases])
        tissue_ranks = np.array([case[sequence].tissue_ranks for case in cases])
        statistics.append(
            SourceStatistics(
                sequence=sequence,
                percentiles=_rounded(percentiles.mean(axis=0)),
                percentiles_low=_rounded(percentiles.min(axis=0)),
                percentiles_high=_rounded(percentiles.max(axis=0)),
                tissue_ranks=_rounded(tissue_ranks.mean(axis=0)),
            )
        )
    spacing = np.median(np.array(list(spacings)), axis=0)
    return TrainingDomain(
        in_plane_spacing_mm=(round(float(spacing[0]), 4), round(float(spacing[1]), 4)),
        skull_stripped=skull_stripped,
        orientations=tuple(sorted(set(orientations))),
        cases=len(cases),
        statistics=tuple(statistics),
    )


def _rounded(values: np.ndarray) -> tuple[float, ...]:
    return tuple(round(float(value), 4) for value in values)


def measure_cases(
    cases: SequenceOf[CaseFiles],
    sources: tuple[Sequence, ...],
    normalization: NormalizationConfig,
    slice_axis: int,
    resample: bool = False,
) -> TrainingDomain:
    """The training domain of a set of cases, read as training reads them (:func:`~cones.data.load_case`).

    Skull-stripped means most cases' first source looks stripped (background exactly 0 at its border): a
    stripped brain that touches the edge of its field of view fails that test on its own.

    Raises:
        ValueError: no cases, or a case cannot be read (see :func:`~cones.data.load_case`).
    """
    from cones.data.geometry import load_case
    from cones.data.normalization import foreground_mask
    from cones.preprocessing.brain_extraction import looks_skull_stripped

    measurements, spacings, orientations, stripped = [], [], [], []
    for case in cases:
        orientations.append(_stored_orientation(case.sequences[sources[0]]))
        images = load_case(case, sources, resample=resample)
        volumes = {sequence: sitk.GetArrayViewFromImage(image) for sequence, image in images.items()}
        measurements.append(measure_sources(volumes, foreground_mask(volumes.values(), normalization), normalization))
        spacings.append(in_plane_spacing(images[sources[0]], slice_axis))
        stripped.append(looks_skull_stripped(images[sources[0]]))
    return summarize_domain(measurements, sources, spacings, bool(2 * sum(stripped) > len(stripped)), orientations)


def _stored_orientation(path: object) -> str:
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    return sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(reader.GetDirection())
