"""DICOM in and out: series folders as inputs beside NIfTI, a synthesized derived MR series as output."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from dicom_series import PATIENT_ID, STUDY_UID, rounded, write_series
from synthetic_cases import OBLIQUE_LEFT_HANDED, case_images, write_case
from test_marking import SOURCES, synthesize
from tiny_models import write_tiny_model

from cones.data.dicom import read_dicom_series
from cones.marking import sidecar_path

OBLIQUE = (0.9848077530, -0.1736481777, 0.0, 0.1736481777, 0.9848077530, 0.0, 0.0, 0.0, 1.0)
T1_SERIES, OTHER_SERIES = "1.2.826.0.1.3680043.8.498.11", "1.2.826.0.1.3680043.8.498.12"
NATIVE = Path(__file__).resolve().parents[3] / "shared" / "data" / "native" / "TCGA-FG-6692"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("model") / "tiny.pt")


@pytest.fixture
def case(tmp_path: Path) -> dict[str, Path]:
    """T1 as a DICOM series, T2 and FLAIR as NIfTI, and T1 also as NIfTI with the same (rounded) voxels."""
    images = case_images(spacing=(0.9, 0.9, 3.0), direction=OBLIQUE, origin=(4, 5, 6))
    paths = {"t1": write_series(images["t1"], tmp_path / "t1_dicom", T1_SERIES)}
    for name in ("t1", "t2", "flair"):
        paths[f"{name}_nifti"] = tmp_path / f"{name}.nii.gz"
        sitk.WriteImage(rounded(images[name]), str(paths[f"{name}_nifti"]))
    return paths


def mixed(case: dict[str, Path]) -> list[str]:
    return [f"t1={case['t1']}", f"t2={case['t2_nifti']}", f"flair={case['flair_nifti']}"]


def read_series(folder: Path) -> list[pydicom.Dataset]:
    return sorted((pydicom.dcmread(path) for path in folder.iterdir()), key=lambda ds: int(ds.InstanceNumber))


def check_series_against(datasets: list[pydicom.Dataset], expected: sitk.Image) -> None:
    """Per slice: position, orientation, spacing and voxels (within half a rescale step) of the NIfTI result.

    Instance numbers run along the slice normal (row x column), as every DICOM reader stacks them;
    for a left-handed NIfTI grid that is its slices in reverse order.
    """
    direction = np.asarray(expected.GetDirection()).reshape(3, 3)
    values = sitk.GetArrayFromImage(expected)
    count = expected.GetSize()[2]
    order = range(count) if np.linalg.det(direction) > 0 else range(count - 1, -1, -1)
    assert len(datasets) == count
    normal = np.cross(direction[:, 0], direction[:, 1])
    heights = [float(np.dot([float(v) for v in dataset.ImagePositionPatient], normal)) for dataset in datasets]
    assert heights == sorted(heights), "instance numbers follow the slice normal"
    for index, dataset in zip(order, datasets, strict=True):
        np.testing.assert_allclose(
            [float(v) for v in dataset.ImagePositionPatient],
            expected.TransformIndexToPhysicalPoint((0, 0, index)),
            atol=1e-4,
        )
        np.testing.assert_allclose(
            [float(v) for v in dataset.ImageOrientationPatient], [*direction[:, 0], *direction[:, 1]], atol=1e-6
        )
        np.testing.assert_allclose([float(v) for v in dataset.PixelSpacing], expected.GetSpacing()[1::-1], atol=1e-6)
        slope, intercept = float(dataset.RescaleSlope), float(dataset.RescaleIntercept)
        decoded = dataset.pixel_array * slope + intercept
        assert np.abs(decoded - values[index]).max() <= slope / 2 + 1e-6
        assert np.all(decoded[values[index] == 0] == 0), "background stays exactly 0"


def check_read_back_in_space(folder: Path, expected: sitk.Image) -> None:
    """What SimpleITK (GDCM, which Slicer also reads with) gets from the series: the NIfTI voxels in place.

    Compared point by point in space, not index by index: a DICOM series reads back right-handed,
    so a left-handed NIfTI grid comes back with its slices reversed (and the direction to match).
    """
    slope = float(pydicom.dcmread(next(folder.iterdir())).RescaleSlope)
    back = read_dicom_series(folder)
    assert back.GetPixelID() == sitk.sitkFloat64, "GDCM applies the rescale in double precision"
    on_grid = sitk.Resample(back, expected, sitk.Transform(), sitk.sitkNearestNeighbor, np.nan, sitk.sitkFloat64)
    values = sitk.GetArrayFromImage(on_grid)
    assert not np.isnan(values).any(), "the series covers the whole NIfTI grid"
    assert np.abs(values - sitk.GetArrayFromImage(expected)).max() <= slope / 2 + 1e-6


def test_a_dicom_input_gives_the_same_result_as_its_nifti_copy(tiny_model: Path, case, tmp_path: Path) -> None:
    from_dicom, from_nifti = tmp_path / "from_dicom.nii.gz", tmp_path / "from_nifti.nii.gz"
    assert synthesize(tiny_model, mixed(case), from_dicom) == 0
    nifti = [f"{name}={case[f'{name}_nifti']}" for name in SOURCES]
    assert synthesize(tiny_model, nifti, from_nifti) == 0
    a, b = sitk.ReadImage(str(from_dicom)), sitk.ReadImage(str(from_nifti))
    np.testing.assert_allclose(a.GetOrigin(), b.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(sitk.GetArrayFromImage(a), sitk.GetArrayFromImage(b), atol=1e-3)
    sidecar = json.loads(sidecar_path(from_dicom).read_text())
    assert sidecar["inputs"]["t1"]["series_instance_uid"] is None and sidecar["inputs"]["t1"]["files"] == 12


def test_dicom_output_is_a_derived_synthetic_series_of_the_reference_study(
    tiny_model: Path, case, tmp_path: Path
) -> None:
    nifti, folder = tmp_path / "t1ce.nii.gz", tmp_path / "t1ce_dicom"
    assert synthesize(tiny_model, mixed(case), nifti) == 0
    assert synthesize(tiny_model, mixed(case), folder, "--output-format", "dicom") == 0
    datasets = read_series(folder)
    assert sorted(path.suffix for path in folder.iterdir()) == [".dcm"] * 12, "nothing else in the folder"
    reference = pydicom.dcmread(next(case["t1"].iterdir()))
    model_sha = hashlib.sha256(tiny_model.read_bytes()).hexdigest()
    for dataset in datasets:
        assert dataset.SOPClassUID == "1.2.840.10008.5.1.4.1.1.4" and dataset.Modality == "MR"
        assert list(dataset.ImageType) == ["DERIVED", "SECONDARY", "OTHER"]
        assert dataset.SeriesDescription.startswith("SYNTHETIC T1ce")
        assert model_sha in dataset.DerivationDescription
        assert dataset.PatientID == PATIENT_ID and dataset.StudyInstanceUID == STUDY_UID
        assert dataset.SeriesInstanceUID not in (T1_SERIES, datasets[0].SOPInstanceUID)
        assert int(dataset.SeriesNumber) != int(reference.SeriesNumber)
    assert len({dataset.SeriesInstanceUID for dataset in datasets}) == 1
    assert len({dataset.SOPInstanceUID for dataset in datasets}) == 12
    check_series_against(datasets, sitk.ReadImage(str(nifti)))
    check_read_back_in_space(folder, sitk.ReadImage(str(nifti)))
    assert json.loads(sidecar_path(folder).read_text())["options"]["output_format"] == "dicom"


def test_a_left_handed_output_is_written_along_the_slice_normal_and_reads_back_in_place(
    tiny_model: Path, tmp_path: Path
) -> None:
    """A left-handed NIfTI grid (a flipped slice axis) cannot be a DICOM series as it is: its slices are reversed."""
    case = write_case(tmp_path, "P", spacing=(0.9, 0.9, 3.0), direction=OBLIQUE_LEFT_HANDED, origin=(4, 5, 6))
    inputs = [f"{name}={case / f'P_{name}.nii.gz'}" for name in SOURCES]
    nifti, folder = tmp_path / "t1ce.nii.gz", tmp_path / "t1ce"
    assert synthesize(tiny_model, inputs, nifti) == 0
    assert synthesize(tiny_model, inputs, folder, "--output-format", "dicom") == 0
    expected = sitk.ReadImage(str(nifti))
    assert np.linalg.det(np.asarray(expected.GetDirection()).reshape(3, 3)) < 0
    check_series_against(read_series(folder), expected)
    check_read_back_in_space(folder, expected)


def test_dicom_output_without_a_dicom_reference_starts_a_new_study_and_says_so(
    tiny_model: Path, case, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "series"
    folder.mkdir()  # an empty folder is accepted
    nifti = [f"{name}={case[f'{name}_nifti']}" for name in SOURCES]
    assert synthesize(tiny_model, nifti, folder, "--output-format", "dicom") == 0
    assert "new study with empty patient fields" in caplog.text
    dataset = read_series(folder)[0]
    assert dataset.PatientID == "" and dataset.PatientName == "" and dataset.StudyInstanceUID != STUDY_UID


def test_a_folder_of_several_series_is_refused_with_the_list_and_series_picks_one(
    tiny_model: Path, case, tmp_path: Path, snapshot, capsys: pytest.CaptureFixture
) -> None:
    write_series(
        case_images(spacing=(0.9, 0.9, 3.0), direction=OBLIQUE, origin=(4, 5, 6))["t2"],
        case["t1"],
        OTHER_SERIES,
        "T2 AX",
    )
    output = tmp_path / "out.nii.gz"
    before = snapshot(tmp_path)
    assert synthesize(tiny_model, mixed(case), output) == 2
    error = capsys.readouterr().err
    assert "holds 2 DICOM series" in error and T1_SERIES in error and OTHER_SERIES in error and "T2 AX" in error
    assert "--series" in error
    assert snapshot(tmp_path) == before
    assert synthesize(tiny_model, mixed(case), output, "--series", "t1=1.2.3") == 2
    assert "holds no series '1.2.3'" in capsys.readouterr().err
    assert synthesize(tiny_model, mixed(case), output, "--series", f"t2={T1_SERIES}") == 2
    assert "is not a DICOM folder" in capsys.readouterr().err
    assert snapshot(tmp_path) == before
    assert synthesize(tiny_model, mixed(case), output, "--series", f"t1={T1_SERIES}") == 0
    assert json.loads(sidecar_path(output).read_text())["inputs"]["t1"]["series_instance_uid"] == T1_SERIES


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_non_empty_output_folder_is_refused(
    tiny_model: Path, case, tmp_path: Path, snapshot, capsys: pytest.CaptureFixture, overwrite: bool
) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    before = snapshot(tmp_path)
    extra = ("--overwrite",) if overwrite else ()
    assert synthesize(tiny_model, mixed(case), folder, "--output-format", "dicom", *extra) == 2
    assert ("not an earlier output of CoNeS" if overwrite else "already exists") in capsys.readouterr().err
    assert snapshot(tmp_path) == before


def test_overwrite_replaces_a_previous_series_but_never_an_input_folder(
    tiny_model: Path, case, tmp_path: Path, snapshot, capsys: pytest.CaptureFixture
) -> None:
    folder = tmp_path / "out"
    assert synthesize(tiny_model, mixed(case), folder, "--output-format", "dicom") == 0
    first = {dataset.SeriesInstanceUID for dataset in read_series(folder)}
    assert synthesize(tiny_model, mixed(case), folder, "--output-format", "dicom") == 2
    assert synthesize(tiny_model, mixed(case), folder, "--output-format", "dicom", "--overwrite") == 0
    second = {dataset.SeriesInstanceUID for dataset in read_series(folder)}
    assert first != second and len(list(folder.iterdir())) == 12
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".")] == [], "no temporary folder left"
    before = snapshot(tmp_path)
    assert synthesize(tiny_model, mixed(case), case["t1"], "--output-format", "dicom", "--overwrite") == 2
    assert "is the T1 input" in capsys.readouterr().err
    assert synthesize(tiny_model, mixed(case), tmp_path, "--output-format", "dicom", "--overwrite") == 2
    assert "holds the T1 input" in capsys.readouterr().err
    assert snapshot(tmp_path) == before


@pytest.mark.skipif(not NATIVE.is_dir(), reason="the shared native case is absent")
def test_the_native_case_as_dicom_in_and_out(tiny_model: Path, tmp_path: Path) -> None:
    """The real clinical T1 (26 thick axial slices, its own grid) as a DICOM series, T2 and FLAIR as NIfTI."""
    t1 = write_series(sitk.ReadImage(str(NATIVE / "TCGA-FG-6692_t1.nii.gz")), tmp_path / "t1", T1_SERIES)
    inputs = [f"t1={t1}", *(f"{name}={NATIVE / f'TCGA-FG-6692_{name}.nii.gz'}" for name in ("t2", "flair"))]
    nifti, folder = tmp_path / "t1ce.nii.gz", tmp_path / "t1ce"
    assert synthesize(tiny_model, inputs, nifti, "--resample") == 0
    assert synthesize(tiny_model, inputs, folder, "--resample", "--output-format", "dicom") == 0
    datasets = read_series(folder)
    assert len(datasets) == 26 and all(dataset.StudyInstanceUID == STUDY_UID for dataset in datasets)
    acquired = sorted(
        (pydicom.dcmread(path) for path in t1.iterdir()), key=lambda ds: float(ds.ImagePositionPatient[2])
    )
    written = sorted(datasets, key=lambda ds: float(ds.ImagePositionPatient[2]))
    for mine, theirs in zip(written, acquired, strict=True):
        np.testing.assert_allclose(
            [float(v) for v in mine.ImagePositionPatient], [float(v) for v in theirs.ImagePositionPatient], atol=1e-3
        )
        np.testing.assert_allclose(
            [float(v) for v in mine.ImageOrientationPatient],
            [float(v) for v in theirs.ImageOrientationPatient],
            atol=1e-6,
        )
    check_series_against(datasets, sitk.ReadImage(str(nifti)))
    check_read_back_in_space(folder, sitk.ReadImage(str(nifti)))
