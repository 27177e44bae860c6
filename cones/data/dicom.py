"""DICOM series in and out: read a series folder with GDCM, write a synthesized volume as a derived MR series.

Radiologists' scans are DICOM. A folder is read with SimpleITK's series reader (GDCM), which sorts
the slices by position and needs no frame of reference UID. A folder may hold several series (a
whole study exported at once); picking one by order would go unnoticed, so it is refused with the
list unless the series is named.

A synthesized volume is written with pydicom as a new MR series, one single-frame file per slice:
it joins the reference scan's patient and study (new series and instance UIDs), and every place a
viewer or a PACS shows says it is synthetic: ``ImageType`` ``DERIVED\\SECONDARY\\OTHER``, a
``SeriesDescription`` starting with ``SYNTHETIC``, the model's sha256 in ``DerivationDescription``.
Voxels are stored as signed 16-bit integers with a rescale slope (intercept 0, so background stays
exactly 0); each value is within half a slope of the synthesized one.

A DICOM series is right-handed by construction: every reader (GDCM, so SimpleITK and Slicer; DCMTK)
takes the slice normal as row x column and orders slices along it. A left-handed volume (a NIfTI
with a flipped slice axis) is therefore written with its slice axis reversed, so instance numbers
follow the normal and a reader gets back the same voxels in space; index for index, the series
read back is the volume with its slices in reverse order.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import SimpleITK as sitk

import cones
from cones.data.slice_positions import on_even_grid, read_slice_positions, resampling_note
from cones.outputs import OutputExistsError, check_name_length, check_output_folder, published_together

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

__all__ = [
    "DERIVED_IMAGE_TYPE",
    "MR_IMAGE_STORAGE",
    "SERIES_NUMBER_OFFSET",
    "DicomSeriesInfo",
    "check_output_series_folder",
    "read_dicom_series",
    "refuse_unless_earlier_output",
    "series_files",
    "series_in_folder",
    "write_dicom_series",
]

logger = logging.getLogger(__name__)

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
DERIVED_IMAGE_TYPE = ("DERIVED", "SECONDARY", "OTHER")
"""Pixels made after the acquisition; the MR Image module needs a third value, and no other defined term fits."""
MANUFACTURER = "CoNeS (synthetic image)"
"""The General Equipment module's Manufacturer: the software that produced the instances (as the Slicer module says)."""
SERIES_NUMBER_OFFSET = 1000
"""A synthesized series is numbered the reference's number plus this, so it sorts apart from the acquired ones.

Importing this module imports neither torch nor pydicom, so the Slicer module reads it at startup
(through :mod:`cones.marking`), before the requirements are installed.
"""
STORED_MAXIMUM = 32000
"""Largest stored magnitude (int16 holds 32767; the margin absorbs the slope's decimal rounding)."""
SLICE_FILE_SUFFIX = ".dcm"
_PATIENT_AND_STUDY = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "PatientAge",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "AccessionNumber",
    "ReferringPhysicianName",
    "StudyDescription",
)
_PATIENT_SETTING = ("Laterality", "PatientPosition")
"""General Series attributes of type 2C, copied from the reference: dciodvfy cannot judge their conditions."""


def series_in_folder(folder: str | os.PathLike[str]) -> dict[str, list[str]]:
    """The DICOM series of a folder (not its subfolders): file names, sorted by slice position, by series UID."""
    folder = str(folder)
    return {
        uid: list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(folder, uid))
        for uid in sitk.ImageSeriesReader.GetGDCMSeriesIDs(folder)
    }


def series_files(folder: str | os.PathLike[str], series_uid: str | None = None) -> list[str]:
    """The files of the one series of ``folder``, or of the series ``series_uid``.

    Raises:
        ValueError: the folder holds no DICOM series, several without ``series_uid`` (listing them
            with their descriptions and sizes), or none with ``series_uid``.
    """
    found = series_in_folder(folder)
    if not found:
        raise ValueError(f"the folder {str(folder)!r} holds no DICOM series")
    if series_uid is None and len(found) == 1:
        return next(iter(found.values()))
    if series_uid in found:
        return found[series_uid]
    listed = "; ".join(f"{uid} ({_describe(files)})" for uid, files in found.items())
    if series_uid is None:
        raise ValueError(
            f"the folder {str(folder)!r} holds {len(found)} DICOM series: {listed}; choose one with --series"
        )
    raise ValueError(f"the folder {str(folder)!r} holds no series {series_uid!r}; it holds: {listed}")


