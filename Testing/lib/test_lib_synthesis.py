"""Synthesis from MRML volumes end to end: request checks, the ``cones`` process, and the output node."""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("slicer")
import slicer
import vtk
from CoNeSCommon import location
from CoNeSCommon.jobs import Device, JobCancelled, JobStatus, startPlainProcess
from CoNeSSynthesisLib import testing
from CoNeSSynthesisLib.synthesis import SynthesisJob, prepareSynthesis, readModelCard

from cones.sequences import Sequence

SOURCES = (Sequence.T1, Sequence.T2, Sequence.FLAIR)


def ijkToRas(node) -> np.ndarray:
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    return slicer.util.arrayFromVTKMatrix(matrix)


def sourceVolumes(case) -> dict[str, object]:
    return {sequence.value: case[sequence] for sequence in SOURCES}


def snapshot(nodes) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(slicer.util.arrayFromVolume(node).copy(), ijkToRas(node)) for node in nodes]


def workFolder(tmp_path: Path) -> Path:
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


@pytest.fixture(scope="module")
def synthesized(tinyModel: Path, tmp_path_factory):
    """One synthesis of a generated case: the scene before and after, the job and what it reported."""
    scene = slicer.vtkMRMLScene()
    case = testing.addSyntheticCase(scene, "CASE-001")
    before = snapshot(case.values())
    nodesBefore = scene.GetNumberOfNodes()
    progress, done = [], []
    work = workFolder(tmp_path_factory.mktemp("synthesis"))
    request = prepareSynthesis(tinyModel, sourceVolumes(case), device="cpu")
    job = SynthesisJob(scene, request, work, sys.executable, onProgress=progress.append, onDone=done.append)
    output = job.run()
    return {
        "scene": scene,
        "case": case,
        "before": before,
        "nodesBefore": nodesBefore,
        "job": job,
        "output": output,
        "progress": progress,
        "done": done,
        "work": work,
    }


def test_synthesis_adds_a_named_volume_on_the_reference_grid(synthesized) -> None:
    job, output, case = synthesized["job"], synthesized["output"], synthesized["case"]
    job.raiseForStatus()
    assert job.status is JobStatus.SUCCEEDED and synthesized["done"] == [job]
    assert output is job.outputNode and output.GetName() == "CASE-001 T1ce (synthesized)"
    assert output.GetScene() is synthesized["scene"]
    np.testing.assert_array_equal(ijkToRas(output), ijkToRas(case[Sequence.T1]))
    values = slicer.util.arrayFromVolume(output)
    assert values.shape == slicer.util.arrayFromVolume(case[Sequence.T1]).shape
    foreground = slicer.util.arrayFromVolume(case[Sequence.T1]) > 0
    assert np.all(values[~foreground] == 0) and values[foreground].std() > 0


def test_synthesis_leaves_the_sources_untouched(synthesized) -> None:
    after = snapshot(synthesized["case"].values())
    for (arrayBefore, matrixBefore), (arrayAfter, matrixAfter) in zip(synthesized["before"], after, strict=True):
        np.testing.assert_array_equal(arrayAfter, arrayBefore)
        np.testing.assert_array_equal(matrixAfter, matrixBefore)


def test_synthesis_reports_progress_to_the_end_and_removes_its_files(synthesized) -> None:
    progress = synthesized["progress"]
    assert progress and progress[-1].done == progress[-1].total > 0
    assert [p.done for p in progress] == sorted(p.done for p in progress)
    assert not synthesized["work"].exists()


def test_the_job_reads_back_the_input_checks_of_the_process(synthesized) -> None:
    report = synthesized["job"].inputChecks
    assert report is not None and {"label-map", "identical-sources", "registration"} <= set(report.checked)
    assert report.skipped["sequence-contrast"] == "the model file records no training statistics"


