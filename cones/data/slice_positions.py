"""Where the slices of a DICOM series lie, checked from their headers before the voxels are read.

GDCM sorts a series' files along the slice normal, and ITK stacks them at one spacing. A series
with a missing slice or uneven gaps is therefore read onto an even grid with every slice beyond
the gap in the wrong place (ITK only prints "Non uniform sampling"), and a series without
``ImagePositionPatient`` or ``ImageOrientationPatient`` is read with made-up geometry (1 mm
slices, identity orientation). Both look like a plausible volume. So each file's position is read
here (pydicom, header only), projected on the slice normal (row x column of the orientation), and
the gaps are compared with their median: a series that cannot be placed in space is refused,
and an uneven one is refused or, when the user asks, interpolated at the true positions onto an
even grid (:func:`on_even_grid`).

A series of one file (a multi-frame image keeps its frames' positions elsewhere) is left to GDCM.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

__all__ = ["SliceGap", "SlicePositions", "on_even_grid", "read_slice_positions", "resampling_note"]

_TAGS = {"ImagePositionPatient": ("(0020,0032)", 3), "ImageOrientationPatient": ("(0020,0037)", 6)}
"""The geometry tags every slice needs: their numbers (for the message) and how many values each holds."""
EVEN_TOLERANCE = 0.01
"""Largest difference between a gap and the median gap, relative to the median, that still counts as even.

A hundredth of a slice moves no voxel visibly; scanners round positions far below that.
"""
SAME_POSITION_MM = 1e-3
ORIENTATION_TOLERANCE = 1e-4


@dataclass(frozen=True)
class SliceGap:
    """The first gap between neighbouring slices that differs from the series' spacing.

    Attributes:
        expected_mm: the series' spacing, the median of its gaps.
        found_mm: the gap found.
        slice_number: the slice before the gap, counted from 1 along the slice normal.
    """

    expected_mm: float
    found_mm: float
    slice_number: int

    def __str__(self) -> str:
        return (
            f"slice spacing uneven: {self.expected_mm:.3g} mm expected, {self.found_mm:.3g} mm between slices "
            f"{self.slice_number} and {self.slice_number + 1}"
        )


def resampling_note(gap: SliceGap) -> str:
    """What reading an uneven series with resampling did, for the warning line and the sidecar alike."""
    return (
        f"{gap}; its slices were interpolated (linearly, at their true positions) onto an even "
        f"{gap.expected_mm:.3g} mm grid"
    )


@dataclass(frozen=True)
class SlicePositions:
    """The slices of a series in space.

    Attributes:
        positions: ``ImagePositionPatient`` of each file, in the order of the files (mm, LPS).
        normal: the unit slice normal, row x column of ``ImageOrientationPatient``.
    """

    positions: np.ndarray
    normal: np.ndarray

    def heights(self, axis: np.ndarray | None = None) -> np.ndarray:
        """Each file's position along ``axis`` (the slice normal by default), in the order of the files."""
        return self.positions @ (self.normal if axis is None else axis)

    def uneven(self) -> SliceGap | None:
        """The first gap that differs from the median gap by more than :data:`EVEN_TOLERANCE`; None if even."""
        gaps = np.diff(np.sort(self.heights()))
        if gaps.size < 2:
            return None
        expected = float(np.median(gaps))
        off = np.flatnonzero(np.abs(gaps - expected) > EVEN_TOLERANCE * expected)
        if off.size == 0:
            return None
        return SliceGap(expected, float(gaps[off[0]]), int(off[0]) + 1)