def _describe(files: list[str]) -> str:
    reader = sitk.ImageFileReader()
    reader.SetFileName(files[0])
    reader.ReadImageInformation()
    description = reader.GetMetaData("0008|103e").strip() if reader.HasMetaDataKey("0008|103e") else ""
    return f"{description + ', ' if description else ''}{len(files)} file(s)"


def read_dicom_series(
    folder: str | os.PathLike[str], series_uid: str | None = None, *, resample_slices: bool = False
) -> sitk.Image:
    """Read one DICOM series as a 3D image (rescale slope and intercept applied, LPS geometry).

    The slice positions are checked first (:mod:`cones.data.slice_positions`): ITK would stack a
    series with a missing slice or uneven gaps at one spacing, every slice beyond the gap misplaced.

    Args:
        folder: the folder holding the series.
        series_uid: the series to read from a folder holding several.
        resample_slices: read an unevenly spaced series by interpolating its slices at their true
            positions onto an even grid (and say so in a warning) instead of refusing it.

    Raises:
        ValueError: see :func:`series_files` and :func:`~cones.data.slice_positions.read_slice_positions`;
            the slices are unevenly spaced and ``resample_slices`` is false; or the series cannot be
            read or is not one scalar volume.
    """
    files = series_files(folder, series_uid)
    positions = read_slice_positions(folder, files)
    gap = positions.uneven() if positions is not None else None
    if gap is not None and not resample_slices:
        raise ValueError(
            f"the DICOM series in {str(folder)!r}: {gap} (a missing or misplaced slice); pass --resample to "
            "interpolate its slices at their true positions onto an even grid"
        )
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    try:
        image = reader.Execute()
    except RuntimeError as error:
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        raise ValueError(f"cannot read the DICOM series in {str(folder)!r}: {reason}") from None
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise ValueError(
            f"the DICOM series in {str(folder)!r} must be a 3D scalar volume, got {image.GetDimension()}D with "
            f"{image.GetNumberOfComponentsPerPixel()} component(s)"
        )
    if gap is None:
        return image
    logger.warning("the DICOM series in %r: %s", str(folder), resampling_note(gap))
    return on_even_grid(image, positions, gap.expected_mm)


@dataclass(frozen=True)
class DicomSeriesInfo:
    """What a written series says about itself.

    Attributes:
        series_description: starts with ``SYNTHETIC`` (the marking).
        derivation_description: the marking, the full model sha256 and what it was made from.
        reference: a file of the acquired series whose patient and study the new series joins;
            ``None`` starts a new study with empty patient fields.
    """

    series_description: str
    derivation_description: str
    reference: Path | None


def check_output_series_folder(
    path: str | os.PathLike[str], *, overwrite: bool, reads: Mapping[str, str | os.PathLike[str] | None]
) -> Path:
    """Refuse a DICOM output folder before any work.

    The folder must not exist or be empty. With ``overwrite`` an earlier output of CoNeS is
    replaced (see :func:`refuse_unless_earlier_output`); a folder holding anything else, an
    acquired series above all, is never replaced, so a mistyped ``--output`` cannot delete a scan.

    Raises:
        ValueError: the folder is a file, one of ``reads`` or holds one, its name is too long, or it
            holds anything but an earlier CoNeS series.
        OutputExistsError: the folder holds files and ``overwrite`` is false.
    """
    check_name_length(path)
    path = check_output_folder(path, reads=reads)
    for name, read in reads.items():
        if read is not None and Path(read).resolve().is_relative_to(path.resolve()):
            raise ValueError(f"the output folder {str(path)!r} holds {name} ({str(read)!r}); choose another folder")
    if not path.is_dir() or not any(path.iterdir()):
        return path
    if not overwrite:
        raise OutputExistsError(path)
    refuse_unless_earlier_output(path)
    return path