def test_sources_on_another_grid_are_refused_naming_the_volumes(scene, case, tinyModel: Path) -> None:
    matrix = testing.OBLIQUE_LEFT_HANDED_IJK_TO_RAS.copy()
    matrix[:3, :3] *= 1.5
    case[Sequence.FLAIR].SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(matrix))
    with pytest.raises(ValueError, match=r"'CASE-001_flair' \(FLAIR\) is not on the grid of 'CASE-001_t1' \(T1\)"):
        prepareSynthesis(tinyModel, sourceVolumes(case))


def addVolume(scene, name: str, value: float):
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    slicer.util.updateVolumeFromArray(node, np.full((2, 2, 2), value, np.float32))
    return node


def test_resampled_sources_are_synthesized_into_the_chosen_output_only(
    scene, case, tinyModel: Path, tmp_path: Path
) -> None:
    flair = case[Sequence.FLAIR]
    coarse = slicer.util.arrayFromVolume(flair)[:, ::2, ::2].copy()
    matrix = testing.OBLIQUE_LEFT_HANDED_IJK_TO_RAS.copy()
    matrix[:3, :2] *= 2.0
    slicer.util.updateVolumeFromArray(flair, coarse)
    flair.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(matrix))
    chosen = addVolume(scene, "chosen output", 0.0)
    namesake = addVolume(scene, "CASE-001 T1ce (synthesized)", 1.0)
    slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)  # Slicer's scenes always have one
    nodes = scene.GetNumberOfNodes()
    request = prepareSynthesis(tinyModel, sourceVolumes(case), chosen, Device.CPU, allowResampling=True)
    job = SynthesisJob(scene, request, workFolder(tmp_path), sys.executable)
    output = job.run()
    job.raiseForStatus()
    assert output is chosen and chosen.GetName() == "chosen output"
    assert scene.GetNumberOfNodes() == nodes + 2, "no volume is added, only the chosen one's display and storage"
    np.testing.assert_array_equal(ijkToRas(chosen), ijkToRas(case[Sequence.T1]))
    assert slicer.util.arrayFromVolume(chosen).shape == slicer.util.arrayFromVolume(case[Sequence.T1]).shape
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(namesake), np.ones((2, 2, 2)))
    assert slicer.util.arrayFromVolume(flair).shape == coarse.shape, "the resampled source itself is untouched"


def test_cancel_leaves_the_scene_unchanged_and_no_files(scene, case, tinyModel: Path, tmp_path: Path) -> None:
    chosen = addVolume(scene, "chosen output", 5.0)
    nodes = scene.GetNumberOfNodes()
    before = snapshot([*case.values(), chosen])
    work = workFolder(tmp_path)
    jobs: list[SynthesisJob] = []
    request = prepareSynthesis(tinyModel, sourceVolumes(case), outputNode=chosen, device="cpu")
    job = SynthesisJob(scene, request, work, sys.executable, onProgress=lambda progress: jobs[0].cancel())
    jobs.append(job)
    assert job.run() is None
    assert job.status is JobStatus.CANCELLED
    assert scene.GetNumberOfNodes() == nodes
    for (arrayBefore, matrixBefore), (arrayAfter, matrixAfter) in zip(
        before, snapshot([*case.values(), chosen]), strict=True
    ):
        np.testing.assert_array_equal(arrayAfter, arrayBefore)
        np.testing.assert_array_equal(matrixAfter, matrixBefore)
    assert not work.exists()
    with pytest.raises(JobCancelled):
        job.raiseForStatus()


def test_discard_at_application_close_deletes_the_copies_of_the_scans_at_once(
    scene, case, tinyModel: Path, tmp_path: Path
) -> None:
    # Slicer delivers a job's end through its event loop, which no longer runs once the application closes.
    work = workFolder(tmp_path)
    nodes = scene.GetNumberOfNodes()
    job = SynthesisJob(scene, prepareSynthesis(tinyModel, sourceVolumes(case), device="cpu"), work, sys.executable)
    assert sorted(path.name for path in work.iterdir()) == ["flair.nrrd", "t1.nrrd", "t2.nrrd"]
    job.start(lambda args, environment, onLine, onExit: startPlainProcess(args, environment))
    job.discard()
    assert not work.exists()
    assert job.status is JobStatus.CANCELLED and job.process.process.poll() is not None
    assert scene.GetNumberOfNodes() == nodes


