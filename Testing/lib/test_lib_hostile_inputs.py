"""Hostile inputs to the headless batch script and the Slicer logic: nothing lost, nothing silently wrong.

As in Testing/core/test_hostile_inputs.py, each refusal is checked for its exit code, its one
``error:`` line naming the file and the problem, no output or partial file, and inputs unchanged.
"""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("slicer")
import SimpleITK as sitk
from CoNeSSynthesisLib import testing, volumes

from cones.sequences import Sequence

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "CoNeSSynthesis" / "Resources" / "batch_synthesize.py"
BUNDLED_MODEL = ROOT / "Resources" / "Models" / "cones-lite-t1ce.pt"
SOURCES = (Sequence.T1, Sequence.T2, Sequence.FLAIR)


def writeCase(folder: Path, shape: tuple[int, int, int] = testing.CASE_SHAPE) -> dict[Sequence, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for sequence, image in testing.syntheticCaseImages(shape).items():
        files[sequence] = folder / f"CASE_{sequence.value}.nii.gz"
        sitk.WriteImage(image, str(files[sequence]))
    return files


@pytest.fixture
def case(tmp_path: Path) -> dict[Sequence, Path]:
    return writeCase(tmp_path / "in")


def arguments(model: Path, pairs: list[str], output: Path | str, *extra: str) -> list[str]:
    return ["--model", str(model), "--input", *pairs, "--output", str(output), "--device", "cpu", *extra]


def pairs(case: dict[Sequence, Path], **replaced: Path) -> list[str]:
    return [f"{sequence.value}={replaced.get(sequence.value, case[sequence])}" for sequence in SOURCES]


@pytest.fixture
def refused(batch, capsys: pytest.CaptureFixture, snapshot):
    """``refused(argv, folder, *expected)``: the batch script's ``main`` refuses with exit code 2 and one
    ``error:`` line holding every ``expected`` text, and ``folder`` is left as it was."""

    def run(argv: list[str], folder: Path, *expected: str) -> None:
        before = snapshot(folder)
        assert batch.main(argv) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), lines
        for text in expected:
            assert text in lines[0]
        assert snapshot(folder) == before

    return run


def test_batch_refuses_an_output_that_is_an_input_even_with_overwrite(
    case, tinyModel: Path, tmp_path: Path, refused
) -> None:
    link = tmp_path / "link.nii.gz"
    os.symlink(case[Sequence.FLAIR], link)
    for output, name in ((case[Sequence.T1], "T1"), (link, "FLAIR")):
        refused(arguments(tinyModel, pairs(case), output, "--overwrite"), tmp_path, f"is the {name} input")
    t2Link = tmp_path / "labels.seg.nrrd"
    os.symlink(case[Sequence.T2], t2Link)
    segmentation = ["--segment", str(tinyModel), "--segmentation-output", str(t2Link), "--overwrite"]
    argv = arguments(tinyModel, pairs(case), tmp_path / "o.nrrd", *segmentation)
    refused(argv, tmp_path, str(t2Link), "is the T2 input")


def test_batch_refuses_a_sequence_given_twice(case, tinyModel: Path, tmp_path: Path, refused) -> None:
    given = [*pairs(case), f"t2f={case[Sequence.T1]}"]
    refused(arguments(tinyModel, given, tmp_path / "o.nrrd"), tmp_path, "given twice", given[-1])


def _truncated(path: Path) -> Path:
    broken = path.with_name("broken.nii.gz")
    broken.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return broken