def refuse_unless_earlier_output(folder: Path) -> None:
    """Refuse to replace ``folder`` unless every file in it is a slice of a series CoNeS synthesized.

    Such a slice is a ``.dcm`` file whose ``ImageType`` starts with ``DERIVED`` and whose series
    description is the synthetic marking (:func:`cones.marking.is_synthetic_marking`); an acquired
    series (``ORIGINAL``, or any other description) is never deleted, even with ``--overwrite``.
    Checked before the work and again right before the folder is replaced.

    Raises:
        ValueError: naming the folder and the first file that is no such slice.
    """
    for entry in sorted(folder.iterdir()):
        if not _is_synthesized_slice(entry):
            raise ValueError(
                f"the output folder {str(folder)!r} holds {entry.name!r}, not an earlier output of CoNeS (a "
                "DERIVED series marked SYNTHETIC); --overwrite replaces only those, choose an empty or new folder"
            )


def _is_synthesized_slice(path: Path) -> bool:
    import pydicom
    from pydicom.errors import InvalidDicomError

    from cones.marking_text import is_synthetic_marking

    if not (path.is_file() and not path.is_symlink() and path.suffix == SLICE_FILE_SUFFIX):
        return False
    try:
        dataset = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["ImageType", "SeriesDescription"])
    except (InvalidDicomError, OSError, ValueError):
        return False
    image_type = dataset.get("ImageType") or ""
    first = image_type if isinstance(image_type, str) else image_type[0]
    return first == DERIVED_IMAGE_TYPE[0] and is_synthetic_marking(str(dataset.get("SeriesDescription", "")))


def write_dicom_series(
    image: sitk.Image, folder: str | os.PathLike[str], info: DicomSeriesInfo, *, overwrite: bool
) -> Path:
    """Write ``image`` as a new MR series: one file per slice into a hidden folder, then renamed to ``folder``.

    Inside :func:`cones.outputs.published_together` the folder is published with the command's other outputs.

    Args:
        image: the synthesized volume; its slices are written along its third index axis.
        folder: must not exist, or be empty, or (with ``overwrite``) hold a previous series.
        info: the series' descriptions and the reference file.
        overwrite: replace a previous series in ``folder``.

    Returns:
        ``folder`` as a :class:`~pathlib.Path`.

    Raises:
        OutputExistsError: ``folder`` holds files (it may have appeared meanwhile) and ``overwrite`` is false.
        ValueError: ``folder`` holds anything but an earlier CoNeS series (:func:`refuse_unless_earlier_output`).
        OSError: writing failed; nothing is left behind.
    """
    import pydicom

    folder = Path(folder)
    reference = pydicom.dcmread(info.reference, stop_before_pixels=True) if info.reference is not None else None
    with published_together() as publication:
        hidden = publication.hidden_path(folder)
        hidden.mkdir()
        for path, dataset in zip(_slice_paths(hidden, image), _datasets(image, info, reference), strict=True):
            dataset.save_as(path, enforce_file_format=True)
            with path.open("rb") as stream:
                os.fsync(stream.fileno())
        publication.stage(hidden, folder, overwrite=overwrite, replaceable=refuse_unless_earlier_output)
    return folder


def _slice_paths(folder: Path, image: sitk.Image) -> list[Path]:
    return [folder / f"slice_{index + 1:04d}{SLICE_FILE_SUFFIX}" for index in range(image.GetSize()[2])]


