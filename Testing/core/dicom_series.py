"""Writing test DICOM series with SimpleITK (GDCM), independently of the writer under test.

The headers are the minimal ones a converter or an anonymizer leaves: patient, study and series
identifiers, geometry, no frame of reference UID. Voxels are rounded to int16, so a NIfTI copy of
the same rounded values lets a test compare a DICOM input with a NIfTI one exactly.
"""

from __future__ import annotations

import locale
from pathlib import Path

import numpy as np
import SimpleITK as sitk

__all__ = ["PATIENT_ID", "STUDY_UID", "rounded", "write_series"]

PATIENT_ID = "CONES-TEST-7"
STUDY_UID = "1.2.826.0.1.3680043.8.498.1000"


def rounded(image: sitk.Image) -> sitk.Image:
    """``image`` with its voxels rounded to int16, as a scanner stores them."""
    result = sitk.GetImageFromArray(np.round(sitk.GetArrayFromImage(image)).astype(np.int16))
    result.CopyInformation(image)
    return result


def write_series(
    image: sitk.Image, folder: Path, series_uid: str, description: str = "T1 AX", series_number: int = 3
) -> Path:
    """Write ``image`` (rounded to int16) as one file per slice into ``folder``; returns ``folder``.

    GDCM's writer sets the process's C locale to "C", so every later ``open()`` without an encoding
    (in the tests that run after this one) would read ASCII; the locale is put back afterwards.
    """
    previous = locale.setlocale(locale.LC_ALL)
    try:
        return _write_series(image, folder, series_uid, description, series_number)
    finally:
        locale.setlocale(locale.LC_ALL, previous)


def _write_series(image: sitk.Image, folder: Path, series_uid: str, description: str, series_number: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    image = rounded(image)
    direction = image.GetDirection()
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    tags = {
        "0010|0010": "Test^Patient",
        "0010|0020": PATIENT_ID,
        "0020|000d": STUDY_UID,
        "0020|000e": series_uid,
        "0008|0060": "MR",
        "0008|0016": "1.2.840.10008.5.1.4.1.1.4",
        "0008|103e": description,
        "0020|0011": str(series_number),
        "0020|0037": "\\".join(f"{value:.10g}" for value in (*direction[0::3], *direction[1::3])),
    }
    for index in range(image.GetDepth()):
        plane = image[:, :, index]
        for tag, value in tags.items():
            plane.SetMetaData(tag, value)
        plane.SetMetaData("0008|0018", f"{series_uid}.{index + 1}")
        plane.SetMetaData("0020|0013", str(index + 1))
        plane.SetMetaData(
            "0020|0032", "\\".join(f"{v:.10g}" for v in image.TransformIndexToPhysicalPoint((0, 0, index)))
        )
        writer.SetFileName(str(folder / f"{series_uid}_{index:03d}.dcm"))
        writer.Execute(plane)
    return folder
