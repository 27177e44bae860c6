"""The ``cones`` command line: the contract of train, synthesize and info, and its refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from synthetic_cases import OBLIQUE_LEFT_HANDED, case_images, train_arguments, write_case, write_dataset

from cones.checkpoint import load_training_state
from cones.cli import main


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    data = write_dataset(root / "data", cases=3)
    code = main(train_arguments(data, root / "run", iterations=2))
    assert code == 0
    return root / "run" / "last.pt"


@pytest.fixture
def case(tmp_path: Path) -> Path:
    return write_case(tmp_path, "PATIENT", spacing=(0.9, 0.9, 3.0), direction=OBLIQUE_LEFT_HANDED, origin=(4, 5, 6))


def inputs(case: Path, *names: str) -> list[str]:
    return [f"{name}={case / f'PATIENT_{name}.nii.gz'}" for name in names]


def synthesize(model: Path, arguments: list[str], output: Path, *extra: str) -> int:
    return main(
        ["synthesize", "--model", str(model), "--input", *arguments, "--output", str(output), "--device", "cpu", *extra]
    )


def test_synthesize_writes_the_target_on_the_input_grid(
    trained: Path, case: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    output = tmp_path / "t1ce.nii.gz"
    assert synthesize(trained, inputs(case, "t1", "t2", "flair"), output) == 0
    assert "CONES_PROGRESS" in capsys.readouterr().out
    written, reference = sitk.ReadImage(str(output)), sitk.ReadImage(str(case / "PATIENT_t1.nii.gz"))
    assert written.GetSize() == reference.GetSize()
    np.testing.assert_allclose(written.GetSpacing(), reference.GetSpacing(), atol=1e-6)
    np.testing.assert_allclose(written.GetOrigin(), reference.GetOrigin(), atol=1e-6)
    np.testing.assert_allclose(written.GetDirection(), reference.GetDirection(), atol=1e-6)
    values = sitk.GetArrayFromImage(written)
    assert values.max() > 0 and np.all(values[sitk.GetArrayFromImage(reference) == 0] == 0)


def test_synthesize_accepts_aliases_and_overwrite(trained: Path, case: Path, tmp_path: Path) -> None:
    output = tmp_path / "out.nrrd"
    arguments = [
        f"t1n={case / 'PATIENT_t1.nii.gz'}",
        f"t2w={case / 'PATIENT_t2.nii.gz'}",
        f"t2f={case / 'PATIENT_flair.nii.gz'}",
    ]
    assert synthesize(trained, arguments, output) == 0
    assert synthesize(trained, arguments, output) == 2, "an existing output is kept without --overwrite"
    assert synthesize(trained, arguments, output, "--overwrite") == 0


@pytest.mark.parametrize(
    ("prepare", "message"),
    [
        (lambda case: inputs(case, "t1", "t2"), "needs source sequence"),
        (lambda case: [*inputs(case, "t1", "t2"), f"pd={case / 'PATIENT_flair.nii.gz'}"], "unknown sequence name"),
        (lambda case: [*inputs(case, "t1", "t2"), f"flair={case / 'missing.nii.gz'}"], "does not exist"),
        (lambda case: [*inputs(case, "t1", "t2"), f"flair={_text_file(case)}"], "cannot read"),
        (lambda case: [*inputs(case, "t1", "t2"), f"flair={_shifted(case)}"], "not on the grid"),
        (lambda case: [*inputs(case, "t1", "t2"), f"flair={_modified(case, np.nan)}"], "NaN"),
        (lambda case: [*inputs(case, "t1", "t2"), f"flair={_modified(case, 5.0)}"], "constant"),
    ],
)
def test_synthesize_refuses_bad_input_and_writes_nothing(
    trained: Path, case: Path, tmp_path: Path, prepare, message: str, capsys: pytest.CaptureFixture
) -> None:
    output = tmp_path / "never.nii.gz"
    assert synthesize(trained, prepare(case), output) == 2
    assert message in capsys.readouterr().err
    assert not output.exists()


def test_synthesize_refuses_empty_foreground(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    images = case_images()
    for name in ("t1", "t2", "flair"):
        empty = sitk.Image(images[name].GetSize(), sitk.sitkFloat32)
        empty.CopyInformation(images[name])
        sitk.WriteImage(empty, str(tmp_path / f"{name}.nii.gz"))
    arguments = [f"{name}={tmp_path / f'{name}.nii.gz'}" for name in ("t1", "t2", "flair")]
    assert synthesize(trained, arguments, tmp_path / "out.nii.gz") == 2
    assert "empty foreground" in capsys.readouterr().err


def test_synthesize_refuses_a_foreign_model(case: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    foreign = tmp_path / "model.pt"
    foreign.write_text("not a model")
    assert synthesize(foreign, inputs(case, "t1", "t2", "flair"), tmp_path / "out.nii.gz") == 2
    assert "model.pt" in capsys.readouterr().err


def test_info_describes_the_model(trained: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["info", str(trained)]) == 0
    text = capsys.readouterr().out
    assert "T1ce" in text and "FLAIR" in text and "lite" in text


def test_train_refuses_unknown_sequences(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(
        [
            "train",
            "--data",
            str(tmp_path),
            "--sources",
            "t1",
            "pd",
            "--target",
            "t1ce",
            "--output",
            str(tmp_path / "run"),
        ]
    )
    assert code == 2
    assert "unknown sequence name 'pd'" in capsys.readouterr().err


def _text_file(case: Path) -> Path:
    path = case / "notes.nii.gz"
    path.write_text("not an image")
    return path


def _shifted(case: Path) -> Path:
    image = sitk.ReadImage(str(case / "PATIENT_flair.nii.gz"))
    image.SetOrigin((0.0, 0.0, 0.0))
    path = case / "shifted_flair.nii.gz"
    sitk.WriteImage(image, str(path))
    return path


def _modified(case: Path, value: float) -> Path:
    image = sitk.ReadImage(str(case / "PATIENT_flair.nii.gz"))
    array = sitk.GetArrayFromImage(image)
    if np.isnan(value):
        array[5, 20, 18] = value
    else:
        array[array > 0] = value
    modified = sitk.GetImageFromArray(array)
    modified.CopyInformation(image)
    # NRRD keeps a NaN; the NIfTI writer would turn it into 0
    path = case / f"modified_{value}_flair.nrrd"
    sitk.WriteImage(modified, str(path))
    return path


def test_sample_data_writes_brats_cases_and_keeps_existing_ones(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    arguments = ["sample-data", "--out", str(tmp_path), "--cases", "2", "--seed", "3", "--size", "48x48x32"]
    assert main([*arguments, "--spacing", "5"]) == 0
    names = sorted(path.name for path in (tmp_path / "CONES-SAMPLE-001").iterdir())
    assert names == [f"CONES-SAMPLE-001_{suffix}.nii.gz" for suffix in ("flair", "seg", "t1", "t1ce", "t2")]
    assert sitk.ReadImage(str(tmp_path / "CONES-SAMPLE-001" / names[2])).GetSize() == (48, 48, 32)
    before = (tmp_path / "CONES-SAMPLE-000" / names[2].replace("001", "000")).read_bytes()
    assert main([*arguments, "--spacing", "5", "--seed", "4"]) == 2
    assert "already exist" in capsys.readouterr().err
    assert (tmp_path / "CONES-SAMPLE-000" / names[2].replace("001", "000")).read_bytes() == before


def test_export_drops_the_training_state_and_keeps_existing_files(trained: Path, tmp_path: Path) -> None:
    exported = tmp_path / "model.pt"
    assert main(["export", str(trained), "--output", str(exported)]) == 0
    assert exported.stat().st_size < trained.stat().st_size / 2
    with pytest.raises(ValueError, match="no training state"):
        load_training_state(exported)
    assert main(["export", str(trained), "--output", str(exported)]) == 2
    assert main(["info", str(exported)]) == 0
