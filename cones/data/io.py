"""Reading and writing volumes with SimpleITK, keeping their geometry exact.

SimpleITK reads NIfTI, NRRD and MetaImage alike and keeps the full geometry (size, spacing,
origin, direction, including oblique and left-handed directions). Arrays follow SimpleITK's
(z, y, x) index order.

Two things SimpleITK does not say are checked on every read, because both turn into a plausible
wrong image: its NIfTI reader fills the missing part of a truncated file with zeros, and it turns
NaN and infinite voxels into 0. NIfTI files are therefore also read, as stored, by nibabel, which
refuses a short or corrupt file; NRRD and MetaImage readers refuse short files themselves and keep
non-finite voxels, which are checked on the image read. A folder is read as a DICOM series
(:mod:`cones.data.dicom`), with the same checks on its voxels.
"""

from __future__ import annotations

import itertools
import logging
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import SimpleITK as sitk

from cones.data.discovery import IMAGE_SUFFIXES
from cones.outputs import write_atomically

if TYPE_CHECKING:
    import nibabel as nib

__all__ = ["FORM_TOLERANCE_MM", "array_to_image", "image_to_array", "read_image", "write_image", "write_transform"]

FORM_TOLERANCE_MM = 1.0
"""A NIfTI whose qform and sform place any corner voxel further apart than this (under a voxel) gets a warning:
programs differ in which of the two they use, so the volume would lie elsewhere in another viewer."""

_REAL_SCALAR_PIXELS = frozenset(
    {
        *(sitk.sitkUInt8, sitk.sitkInt8, sitk.sitkUInt16, sitk.sitkInt16),
        *(sitk.sitkUInt32, sitk.sitkInt32, sitk.sitkUInt64, sitk.sitkInt64),
        *(sitk.sitkFloat32, sitk.sitkFloat64),
    }
)
"""Pixel types of an MR magnitude image; complex (raw k-space or phase data) and vector pixels are none."""

_LOG = logging.getLogger(__name__)


def read_image(path: str | Path, series_uid: str | None = None, *, resample_slices: bool = False) -> sitk.Image:
    """Read a 3D single-component image.

    Args:
        path: a ``.nii.gz``, ``.nii``, ``.nrrd`` or ``.mha`` file, or a folder holding a DICOM series.
        series_uid: the series to read from a DICOM folder holding several; None for a file.
        resample_slices: interpolate a DICOM series with uneven slice gaps onto an even grid
            instead of refusing it (:func:`cones.data.dicom.read_dicom_series`).

    Returns:
        The image with its geometry.

    Raises:
        ValueError: the file is missing, unreadable, truncated or corrupt, holds NaN or infinite
            voxels, or is not a 3D scalar volume (a 4D series or an RGB image cannot be a sequence
            channel); a DICOM folder holds no series, or several and ``series_uid`` names none of
            them; ``series_uid`` is given for a file; a DICOM series without slice positions, or
            with uneven ones and not ``resample_slices``. The message names the file or folder.
            A volume of complex or vector pixels is refused as not scalar (the message names its pixel type).

    A NIfTI file whose qform and sform disagree by more than :data:`FORM_TOLERANCE_MM` is read (as
    ITK reads it) with a warning naming the file and the distance.
    """
    path = Path(path)
    if path.is_dir():
        from cones.data.dicom import read_dicom_series

        image = read_dicom_series(path, series_uid, resample_slices=resample_slices)
        _check_pixels(image, path)
        _check_finite(sitk.GetArrayViewFromImage(image), path)
        return image
    if series_uid is not None:
        raise ValueError(f"a series UID is given for {str(path)!r}, which is a file, not a DICOM folder")
    if not path.is_file():
        raise ValueError(f"image file {str(path)!r} does not exist")
    nifti = path.name.lower().endswith((".nii", ".nii.gz"))
    if nifti:
        _check_stored_nifti(path)
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as error:
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        raise ValueError(f"cannot read image {str(path)!r}: {reason}") from None
    _check_pixels(image, path)
    if not nifti:
        _check_finite(sitk.GetArrayViewFromImage(image), path)
    return image


def _check_pixels(image: sitk.Image, path: Path) -> None:
    """Refuse anything but a 3D volume of real scalar voxels, naming its pixel type.

    A complex volume passes SimpleITK's reader as one component per voxel, then fails deep inside the
    first filter that needs real values; a magnitude image is what every sequence channel holds.
    """
    if image.GetDimension() == 3 and image.GetPixelID() in _REAL_SCALAR_PIXELS:
        return
    pixel_type = image.GetPixelIDTypeAsString()
    hint = "; give its magnitude image" if pixel_type.startswith("complex") else ""
    raise ValueError(
        f"image {str(path)!r} must be a 3D scalar volume, got {image.GetDimension()}D with "
        f"{image.GetNumberOfComponentsPerPixel()} component(s) of pixel type {pixel_type}{hint}"
    )


