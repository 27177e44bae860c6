"""The headless batch script: run as users run it (a plain-Python process with slicer-core), and its
refusals through its ``main`` in this process, which skips a process start per case."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("slicer")
import SimpleITK as sitk
from CoNeSSynthesisLib import testing

from cones.sequences import Sequence

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "CoNeSSynthesis" / "Resources" / "batch_synthesize.py"


@pytest.fixture(scope="module")
def caseFiles(tmp_path_factory) -> dict[Sequence, Path]:
    """A generated case on an oblique left-handed grid, written as NIfTI as datasets ship it."""
    folder = tmp_path_factory.mktemp("case")
    files = {}
    for sequence, image in testing.syntheticCaseImages().items():
        files[sequence] = folder / f"CASE-001_{sequence.value}.nii.gz"
        sitk.WriteImage(image, str(files[sequence]))
    return files


def runBatch(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *arguments], capture_output=True, text=True, timeout=300, check=False
    )


def sourceFiles(files: dict[Sequence, Path]) -> dict[str, Path]:
    return {sequence.value: files[sequence] for sequence in (Sequence.T1, Sequence.T2, Sequence.FLAIR)}


def batchArguments(model: Path, inputs: dict[str, Path], output: Path) -> list[str]:
    return [
        "--model",
        str(model),
        "--input",
        *(f"{name}={path}" for name, path in inputs.items()),
        "--output",
        str(output),
    ]


def test_batch_writes_the_synthesized_volume_on_the_input_grid(caseFiles, tinyModel: Path, tmp_path: Path) -> None:
    output = tmp_path / "out" / "t1ce_synthesized.nrrd"
    result = runBatch(*batchArguments(tinyModel, sourceFiles(caseFiles), output), "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert f"written to {output}" in result.stdout
    written, reference = sitk.ReadImage(str(output)), sitk.ReadImage(str(caseFiles[Sequence.T1]))
    assert written.GetSize() == reference.GetSize()
    assert np.linalg.det(np.reshape(written.GetDirection(), (3, 3))) < 0, "the left-handed grid is kept"
    for name in ("GetSpacing", "GetOrigin", "GetDirection"):
        np.testing.assert_allclose(getattr(written, name)(), getattr(reference, name)(), atol=1e-5)
    values, t1 = sitk.GetArrayFromImage(written), sitk.GetArrayFromImage(reference)
    assert np.all(values[t1 == 0] == 0) and values[t1 > 0].std() > 0
    assert written.GetMetaData("CoNeS.Synthetic").startswith("SYNTHETIC T1ce - CoNeS ")
    sidecar = json.loads(output.with_name(output.name + ".json").read_text())
    assert sidecar["marking"] == written.GetMetaData("CoNeS.Synthetic")
    assert sidecar["inputs"]["t1"]["path"] == str(caseFiles[Sequence.T1].resolve())
    assert sorted(path.name for path in output.parent.iterdir()) == [output.name, f"{output.name}.json"], (
        "no temporary file is left"
    )


def without(inputs: dict[str, Path], name: str) -> dict[str, Path]:
    return {key: path for key, path in inputs.items() if key != name}


# each: (model, inputs, output) from (model, the case's sources, a scratch folder), and the expected message
REFUSALS = {
    "unknown-sequence": (
        lambda m, i, t: (m, {**without(i, "t2"), "dwi": i["t2"]}, t / "o.nrrd"),
        "sequence name 'dwi'",
    ),
    "missing-model": (lambda m, i, t: (t / "no-model.pt", i, t / "o.nrrd"), "no-model.pt' does not exist"),
    "missing-source": (lambda m, i, t: (m, without(i, "flair"), t / "o.nrrd"), "the model needs a FLAIR volume"),
    "bad-format": (lambda m, i, t: (m, i, t / "o.png"), "must end with one of .nrrd"),
}


def test_batch_refuses_a_missing_input_file_with_one_error_line_and_writes_nothing(
    caseFiles, tinyModel: Path, tmp_path: Path
) -> None:
    inputs = {**sourceFiles(caseFiles), "t2": tmp_path / "missing.nii.gz"}
    result = runBatch(*batchArguments(tinyModel, inputs, tmp_path / "out.nrrd"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: input file {str(inputs['t2'])!r} does not exist"]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("refusal", list(REFUSALS))
def test_batch_refuses_bad_input_and_writes_nothing(
    refusal: str, batch, caseFiles, tinyModel: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    makeArguments, message = REFUSALS[refusal]
    assert batch.main(batchArguments(*makeArguments(tinyModel, sourceFiles(caseFiles), tmp_path))) == 2
    lastLine = capsys.readouterr().err.strip().splitlines()[-1]
    assert lastLine.startswith("error: ") and message in lastLine
    assert list(tmp_path.iterdir()) == []


def test_batch_never_overwrites_without_overwrite(
    batch, caseFiles, tinyModel: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    output = tmp_path / "out.nrrd"
    output.write_bytes(b"keep me")
    assert batch.main(batchArguments(tinyModel, sourceFiles(caseFiles), output)) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert output.read_bytes() == b"keep me"


def test_batch_prepare_takes_sources_on_grids_of_their_own(tinyModel: Path, tmp_path: Path) -> None:
    """--prepare co-registers a source acquired elsewhere in the scanner; without it the grids are refused."""
    files = {}
    for sequence, image in testing.syntheticCaseImages((48, 80, 72)).items():
        if sequence is Sequence.FLAIR:
            image.SetOrigin(tuple(np.add(image.GetOrigin(), (3.0, -2.0, 2.5))))
        files[sequence] = tmp_path / f"RAW_{sequence.value}.nii.gz"
        sitk.WriteImage(image, str(files[sequence]))
    output = tmp_path / "out.nrrd"
    refused = runBatch(*batchArguments(tinyModel, sourceFiles(files), output), "--device", "cpu")
    assert refused.returncode == 2 and "grid" in refused.stderr
    result = runBatch(*batchArguments(tinyModel, sourceFiles(files), output), "--device", "cpu", "--prepare")
    assert result.returncode == 0, result.stderr
    assert "co-registered 2 of 2 sequences" in result.stdout
    assert sitk.ReadImage(str(output)).GetSize() == sitk.ReadImage(str(files[Sequence.T1])).GetSize()
    registrations = json.loads(output.with_name(output.name + ".json").read_text())["preparation"]["registrations"]
    assert sorted(registrations) == ["flair", "t2"]
    assert all(figures["sharpness"] >= figures["min_sharpness"] for figures in registrations.values())


def test_batch_writes_the_uncertainty_and_enhancement_maps_marked_and_lists_them(
    batch, caseFiles, tinyModel: Path, tmp_path: Path
) -> None:
    output, uncertainty, enhancement = tmp_path / "t1ce.nrrd", tmp_path / "u.nii.gz", tmp_path / "e.nrrd"
    arguments = [*batchArguments(tinyModel, sourceFiles(caseFiles), output), "--device", "cpu"]
    arguments += ["--uncertainty-output", str(uncertainty), "--enhancement-output", str(enhancement)]
    assert batch.main(arguments) == 0
    written = sitk.ReadImage(str(output))
    marking = written.GetMetaData("CoNeS.Synthetic")
    sidecar = json.loads(output.with_name(output.name + ".json").read_text())
    maps = {"uncertainty": (uncertainty, "descrip"), "virtual_enhancement": (enhancement, "CoNeS.Synthetic")}
    for section, (path, key) in maps.items():
        image = sitk.ReadImage(str(path))
        prefix = "UNCERTAINTY OF " if section == "uncertainty" else "VIRTUAL ENHANCEMENT FROM "
        assert image.GetMetaData(key) == prefix + marking, "NIfTI keeps it as descrip, NRRD as its key"
        assert image.GetSize() == written.GetSize()
        for name in ("GetSpacing", "GetOrigin", "GetDirection"):
            np.testing.assert_allclose(getattr(image, name)(), getattr(written, name)(), atol=1e-5)
        assert sidecar[section]["path"] == str(path.resolve())
        assert sidecar[section]["method"], "the process's description of the map"
    values, brain = sitk.GetArrayFromImage(sitk.ReadImage(str(uncertainty))), sitk.GetArrayFromImage(written) > 0
    assert sidecar["uncertainty"]["mean_in_brain"] == pytest.approx(values[brain].astype(np.float64).mean(), rel=1e-5)
    assert np.abs(sitk.GetArrayFromImage(sitk.ReadImage(str(enhancement)))).max() <= 1
    assert "input_checks" in sidecar
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        [output.name, f"{output.name}.json", uncertainty.name, enhancement.name]
    ), "no temporary file is left"


def test_an_interrupt_while_writing_leaves_no_map_without_its_volume(
    batch, caseFiles, tinyModel: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch
) -> None:
    def interrupted(*arguments, **options):
        raise KeyboardInterrupt

    monkeypatch.setattr(batch, "write_synthesized", interrupted)  # after the maps are written
    arguments = [*batchArguments(tinyModel, sourceFiles(caseFiles), tmp_path / "t1ce.nrrd"), "--device", "cpu"]
    arguments += ["--uncertainty-output", str(tmp_path / "u.nii.gz")]
    assert batch.main(arguments) == batch.INTERRUPTED
    assert capsys.readouterr().err.strip().splitlines()[-1] == "error: interrupted; nothing was written"
    assert list(tmp_path.iterdir()) == [], "the map was published without the volume and its sidecar"


# each: (model, extra arguments) from (the T1 -> T1ce model, a model without T1, a scratch folder, the T1 input),
# and the expected message; the scratch folder holds "u.nrrd" already
MAP_REFUSALS = {
    "existing-map": (lambda m, n, t, t1: (m, ["--uncertainty-output", str(t / "u.nrrd")]), "u.nrrd' already exists"),
    "map-is-an-input": (
        lambda m, n, t, t1: (m, ["--enhancement-output", str(t1), "--overwrite"]),
        "is the T1 input",
    ),
    "no-t1": (
        lambda m, n, t, t1: (n, ["--enhancement-output", str(t / "e.nrrd")]),
        "--enhancement-output draws synthesized T1ce minus T1; the model makes T1ce from T2, FLAIR",
    ),
}


@pytest.mark.parametrize("refusal", list(MAP_REFUSALS))
def test_batch_refuses_a_map_before_any_work_and_leaves_every_file_as_it_was(
    refusal: str, batch, caseFiles, tinyModel: Path, tmp_path: Path, snapshot, capsys: pytest.CaptureFixture
) -> None:
    makeArguments, message = MAP_REFUSALS[refusal]
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (scratch / "u.nrrd").write_bytes(b"keep me")
    withoutT1 = testing.writeTinyModel(tmp_path / "t2-flair.pt", (Sequence.T2, Sequence.FLAIR))
    model, extra = makeArguments(tinyModel, withoutT1, scratch, caseFiles[Sequence.T1])
    before = {folder: snapshot(folder) for folder in (scratch, caseFiles[Sequence.T1].parent)}
    assert batch.main([*batchArguments(model, sourceFiles(caseFiles), scratch / "out.nrrd"), *extra]) == 2
    captured = capsys.readouterr()
    lastLine = captured.err.strip().splitlines()[-1]
    assert lastLine.startswith("error: ") and message in lastLine
    assert "synthesized" not in captured.out, "refused before the synthesis process started"
    assert {folder: snapshot(folder) for folder in before} == before


MISSING_PACKAGE = """
import runpy, sys
sys.modules["nibabel"] = None  # as if the requirement were not installed: importing it raises ImportError
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_a_missing_package_ends_the_process_with_how_to_install_it(caseFiles, tinyModel: Path, tmp_path: Path) -> None:
    # Slicer --python-script keeps running after a script that raises: only an exit code ends the process.
    command = [sys.executable, "-c", MISSING_PACKAGE, str(SCRIPT)]
    command += [*batchArguments(tinyModel, sourceFiles(caseFiles), tmp_path / "o.nrrd"), "--device", "cpu"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 3, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: cannot start: ") and "nibabel" in line
    assert f"-m pip install -r {ROOT / 'CoNeSSynthesis' / 'Resources' / 'requirements.txt'}" in line
    assert list(tmp_path.iterdir()) == []


def test_an_unexpected_error_ends_the_process_with_exit_code_1(
    batch, batchScript, caseFiles, tinyModel: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch
) -> None:
    def bug(arguments):
        raise TypeError("a bug")

    monkeypatch.setattr(batch, "synthesize", bug)
    assert batchScript.run(batchArguments(tinyModel, sourceFiles(caseFiles), tmp_path / "o.nrrd")) == 1
    error = capsys.readouterr().err.strip().splitlines()
    assert error[0] == "Traceback (most recent call last):"
    assert error[-1] == "error: synthesis failed unexpectedly: TypeError: a bug"
    assert (batchScript.FAILED, batchScript.CANNOT_START) == (batch.FAILED, batch.CANNOT_START)


@pytest.mark.parametrize(
    ("version", "message"),
    [(None, "PyTorch is not installed in this Python: in Slicer, install the 'PyTorch' extension"),
     ("2.1.2", "CoNeS needs PyTorch >=2.2 but 2.1.2 is installed")],
    ids=["missing", "too-old"],
)  # fmt: skip
def test_without_a_usable_torch_the_batch_cannot_start(
    version, message, batch, caseFiles, tinyModel: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch
) -> None:
    monkeypatch.setattr(batch, "torchVersion", lambda: version)
    assert batch.main(batchArguments(tinyModel, sourceFiles(caseFiles), tmp_path / "o.nrrd")) == 3
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: {message}")
    assert list(tmp_path.iterdir()) == []


def test_a_bad_command_line_is_a_refusal_and_help_is_done(batch, capsys: pytest.CaptureFixture) -> None:
    assert batch.main(["--model"]) == 2
    assert "usage: batch_synthesize.py" in capsys.readouterr().err
    assert batch.main(["--help"]) == 0
    assert "--segmentation-output" in capsys.readouterr().out