def _truncatedUncompressed(path: Path) -> Path:
    plain = path.with_name("plain.nii")
    data = gzip.decompress(path.read_bytes())
    plain.write_bytes(data[: len(data) * 2 // 3])
    return plain


def _withNan(path: Path) -> Path:
    image = sitk.ReadImage(str(path))
    voxels = sitk.GetArrayFromImage(image)
    voxels[tuple(size // 2 for size in voxels.shape)] = np.nan
    broken = sitk.GetImageFromArray(voxels)
    broken.CopyInformation(image)
    sitk.WriteImage(broken, str(path.with_name("nan.nii.gz")))
    return path.with_name("nan.nii.gz")


@pytest.mark.parametrize(
    ("make", "problem"),
    [(_truncated, "truncated or corrupt"), (_truncatedUncompressed, "truncated or corrupt"), (_withNan, "NaN")],
)
def test_batch_refuses_a_broken_volume_naming_it(
    case, tinyModel: Path, tmp_path: Path, make, problem: str, refused
) -> None:
    broken = make(case[Sequence.T2])
    argv = arguments(tinyModel, pairs(case, t2=broken), tmp_path / "o.nrrd")
    refused(argv, tmp_path, str(broken), problem)


def test_batch_refuses_unwritable_outputs_before_any_work(case, tinyModel: Path, tmp_path: Path, refused) -> None:
    (tmp_path / "folder.nrrd").mkdir()
    (tmp_path / "notes.txt").write_text("a regular file")
    for output, problem in (
        (tmp_path / "folder.nrrd", "is a folder"),
        (tmp_path / "o.xyz", "must end with one of"),
        (tmp_path / "notes.txt" / "o.nrrd", "is a file, not a folder"),
    ):
        refused(arguments(tinyModel, pairs(case), output, "--overwrite"), tmp_path, problem)


def test_batch_keeps_a_file_that_appeared_while_it_ran(
    batch, case, tinyModel: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch
) -> None:
    output = tmp_path / "o.nrrd"
    run = batch.SynthesisJob.run

    def concurrentWriter(job, *args, **kwargs):
        result = run(job, *args, **kwargs)
        output.write_bytes(b"written by another run")
        return result

    monkeypatch.setattr(batch.SynthesisJob, "run", concurrentWriter)
    assert batch.main(arguments(tinyModel, pairs(case), output)) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "appeared while this command ran); pass --overwrite" in line and str(output) in line
    assert output.read_bytes() == b"written by another run"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["in", "o.nrrd"]


def test_batch_output_mode_follows_the_umask(batch, case, tinyModel: Path, tmp_path: Path) -> None:
    previous = os.umask(0o027)
    try:
        assert batch.main(arguments(tinyModel, pairs(case), tmp_path / "o.nrrd")) == 0
    finally:
        os.umask(previous)
    assert (tmp_path / "o.nrrd").stat().st_mode & 0o777 == 0o640


@pytest.mark.slow
def test_batch_interrupted_stops_cleanly_and_leaves_nothing(tmp_path: Path, snapshot) -> None:
    """Ctrl-C while the network runs: exit 130, one line, no traceback, no copies of the scans left."""
    case = writeCase(tmp_path / "in", shape=(120, 160, 160))
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    output = tmp_path / "o.nrrd"
    before = snapshot(tmp_path / "in")
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), *arguments(BUNDLED_MODEL, pairs(case), output)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": str(scratch)},
        # As in a terminal: a shell starts background jobs with SIGINT ignored, and Python keeps it so.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    for line in process.stdout:
        if line.startswith("synthesized "):
            break
    assert any(scratch.iterdir()), "the job's work folder exists while it runs"
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "written to" not in stdout, "the signal came after the synthesis had finished; use a larger case"
    assert stderr.strip().splitlines() == ["error: interrupted; nothing was written"]
    assert list(scratch.iterdir()) == [], "no copies of the scans are left in the temporary folder"
    assert not output.exists() and sorted(path.name for path in tmp_path.iterdir()) == ["in", "tmp"]
    assert snapshot(tmp_path / "in") == before


def test_a_replaced_volume_is_unlinked_from_the_file_it_was_loaded_from(scene, case, tmp_path: Path) -> None:
    """Saving the scene must not write synthesized voxels into the acquired scan's file."""
    storage = scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    storage.SetFileName(str(case[Sequence.T1]))
    loaded = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "earlier T1ce")
    assert storage.ReadData(loaded)
    loaded.SetAndObserveStorageNodeID(storage.GetID())
    reference = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "reference")
    volumes.updateVolumeFromImage(reference, sitk.ReadImage(str(case[Sequence.T2])))

    output = volumes.writeSynthesizedVolume(
        scene, sitk.ReadImage(str(case[Sequence.T1CE])), reference, Sequence.T1CE, loaded
    )
    assert output is loaded and output.GetStorageNode() is not storage
    assert output.GetStorageNode().IsA("vtkMRMLNRRDStorageNode") and not output.GetStorageNode().GetFileName()
    assert scene.GetNodeByID(storage.GetID()) is None, "the orphaned storage node is removed"


def test_checkOutputVolume_compares_nodes_by_identity_in_the_scene(scene) -> None:
    sources = testing.addSyntheticCase(scene, "CASE")
    sameNode = scene.GetNodeByID(sources[Sequence.FLAIR].GetID())
    with pytest.raises(ValueError, match="is the FLAIR source"):
        volumes.checkOutputVolume(sameNode, {sequence: sources[sequence] for sequence in SOURCES})