def _check_stored_nifti(path: Path) -> None:
    """Read a NIfTI file as stored: all of its voxels must be there, and finite; its two orientations should agree.

    nibabel is imported here, not with the module: Slicer's own process uses :mod:`cones.data.geometry`
    (through the input checks) before the requirements, nibabel among them, are installed.
    """
    import nibabel as nib

    try:
        stored = nib.load(path)
        voxels = np.asarray(stored.dataobj.get_unscaled())
    except (OSError, EOFError, zlib.error, ValueError, nib.filebasedimages.ImageFileError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"cannot read image {str(path)!r}: the file is truncated or corrupt ({reason})") from None
    _check_finite(voxels, path)
    _warn_if_forms_disagree(stored.header, path)


def _warn_if_forms_disagree(header: nib.Nifti1Header, path: Path) -> None:
    """Warn about a NIfTI header whose qform and sform (both set) place the volume in different places.

    ITK picks one by the two codes, nibabel and FSL may pick the other, so the same file lies in different
    places in different programs; only someone who knows the acquisition can say which one is right.
    """
    qform, qform_code = header.get_qform(coded=True)
    sform, sform_code = header.get_sform(coded=True)
    if not (qform_code and sform_code):
        return
    size = (*tuple(header.get_data_shape())[:3], 1, 1, 1)[:3]
    corners = np.array([[*corner, 1.0] for corner in itertools.product(*((0, n - 1) for n in size))]).T
    distance = float(np.max(np.linalg.norm(((qform - sform) @ corners)[:3], axis=0)))
    if distance > FORM_TOLERANCE_MM:
        _LOG.warning(
            "image %r: its qform and sform place the volume up to %.1f mm apart; programs differ in which one they "
            "use, so it lies elsewhere in some: correct the header",
            str(path),
            distance,
        )


def _check_finite(voxels: np.ndarray, path: Path) -> None:
    if np.issubdtype(voxels.dtype, np.floating):
        bad = int(voxels.size - np.count_nonzero(np.isfinite(voxels)))
        if bad:
            raise ValueError(f"image {str(path)!r} holds {bad} NaN or infinite voxel(s); a scan has none")


def _suffix(path: Path) -> str:
    suffix = next((s for s in IMAGE_SUFFIXES if path.name.lower().endswith(s)), None)
    if suffix is None:
        raise ValueError(f"path {str(path)!r} must end with one of {', '.join(IMAGE_SUFFIXES)}")
    return suffix


def write_image(image: sitk.Image, path: str | Path, overwrite: bool = False) -> Path:
    """Write ``image`` atomically (:func:`cones.outputs.write_atomically`).

    An interrupted or failed write never leaves a truncated volume that a later run would read as
    valid, and a file that appeared at ``path`` while the work ran is not replaced unless asked.

    Args:
        image: the image to write.
        path: the destination; its ending picks the format.
        overwrite: replace an existing file. False by default because user data is never replaced
            unless asked.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: ``path`` has no supported image ending.
        OutputExistsError: ``path`` exists and ``overwrite`` is False (found when publishing, so a
            file that appeared while the caller worked is kept too).
        OSError: SimpleITK could not write the file (nothing is left behind).
    """
    path = Path(path)
    suffix = _suffix(path)

    def write(hidden: Path) -> None:
        try:
            sitk.WriteImage(image, str(hidden), useCompression=True)
        except RuntimeError as error:
            raise OSError(f"cannot write image {str(path)!r}: {str(error).strip()}") from None

    return write_atomically(path, write, overwrite=overwrite, suffix=suffix)


def write_transform(transform: sitk.Transform, path: str | Path, overwrite: bool = False) -> Path:
    """Write a SimpleITK transform file (``.tfm``) atomically, as :func:`write_image` writes volumes.

    Raises:
        OutputExistsError: ``path`` exists and ``overwrite`` is False (nothing is left behind).
    """

    def write(hidden: Path) -> None:
        sitk.WriteTransform(transform, str(hidden))

    return write_atomically(path, write, overwrite=overwrite, suffix=Path(path).suffix)


def image_to_array(image: sitk.Image) -> np.ndarray:
    """Voxel values as a new float32 array in (z, y, x) order (SimpleITK's index order reversed)."""
    return sitk.GetArrayFromImage(image).astype(np.float32, copy=False)


def array_to_image(array: np.ndarray, reference: sitk.Image) -> sitk.Image:
    """An image of ``array`` with exactly the geometry of ``reference``.

    Args:
        array: voxel values in (z, y, x) order; booleans are stored as uint8.
        reference: the image whose size, spacing, origin and direction are copied.

    Returns:
        A new image; its pixel type follows ``array``'s dtype.

    Raises:
        ValueError: the array's shape is not the reference's size reversed.
    """
    array = np.asarray(array)
    expected = tuple(reversed(reference.GetSize()))
    if array.shape != expected:
        raise ValueError(f"array shape {array.shape} does not match the reference grid {expected} (z, y, x)")
    if array.dtype == bool:
        array = array.astype(np.uint8)
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(reference)
    return image
