"""Hostile DICOM inputs and the DICOM series we write, and the messages ITK prints on the way.

A refusal is checked as in ``test_hostile_inputs.py``: exit code, one ``error:`` line holding the
expected texts, and every file of the folder byte-identical afterwards. The series we write is
checked with the standard's own validator, ``dciodvfy`` (dicom3tools), where it is installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from functools import partial
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from dicom_series import rounded, write_series
from refusals import assert_refused
from synthetic_cases import case_images, synthesize_arguments
from tiny_models import write_tiny_model

from cones.cli import main
from cones.data import read_image
from cones.marking import sidecar_path

SPACING = (0.9, 0.9, 3.0)
OBLIQUE = (0.9848077530, -0.1736481777, 0.0, 0.1736481777, 0.9848077530, 0.0, 0.0, 0.0, 1.0)
SERIES = {
    "t1": "1.2.826.0.1.3680043.8.498.31",
    "t2": "1.2.826.0.1.3680043.8.498.32",
    "flair": "1.2.826.0.1.3680043.8.498.33",
}
MISSING = 5
"""Index of the slice taken out of a series: slices 5 and 6 (counted from 1) lie 6 mm apart instead of 3."""
DCIODVFY = shutil.which("dciodvfy")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("model") / "tiny.pt")


@pytest.fixture
def images() -> dict[str, sitk.Image]:
    return {name: rounded(image) for name, image in case_images(spacing=SPACING, direction=OBLIQUE).items()}


@pytest.fixture
def nifti(images: dict[str, sitk.Image], tmp_path: Path) -> dict[str, Path]:
    paths = {name: tmp_path / "in" / f"{name}.nii.gz" for name in ("t1", "t2", "flair")}
    paths["t1"].parent.mkdir()
    for name, path in paths.items():
        sitk.WriteImage(images[name], str(path))
    return paths


def dicom(images: dict[str, sitk.Image], folder: Path, name: str) -> Path:
    return write_series(images[name], folder / f"{name}_dicom", SERIES[name])


def without_slice(series: Path, index: int = MISSING) -> Path:
    """Delete the file of slice ``index`` (along the slice normal) from a series folder."""
    files = sorted(series.iterdir(), key=lambda path: int(pydicom.dcmread(path).InstanceNumber))
    files[index].unlink()
    return series


@pytest.fixture
def refused(capfd: pytest.CaptureFixture, snapshot):
    """``refused(arguments, folder, *expected)``: :func:`refusals.assert_refused`, ITK's own output included."""
    return partial(assert_refused, capfd, snapshot)


def test_a_series_with_a_missing_slice_is_refused_naming_the_gap(
    tiny_model: Path, images: dict[str, sitk.Image], tmp_path: Path, refused
) -> None:
    """Item 3: three series with the same slice missing agree on one grid, so ITK's even stacking went unnoticed."""
    inputs = {name: without_slice(dicom(images, tmp_path / "in", name)) for name in ("t1", "t2", "flair")}
    refused(
        synthesize_arguments(tiny_model, inputs, tmp_path / "in" / "t1ce.nii.gz"),
        tmp_path,
        str(inputs["t1"]),
        "slice spacing uneven: 3 mm expected, 6 mm between slices 5 and 6",
        "--resample",
    )