def read_slice_positions(folder: str | os.PathLike[str], files: Sequence[str]) -> SlicePositions | None:
    """Read and check the slice geometry of a series' files; None for a series of one file.

    Raises:
        ValueError: a file lacks ``ImagePositionPatient`` or ``ImageOrientationPatient`` (or holds
            no valid value), the slices have different orientations, or two lie at the same place
            (several echoes or time points in one series); the message names ``folder``.
    """
    if len(files) < 2:
        return None
    import pydicom

    missing = {keyword: 0 for keyword in _TAGS}
    found: list[dict[str, np.ndarray]] = []
    for file in files:
        dataset = pydicom.dcmread(file, stop_before_pixels=True, specific_tags=list(_TAGS))
        values = {keyword: _values(dataset.get(keyword), count) for keyword, (_, count) in _TAGS.items()}
        for keyword, value in values.items():
            missing[keyword] += value is None
        found.append(values)
    lacking = [f"{keyword} {tag}" for keyword, (tag, _) in _TAGS.items() if missing[keyword]]
    if lacking:
        most = max(missing.values())
        raise ValueError(
            f"the DICOM series in {str(folder)!r} has no valid {' and '.join(lacking)} in {most} of {len(files)} "
            "file(s): without them its slices cannot be placed in space"
        )
    orientations = np.array([values["ImageOrientationPatient"] for values in found])
    differing = np.flatnonzero(np.abs(orientations - orientations[0]).max(axis=1) > ORIENTATION_TOLERANCE)
    if differing.size:
        raise ValueError(
            f"the DICOM series in {str(folder)!r} holds slices of different orientations ({files[0]!r} and "
            f"{files[differing[0]]!r}): it is not one volume"
        )
    normal = np.cross(orientations[0][:3], orientations[0][3:])
    if np.linalg.norm(normal) < 0.5:
        raise ValueError(
            f"the DICOM series in {str(folder)!r} has an ImageOrientationPatient (0020,0037) whose row and column "
            "are not perpendicular unit vectors: its slices cannot be placed in space"
        )
    placed = np.array([values["ImagePositionPatient"] for values in found])
    positions = SlicePositions(placed, normal / np.linalg.norm(normal))
    heights = np.sort(positions.heights())
    same = np.flatnonzero(np.diff(heights) < SAME_POSITION_MM)
    if same.size:
        raise ValueError(
            f"the DICOM series in {str(folder)!r} holds two slices at the same position ({heights[same[0]]:.4g} mm "
            f"along the slice normal, slices {same[0] + 1} and {same[0] + 2}): several echoes or time points in "
            "one series are not one volume"
        )
    return positions


def _values(value: object, count: int) -> np.ndarray | None:
    """``count`` finite numbers from a header value, or None where it is absent, empty or malformed."""
    if value is None:
        return None
    items = list(value) if isinstance(value, Sequence) and not isinstance(value, str) else [value]
    try:
        numbers = np.array([float(item) for item in items])
    except (TypeError, ValueError):
        return None
    return numbers if numbers.size == count and np.all(np.isfinite(numbers)) else None


def on_even_grid(image: sitk.Image, positions: SlicePositions, spacing: float) -> sitk.Image:
    """The slices of ``image`` (read in the order of the files) interpolated linearly onto an even grid.

    Each output slice at height ``h`` along the image's slice axis is the linear interpolation of
    the two input slices around ``h`` at their true heights; where the gaps are even it is the
    input slice itself. The grid starts at the lowest slice and ends at the last step within the
    highest one.
    """
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    heights = positions.heights(direction[:, 2])
    order = np.argsort(heights)
    heights = heights[order] - heights[order[0]]
    voxels = sitk.GetArrayFromImage(image).astype(np.float32)[order]
    targets = spacing * np.arange(int(np.floor(heights[-1] / spacing + EVEN_TOLERANCE)) + 1)
    upper = np.clip(np.searchsorted(heights, targets, side="right"), 1, heights.size - 1)
    lower = upper - 1
    weight = np.clip((targets - heights[lower]) / (heights[upper] - heights[lower]), 0.0, 1.0)[:, None, None]
    resampled = sitk.GetImageFromArray((voxels[lower] * (1 - weight) + voxels[upper] * weight).astype(np.float32))
    resampled.SetSpacing((*image.GetSpacing()[:2], spacing))
    resampled.SetDirection(image.GetDirection())
    resampled.SetOrigin(tuple(float(value) for value in positions.positions[order[0]]))
    return resampled