def test_input_the_command_refuses_ends_the_job_with_its_message(scene, case, tinyModel: Path, tmp_path: Path) -> None:
    slicer.util.updateVolumeFromArray(case[Sequence.T2], np.full((10, 36, 32), 7.0, np.float32))
    nodes = scene.GetNumberOfNodes()
    request = prepareSynthesis(tinyModel, sourceVolumes(case), device="cpu")
    job = SynthesisJob(scene, request, workFolder(tmp_path), sys.executable)
    assert job.run() is None
    assert job.status is JobStatus.FAILED and "T2" in job.errorMessage
    assert scene.GetNumberOfNodes() == nodes
    with pytest.raises(ValueError, match="T2"):
        job.raiseForStatus()


def test_a_failure_while_adding_the_results_takes_back_every_node_added(
    scene, case, tinyModel: Path, tinySegmentationModel: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from CoNeSSynthesisLib import trust

    def failingSummary(*arguments):
        raise RuntimeError("cannot summarize")

    # the last step of adding the results: the segmentation, the output and the map are in the scene by then
    monkeypatch.setattr(trust, "summarizeUncertainty", failingSummary)
    slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)  # as in Slicer, where it always exists
    nodes = scene.GetNumberOfNodes()
    request = prepareSynthesis(
        tinyModel, sourceVolumes(case), device="cpu", segmentationModelPath=tinySegmentationModel, uncertaintyMap=True
    )
    job = SynthesisJob(scene, request, workFolder(tmp_path), sys.executable)
    assert job.run() is None
    assert job.status is JobStatus.FAILED and job.errorMessage == "cannot summarize"
    assert (job.segmentationNode, job.uncertaintyNode, job.mapNodes) == (None, None, {})
    assert scene.GetNumberOfNodes() == nodes, [
        scene.GetNthNode(index).GetClassName() for index in range(nodes, scene.GetNumberOfNodes())
    ]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_chosen_precision_reaches_the_process(
    scene, case, tinyModel: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, precision: str
) -> None:
    caplog.set_level(logging.INFO)
    request = prepareSynthesis(tinyModel, sourceVolumes(case), device="cpu", precision=precision)
    job = SynthesisJob(scene, request, workFolder(tmp_path), sys.executable)
    assert job.run() is not None
    # the number format is the one asked for; the layout is whichever this process timed faster
    assert re.search(rf"on cpu \({precision}(\+channels_last)?\)", caplog.text), caplog.text


def test_an_unknown_precision_is_refused(case, tinyModel: Path) -> None:
    with pytest.raises(ValueError, match="unknown precision 'fp16'; use auto, fp32, bf16"):
        prepareSynthesis(tinyModel, sourceVolumes(case), precision="fp16")


def test_the_output_may_not_be_a_source(case, tinyModel: Path) -> None:
    with pytest.raises(ValueError, match="'CASE-001_t2' is the T2 source"):
        prepareSynthesis(tinyModel, sourceVolumes(case), outputNode=case[Sequence.T2])


