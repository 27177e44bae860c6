"""Making sure the sequences of a case share one voxel grid, or bringing them onto one.

CoNeS stacks the sources of a case as channels of one image, which is only meaningful when voxel
``(z, y, x)`` is the same point of the head in every sequence. Co-registered data (BraTS) already
shares a grid; clinical acquisitions (each sequence with its own matrix and slice thickness) must
be resampled onto a reference first.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

import numpy as np
import SimpleITK as sitk

from cones.data.discovery import CaseFiles
from cones.data.io import read_image
from cones.sequences import Sequence, parse_sequence

__all__ = [
    "CANONICAL_ORIENTATION",
    "check_same_grid",
    "grid_difference",
    "load_case",
    "reorient",
    "resample_to_reference",
    "to_canonical",
]

logger = logging.getLogger(__name__)

CANONICAL_ORIENTATION = "LPS"
"""Voxel axes the model sees: x to the patient's left, y posterior, z superior (ITK's identity
direction, which is how SimpleITK reads BraTS). In the (z, y, x) array, axis 0 is then always the
axial axis, whatever order the file stored its voxels in."""


def grid_difference(image: sitk.Image, reference: sitk.Image, tolerance: float = 1e-4) -> str | None:
    """Describe the first geometry property in which ``image`` differs from ``reference``.

    Sizes must match exactly; spacing, origin and direction within ``tolerance`` (absolute and
    relative), because NIfTI stores them as float32 and a round trip moves them by ~1e-6.

    Args:
        image: the image to compare.
        reference: the grid it should be on.
        tolerance: allowed absolute/relative difference of spacing, origin and direction.

    Returns:
        ``"<property> <image value> vs <reference value>"``, or None when the grids match.
    """
    if image.GetSize() != reference.GetSize():
        return f"size {image.GetSize()} vs {reference.GetSize()}"
    for name in ("Spacing", "Origin", "Direction"):
        mine, theirs = getattr(image, f"Get{name}")(), getattr(reference, f"Get{name}")()
        if not np.allclose(mine, theirs, rtol=tolerance, atol=tolerance):
            shown_mine = tuple(round(v, 6) for v in mine)
            shown_theirs = tuple(round(v, 6) for v in theirs)
            return f"{name.lower()} {shown_mine} vs {shown_theirs}"
    return None


def check_same_grid(
    images: Mapping[str, sitk.Image], context: str, reference_key: str | None = None, tolerance: float = 1e-4
) -> None:
    """Refuse images that do not share the reference's voxel grid.

    Args:
        images: the images of one case, keyed by sequence (or any name shown in the message).
        context: what the images belong to (the case id), so the message says where to look.
        reference_key: the image the others must match; default: the first one.
        tolerance: allowed absolute/relative difference of spacing, origin and direction.

    Raises:
        ValueError: ``images`` is empty, ``reference_key`` is not among them, or an image differs;
            the message names the context, both sequences, the property and both values.
    """
    if not images:
        raise ValueError(f"{context}: images must not be empty")
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance!r}")
    keys = list(images)
    reference_key = keys[0] if reference_key is None else reference_key
    if reference_key not in images:
        raise ValueError(f"{context}: reference_key {reference_key!r} is not one of {keys}")
    reference = images[reference_key]
    for key, image in images.items():
        difference = grid_difference(image, reference, tolerance)
        if difference is not None:
            raise ValueError(
                f"{context}: {_shown(key)} is not on the grid of {_shown(reference_key)}: {difference}; "
                "co-register the sequences or resample them onto one grid"
            )


def _shown(key: str) -> str:
    return key.display_name if isinstance(key, Sequence) else str(key)


def resample_to_reference(
    image: sitk.Image,
    reference: sitk.Image,
    interpolator: int = sitk.sitkLinear,
    default_value: float = 0.0,
) -> sitk.Image:
    """Resample ``image`` onto ``reference``'s grid through the identity physical transform.

    Both images must already be aligned in physical space (same scanner session or registered):
    this only changes the voxel grid, it does not register.

    Args:
        image: the image to resample.
        reference: the grid to resample onto.
        interpolator: ``sitk.sitkLinear`` for intensities; ``sitk.sitkNearestNeighbor`` for label
            maps, whose values must not be blended.
        default_value: value of voxels outside ``image`` (0 is the background of skull-stripped data).

    Returns:
        The resampled image: float32 for interpolated intensities, the input pixel type for nearest
        neighbour (labels stay integers).
    """
    pixel_type = image.GetPixelID() if interpolator == sitk.sitkNearestNeighbor else sitk.sitkFloat32
    return sitk.Resample(image, reference, sitk.Transform(), interpolator, float(default_value), pixel_type)


def to_canonical(image: sitk.Image) -> tuple[sitk.Image, str]:
    """Permute and flip the voxel axes into :data:`CANONICAL_ORIENTATION`.

    This is lossless (no interpolation) and keeps every voxel's physical position, so training
    (through :func:`load_case`) and inference see slices of the same anatomy on the same axis.

    Returns:
        The reoriented image and the original orientation code, to undo it with :func:`reorient`.
    """
    original = sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(image.GetDirection())
    return sitk.DICOMOrient(image, CANONICAL_ORIENTATION), original


def reorient(image: sitk.Image, orientation: str) -> sitk.Image:
    """Permute and flip the voxel axes into ``orientation`` (a code such as ``"RAS"``), losslessly."""
    return sitk.DICOMOrient(image, orientation)


def load_case(
    case: CaseFiles, sequences: Iterable[Sequence | str], resample: bool = False
) -> dict[Sequence, sitk.Image]:
    """Read the requested sequences of a case onto the grid of the first one, in canonical orientation.

    Args:
        case: the case's files.
        sequences: the sequences to read, in order; the first is the reference grid.
        resample: resample sequences on other grids onto the reference (clinical data) instead of
            refusing them (co-registered data, where a mismatch means a wrong file).

    Returns:
        The images keyed by sequence, in the requested order, all on one grid, reoriented to
        :data:`CANONICAL_ORIENTATION` as inference does.

    Raises:
        ValueError: no sequence requested, the case lacks one, a file is unreadable, or (without
            ``resample``) the grids differ.
    """
    sequences = tuple(parse_sequence(name) for name in sequences)
    if not sequences:
        raise ValueError(f"case {case.case_id}: sequences must not be empty")
    missing = [seq.display_name for seq in sequences if seq not in case.sequences]
    if missing:
        raise ValueError(f"case {case.case_id} has no {', '.join(missing)} image")
    images = {seq: read_image(case.sequences[seq]) for seq in sequences}
    if not resample:
        check_same_grid(images, f"case {case.case_id}")
    else:
        reference = images[sequences[0]]
        for seq in sequences[1:]:
            if grid_difference(images[seq], reference) is not None:
                logger.info("case %s: resampling %s onto the %s grid", case.case_id, seq.display_name, sequences[0])
                images[seq] = resample_to_reference(images[seq], reference)
    return {seq: to_canonical(image)[0] for seq, image in images.items()}