def test_with_resample_the_slices_are_interpolated_at_their_true_positions(
    tiny_model: Path, images: dict[str, sitk.Image], nifti: dict[str, Path], tmp_path: Path, caplog
) -> None:
    """Item 3 with ``--resample``: the full grid again, the missing slice between its neighbours, and said so."""
    t1 = without_slice(dicom(images, tmp_path / "in", "t1"))
    read = read_image(t1, resample_slices=True)
    full = images["t1"]
    assert read.GetSize() == full.GetSize()
    np.testing.assert_allclose(read.GetOrigin(), full.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(read.GetSpacing(), full.GetSpacing(), atol=1e-6)
    np.testing.assert_allclose(read.GetDirection(), full.GetDirection(), atol=1e-6)
    expected = sitk.GetArrayFromImage(full).astype(np.float32)
    expected[MISSING] = (expected[MISSING - 1] + expected[MISSING + 1]) / 2
    np.testing.assert_allclose(sitk.GetArrayFromImage(read), expected, atol=1e-3)

    caplog.clear()
    output = tmp_path / "t1ce.nii.gz"
    assert main(synthesize_arguments(tiny_model, {**nifti, "t1": t1}, output, "--resample")) == 0
    said = [record.getMessage() for record in caplog.records if "slice spacing uneven" in record.getMessage()]
    assert len(said) == 1 and str(t1) in said[0] and "interpolated" in said[0]
    assert sitk.ReadImage(str(output)).GetSize() == full.GetSize()
    recorded = json.loads(sidecar_path(output).read_text())["inputs"]["t1"]["resampled_slices"]
    assert "6 mm between slices 5 and 6" in recorded and "3 mm grid" in recorded


@pytest.mark.parametrize(
    "removed",
    [("ImagePositionPatient", "ImageOrientationPatient"), ("ImagePositionPatient",)],
    ids=["both", "position"],
)
def test_a_series_without_slice_positions_is_refused_naming_the_tags(
    tiny_model: Path,
    images: dict[str, sitk.Image],
    nifti: dict[str, Path],
    tmp_path: Path,
    refused,
    removed: tuple[str, ...],
) -> None:
    """Item 9: without them GDCM stacks 1 mm slices with an identity orientation, a volume that is not the scan."""
    t1 = dicom(images, tmp_path / "in", "t1")
    for path in t1.iterdir():
        dataset = pydicom.dcmread(path)
        for keyword in removed:
            delattr(dataset, keyword)
        dataset.save_as(path)
    line = refused(
        synthesize_arguments(tiny_model, {**nifti, "t1": t1}, tmp_path / "in" / "t1ce.nii.gz", "--resample"),
        tmp_path,
        str(t1),
        *removed,
        "12 of 12 file(s)",
    ).line
    assert ("ImageOrientationPatient" in line) == ("ImageOrientationPatient" in removed)


def sheared(path: Path, destination: Path) -> Path:
    """A copy of a NIfTI file whose sform carries a slight shear: ITK warns and reads its (unchanged) qform."""
    image = nib.load(path)
    sform = image.affine.copy()
    sform[:3, 1] += 0.05 * sform[:3, 0]  # a smaller shear passes ITK without a word
    copy = nib.Nifti1Image(np.asanyarray(image.dataobj), image.get_qform(), image.header)
    copy.set_qform(image.get_qform(), code=1)
    copy.set_sform(sform, code=1)
    nib.save(copy, destination)
    return destination


def test_itk_warnings_before_a_refusal_leave_one_error_line(
    tiny_model: Path, nifti: dict[str, Path], tmp_path: Path, refused, caplog
) -> None:
    """Item 12: ITK's multi-line ``WARNING: In /tmp/SimpleITK-build/...`` block went to stderr before the error."""
    t1 = sheared(nifti["t1"], tmp_path / "in" / "t1_sheared.nii.gz")
    t2 = sitk.ReadImage(str(nifti["t2"]))
    t2.SetOrigin(tuple(value + 10 for value in t2.GetOrigin()))
    moved = tmp_path / "in" / "t2_moved.nii.gz"
    sitk.WriteImage(t2, str(moved))
    refused(
        synthesize_arguments(tiny_model, {**nifti, "t1": t1, "t2": moved}, tmp_path / "in" / "t1ce.nii.gz"),
        tmp_path,
        "not on the grid",
    )
    itk = [record for record in caplog.records if record.name == "cones.itk" and record.levelname == "WARNING"]
    assert [record.getMessage() for record in itk] == [f"NiftiImageIO: {t1} has unexpected scales in sform"]


def test_warnings_on_stderr_are_warning_lines(tiny_model: Path, nifti: dict[str, Path], tmp_path: Path) -> None:
    """Item 12 and "WARNING the T1 input is not DICOM": on the command line's stderr, each is one ``warning:`` line."""
    t1 = sheared(nifti["t1"], tmp_path / "in" / "t1_sheared.nii.gz")
    arguments = synthesize_arguments(tiny_model, {**nifti, "t1": t1}, tmp_path / "t1ce", "--output-format", "dicom")
    result = subprocess.run(
        [sys.executable, "-c", "import sys; from cones.cli import main; sys.exit(main(sys.argv[1:]))", *arguments],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert not [line for line in lines if line.startswith("WARNING") or "SimpleITK-build" in line], result.stderr
    assert lines.count(f"warning: NiftiImageIO: {t1} has unexpected scales in sform") == 1, result.stderr
    assert [line for line in lines if line.startswith("warning: the T1 input is not DICOM")], result.stderr


def dciodvfy_errors(folder: Path) -> list[str]:
    """The ``Error`` lines dciodvfy prints for any file of the series (its warnings are allowed)."""
    errors = []
    for path in sorted(folder.iterdir()):
        checked = subprocess.run([DCIODVFY, str(path)], capture_output=True, text=True, timeout=60, check=False)
        errors += [f"{path.name}: {line}" for line in (checked.stdout + checked.stderr).splitlines() if "Error" in line]
    return errors


@pytest.mark.skipif(DCIODVFY is None, reason="dciodvfy is not installed (Debian package dicom3tools)")
def test_a_series_without_a_dicom_reference_passes_dciodvfy(
    tiny_model: Path, nifti: dict[str, Path], tmp_path: Path
) -> None:
    """Item 14: ImageType value 3, Manufacturer, PositionReferenceIndicator, Laterality and PatientPosition."""
    folder = tmp_path / "t1ce"
    assert main(synthesize_arguments(tiny_model, nifti, folder, "--output-format", "dicom")) == 0
    assert dciodvfy_errors(folder) == []
    dataset = pydicom.dcmread(next(folder.iterdir()))
    assert list(dataset.ImageType)[:2] == ["DERIVED", "SECONDARY"] and dataset.PatientPosition == ""


@pytest.mark.skipif(DCIODVFY is None, reason="dciodvfy is not installed (Debian package dicom3tools)")
def test_a_series_joining_a_dicom_reference_passes_dciodvfy_and_copies_what_it_has(
    tiny_model: Path, images: dict[str, sitk.Image], nifti: dict[str, Path], tmp_path: Path
) -> None:
    """Item 14 with a reference: its frame of reference, position reference and patient position are the series'."""
    t1 = dicom(images, tmp_path / "in", "t1")
    frame = "1.2.826.0.1.3680043.8.498.39"
    for path in t1.iterdir():
        dataset = pydicom.dcmread(path)
        dataset.FrameOfReferenceUID, dataset.PositionReferenceIndicator, dataset.PatientPosition = frame, "NA", "HFS"
        dataset.Manufacturer = "ACME"
        dataset.save_as(path)
    folder = tmp_path / "t1ce"
    assert main(synthesize_arguments(tiny_model, {**nifti, "t1": t1}, folder, "--output-format", "dicom")) == 0
    assert dciodvfy_errors(folder) == []
    for path in folder.iterdir():
        dataset = pydicom.dcmread(path)
        assert (dataset.FrameOfReferenceUID, dataset.PositionReferenceIndicator) == (frame, "NA")
        assert dataset.PatientPosition == "HFS" and dataset.Laterality == ""
        assert dataset.Manufacturer != "ACME", "the scanner did not make a synthetic image"