def test_a_missing_or_foreign_model_file_is_refused_clearly(case, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        prepareSynthesis(tmp_path / "missing.pt", sourceVolumes(case))
    foreign = tmp_path / "foreign.pt"
    foreign.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a PyTorch model file"):
        readModelCard(foreign)


def test_a_missing_bundled_model_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    missing = tmp_path / "Resources" / "Models" / location.BUNDLED_MODEL_NAME
    monkeypatch.setattr("CoNeSSynthesisLib.synthesis.bundledModelPath", lambda: missing)
    with pytest.raises(ValueError, match=r"the bundled model .* is not part of this installation; choose a model file"):
        readModelCard(missing)


def test_a_work_folder_is_removed_when_writing_the_inputs_fails(scene, case, tinyModel: Path, tmp_path: Path) -> None:
    request = prepareSynthesis(tinyModel, sourceVolumes(case))
    case[Sequence.T2].SetAndObserveImageData(None)
    work = workFolder(tmp_path)
    with pytest.raises(ValueError, match="'CASE-001_t2' has no voxels"):
        SynthesisJob(scene, request, work, sys.executable)
    assert not work.exists()


def test_prepared_raw_sources_add_the_output_the_brain_mask_and_the_registered_sources(
    scene, tinyModel: Path, tmp_path: Path
) -> None:
    """Sources on grids of their own, one of them moved: prepare registers them; without it they are refused."""
    case = testing.addSyntheticCase(scene, "RAW-001", shape=(48, 80, 72))
    flair = case[Sequence.FLAIR]
    moved = testing.OBLIQUE_LEFT_HANDED_IJK_TO_RAS.copy()
    moved[:3, 3] += (3.0, -2.0, 2.5)  # the head elsewhere in the scanner, so on a grid of its own
    flair.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(moved))
    with pytest.raises(ValueError, match="grid"):
        prepareSynthesis(tinyModel, sourceVolumes(case), device="cpu")
    with pytest.raises(ValueError, match="turn preparation on"):
        prepareSynthesis(tinyModel, sourceVolumes(case), device="cpu", addPreparedInputs=True)

    request = prepareSynthesis(tinyModel, sourceVolumes(case), device="cpu", prepare=True, addPreparedInputs=True)
    progress = []
    job = SynthesisJob(scene, request, workFolder(tmp_path), sys.executable, onProgress=progress.append)
    output = job.run()
    job.raiseForStatus()
    t1 = case[Sequence.T1]
    np.testing.assert_allclose(ijkToRas(output), ijkToRas(t1), atol=1e-5)
    assert {item.stage for item in progress} >= {"extract-brain", "register", "synthesize"}
    assert job.brainMaskNode.GetName() == "RAW-001 brain mask"
    assert job.brainMaskNode.GetSegmentation().GetSegmentIdBySegmentName("Brain") == "Brain"
    assert set(job.registeredNodes) == {Sequence.T2, Sequence.FLAIR}
    registeredFlair = job.registeredNodes[Sequence.FLAIR]
    assert registeredFlair.GetName() == "RAW-001 FLAIR (registered)"
    np.testing.assert_allclose(ijkToRas(registeredFlair), ijkToRas(t1), atol=1e-5)
    flairOnT1 = slicer.util.arrayFromVolume(registeredFlair)
    np.testing.assert_allclose(ijkToRas(flair), moved, atol=1e-5, err_msg="the source itself is untouched")
    assert flairOnT1.shape == slicer.util.arrayFromVolume(t1).shape
    assert np.corrcoef((flairOnT1 > 0).ravel(), (slicer.util.arrayFromVolume(t1) > 0).ravel())[0, 1] > 0.9


def test_needsPreparation_takes_the_self_tests_tiny_case_for_a_raw_scan(scene, case) -> None:
    # CoNeSSynthesisTest's panel test relies on this: choosing the case turns "Prepare raw scans" on, and the
    # test turns it off explicitly (its brain is far below the stripped-brain floor of looks_skull_stripped).
    from CoNeSSynthesisLib import volumes

    assert volumes.needsPreparation({sequence: case[sequence] for sequence in SOURCES})


def test_needsPreparation_tells_raw_scans_from_prepared_ones(scene) -> None:
    from CoNeSSynthesisLib import volumes

    case = testing.addSyntheticCase(scene, "BRAIN-001", shape=(48, 80, 72))
    sources = {sequence: case[sequence] for sequence in SOURCES}
    assert not volumes.needsPreparation(sources)
    noisy = slicer.util.arrayFromVolume(case[Sequence.T2])
    noisy += 5.0  # air is never exactly 0 on a raw scan
    slicer.util.arrayFromVolumeModified(case[Sequence.T2])
    assert volumes.needsPreparation(sources)
