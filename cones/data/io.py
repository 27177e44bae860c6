"""Reading and writing volumes with SimpleITK, keeping their geometry exact.

SimpleITK reads NIfTI, NRRD and MetaImage alike and keeps the full geometry (size, spacing,
origin, direction, including oblique and left-handed directions). Arrays follow SimpleITK's
(z, y, x) index order.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from cones.data.discovery import IMAGE_SUFFIXES

__all__ = ["array_to_image", "image_to_array", "read_image", "write_image"]


def read_image(path: str | Path) -> sitk.Image:
    """Read a 3D single-component image.

    Args:
        path: a ``.nii.gz``, ``.nii``, ``.nrrd`` or ``.mha`` file.

    Returns:
        The image with its geometry.

    Raises:
        ValueError: the file is missing or unreadable, or is not a 3D scalar volume (a 4D series or
            an RGB image cannot be a sequence channel); the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"image file {str(path)!r} does not exist")
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as error:
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        raise ValueError(f"cannot read image {str(path)!r}: {reason}") from None
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise ValueError(
            f"image {str(path)!r} must be a 3D scalar volume, got {image.GetDimension()}D with "
            f"{image.GetNumberOfComponentsPerPixel()} component(s)"
        )
    return image


def _suffix(path: Path) -> str:
    suffix = next((s for s in IMAGE_SUFFIXES if path.name.lower().endswith(s)), None)
    if suffix is None:
        raise ValueError(f"path {str(path)!r} must end with one of {', '.join(IMAGE_SUFFIXES)}")
    return suffix


def write_image(image: sitk.Image, path: str | Path, overwrite: bool = False) -> Path:
    """Write ``image`` atomically: to a temporary file beside ``path``, then renamed into place.

    The rename is atomic on one file system, so an interrupted or failed write never leaves a
    truncated volume that a later run would read as valid.

    Args:
        image: the image to write.
        path: the destination; its ending picks the format.
        overwrite: replace an existing file. False by default because user data is never replaced
            unless asked.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: ``path`` has no supported image ending.
        FileExistsError: ``path`` exists and ``overwrite`` is False.
        OSError: SimpleITK could not write the file (nothing is left behind).
    """
    path = Path(path)
    suffix = _suffix(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{str(path)!r} already exists; pass overwrite=True to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name[: -len(suffix)]}.", suffix=suffix, dir=path.parent)
    os.close(handle)
    try:
        sitk.WriteImage(image, temporary, useCompression=True)
        os.replace(temporary, path)
    except RuntimeError as error:
        raise OSError(f"cannot write image {str(path)!r}: {str(error).strip()}") from None
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return path


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
