"""Every synthesized file says it is synthetic: header marking and sidecar, for each file format, and their refusals."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import nibabel as nib
import pytest
import SimpleITK as sitk
from synthetic_cases import OBLIQUE_LEFT_HANDED, write_case
from tiny_models import write_tiny_model

from cones.cli import main
from cones.marking import SYNTHETIC_KEY, sidecar_path, synthetic_marking
from cones.sequences import Sequence

SOURCES = ("t1", "t2", "flair")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("model") / "tiny.pt")


@pytest.fixture
def case(tmp_path: Path) -> Path:
    return write_case(tmp_path, "P", spacing=(0.9, 0.9, 3.0), direction=OBLIQUE_LEFT_HANDED, origin=(4, 5, 6))


def nifti_inputs(case: Path, names: tuple[str, ...] = SOURCES) -> list[str]:
    return [f"{name}={case / f'P_{name}.nii.gz'}" for name in names]


def synthesize(model: Path, inputs: list[str], output: Path, *extra: str) -> int:
    return main(
        ["synthesize", "--model", str(model), "--input", *inputs, "--output", str(output), "--device", "cpu", *extra]
    )


def test_synthetic_marking_fits_the_nifti_header_and_names_the_model() -> None:
    digest = "ab" * 32
    text = synthetic_marking(Sequence.T1CE, digest)
    assert text == "SYNTHETIC T1ce - CoNeS abababababab"
    assert len(text.encode()) <= 80
    with pytest.raises(ValueError, match="model_sha256"):
        synthetic_marking(Sequence.T1CE, "not-a-digest")


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".mha"])
def test_synthesize_marks_every_file_format_and_writes_the_sidecar(
    tiny_model: Path, case: Path, tmp_path: Path, suffix: str
) -> None:
    output = tmp_path / f"t1ce{suffix}"
    assert synthesize(tiny_model, nifti_inputs(case), output) == 0
    expected = synthetic_marking(Sequence.T1CE, sha256(tiny_model))
    if suffix.startswith(".nii"):
        assert nib.load(output).header["descrip"].item().decode() == expected
    else:
        assert sitk.ReadImage(str(output)).GetMetaData(SYNTHETIC_KEY) == expected
    sidecar = json.loads(sidecar_path(output).read_text())
    assert sidecar["synthetic"] is True and sidecar["marking"] == expected and sidecar["target"] == "t1ce"
    assert sidecar["model"]["sha256"] == sha256(tiny_model)
    assert sidecar["model"]["card"]["sources"] == list(SOURCES)
    for name in SOURCES:
        assert sidecar["inputs"][name] == {
            "path": str((case / f"P_{name}.nii.gz").resolve()),
            "sha256": sha256(case / f"P_{name}.nii.gz"),
        }
    assert sidecar["options"]["device"] == "cpu" and sidecar["options"]["output_format"] == "file"
    assert sidecar["software"]["name"] == "cones" and sidecar["created"]


def test_prepared_sources_are_not_marked(tiny_model: Path, tmp_path: Path) -> None:
    """Only synthesis results are marked: write_image alone (registered sources, masks) writes no marking."""
    from cones.data import read_image, write_image

    case = write_case(tmp_path, "P")
    copy = write_image(read_image(case / "P_t1.nii.gz"), tmp_path / "t1_copy.nrrd")
    assert not sitk.ReadImage(str(copy)).HasMetaDataKey(SYNTHETIC_KEY)
    assert not sidecar_path(copy).exists()


def test_an_existing_sidecar_is_refused_before_any_work(
    tiny_model: Path, case: Path, tmp_path: Path, snapshot, capsys: pytest.CaptureFixture
) -> None:
    output = tmp_path / "out" / "t1ce.nii.gz"
    sidecar_path(output).parent.mkdir()
    sidecar_path(output).write_text("{}")
    before = snapshot(tmp_path)
    assert synthesize(tiny_model, nifti_inputs(case), output) == 2
    error = capsys.readouterr().err
    assert "t1ce.nii.gz.json" in error and "--overwrite" in error
    assert snapshot(tmp_path) == before
    assert synthesize(tiny_model, nifti_inputs(case), output, "--overwrite") == 0
    assert json.loads(sidecar_path(output).read_text())["synthetic"] is True


def test_an_input_named_like_the_sidecar_is_never_replaced(
    tiny_model: Path, case: Path, tmp_path: Path, snapshot, capsys: pytest.CaptureFixture
) -> None:
    output = case / "t1ce.nii.gz"
    (case / "t1ce.nii.gz.json").write_bytes((case / "P_flair.nii.gz").read_bytes())
    inputs = [*nifti_inputs(case, ("t1", "t2")), f"flair={case / 't1ce.nii.gz.json'}"]
    before = snapshot(tmp_path)
    assert synthesize(tiny_model, inputs, output, "--overwrite") == 2
    assert "is the FLAIR input" in capsys.readouterr().err
    assert snapshot(tmp_path) == before


def test_write_sidecar_adds_sections_and_refuses_a_clash(tiny_model: Path, case: Path, tmp_path: Path) -> None:
    from cones.checkpoint import read_model_card
    from cones.marking import Provenance, file_sha256, write_sidecar

    inputs = {Sequence(name): case / f"P_{name}.nii.gz" for name in SOURCES}
    provenance = Provenance(
        Sequence.T1CE, tiny_model, file_sha256(tiny_model), read_model_card(tiny_model), inputs, {}, {}, Sequence.T1
    )
    written = write_sidecar(tmp_path / "x.nii.gz", provenance, overwrite=False, sections={"input_checks": {"ok": 1}})
    assert json.loads(written.read_text())["input_checks"] == {"ok": 1}
    with pytest.raises(ValueError, match="model"):
        write_sidecar(tmp_path / "y.nii.gz", provenance, overwrite=False, sections={"model": {}})
    assert not (tmp_path / "y.nii.gz.json").exists()