def _datasets(image: sitk.Image, info: DicomSeriesInfo, reference: Dataset | None) -> Iterator[Dataset]:
    """One pydicom dataset per slice of ``image``, all of one new series."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    image = _right_handed(image)
    voxels = sitk.GetArrayFromImage(image).astype(np.float64)  # (slices, rows, columns)
    largest = float(np.abs(voxels).max())
    slope = float(f"{largest / STORED_MAXIMUM:.6g}") if largest > 0 else 1.0
    stored = np.round(voxels / slope).astype(np.int16)
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    orientation = [*direction[:, 0], *direction[:, 1]]
    spacing = image.GetSpacing()
    now = datetime.now()
    date, time = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    series_uid = generate_uid()
    common = Dataset()
    if reference is not None:
        for keyword in _PATIENT_AND_STUDY:
            if keyword in reference:
                setattr(common, keyword, getattr(reference, keyword))
        common.SeriesNumber = int(reference.get("SeriesNumber") or 0) + SERIES_NUMBER_OFFSET
    else:
        common.update({"PatientName": "", "PatientID": "", "PatientBirthDate": "", "PatientSex": ""})
        common.StudyInstanceUID = generate_uid()
        common.StudyDate, common.StudyTime = date, time
        common.update({"StudyID": "", "AccessionNumber": "", "ReferringPhysicianName": ""})
        common.SeriesNumber = SERIES_NUMBER_OFFSET
    frame = reference.get("FrameOfReferenceUID") if reference is not None else None
    common.FrameOfReferenceUID = frame or generate_uid()
    common.PositionReferenceIndicator = (reference.get("PositionReferenceIndicator") or "") if frame else ""
    for keyword in _PATIENT_SETTING:
        setattr(common, keyword, (reference.get(keyword) or "") if reference is not None else "")
    common.Manufacturer, common.SoftwareVersions = MANUFACTURER, f"CoNeS {cones.__version__}"
    common.SOPClassUID = MR_IMAGE_STORAGE
    common.Modality = "MR"
    common.SeriesInstanceUID = series_uid
    common.SeriesDescription = info.series_description
    common.SeriesDate, common.SeriesTime = date, time
    common.ContentDate, common.ContentTime = date, time
    common.ImageType = list(DERIVED_IMAGE_TYPE)
    common.DerivationDescription = info.derivation_description
    common.ImageComments = info.series_description
    common.BurnedInAnnotation = "NO"
    # Type 1 attributes of the MR Image module: no pulse sequence made these voxels, so research mode, no variant.
    common.ScanningSequence, common.SequenceVariant = "RM", "NONE"
    common.update({"ScanOptions": "", "MRAcquisitionType": "", "EchoTime": "", "RepetitionTime": ""})
    common.update({"EchoTrainLength": "", "ImagingFrequency": "", "MagneticFieldStrength": ""})
    common.ImageOrientationPatient = [_ds(value) for value in orientation]
    common.PixelSpacing = [_ds(spacing[1]), _ds(spacing[0])]
    common.SliceThickness = _ds(spacing[2])
    common.SpacingBetweenSlices = _ds(spacing[2])
    common.SamplesPerPixel, common.PhotometricInterpretation = 1, "MONOCHROME2"
    common.Rows, common.Columns = stored.shape[1], stored.shape[2]
    common.BitsAllocated, common.BitsStored, common.HighBit, common.PixelRepresentation = 16, 16, 15, 1
    # Not part of the MR Image IOD (dciodvfy warns), but the one way its int16 pixels keep a float volume's values.
    common.RescaleIntercept, common.RescaleSlope, common.RescaleType = "0", _ds(slope), "US"
    for index in range(stored.shape[0]):
        dataset = Dataset()
        dataset.update(common)
        dataset.SOPInstanceUID = generate_uid()
        dataset.InstanceNumber = index + 1
        dataset.ImagePositionPatient = [_ds(value) for value in image.TransformIndexToPhysicalPoint((0, 0, index))]
        dataset.PixelData = np.ascontiguousarray(stored[index]).tobytes()
        dataset.file_meta = FileMetaDataset()
        dataset.file_meta.MediaStorageSOPClassUID = MR_IMAGE_STORAGE
        dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
        dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        yield dataset


def _right_handed(image: sitk.Image) -> sitk.Image:
    """``image``, or with a left-handed grid the same voxels in space with its slice axis reversed.

    Written as it is, a left-handed volume's instance numbers would run against the slice normal:
    readers that sort by position still place the voxels right, but one that stacks by instance
    number and takes the normal for the slice direction would mirror the volume.
    """
    if np.linalg.det(np.asarray(image.GetDirection()).reshape(3, 3)) > 0:
        return image
    return sitk.Flip(image, [False, False, True])  # keeps every voxel's physical position


def _ds(value: float) -> str:
    """A decimal string within DICOM's 16 characters."""
    text = f"{value:.10g}"
    return text if len(text) <= 16 else f"{value:.8e}"
