"""Segment after synthesis in MRML: named, coloured segments, the checks, the chained job and the batch script.

The segments are read back through Slicer's own export onto the reference volume's grid (oblique,
left-handed), so a label that lands in the wrong segment or voxel shows as a mismatch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("slicer")
import SimpleITK as sitk
import slicer
import vtk
from CoNeSCommon.jobs import JobStatus
from CoNeSSynthesisLib import segmentation, testing, volumes
from CoNeSSynthesisLib.synthesis import SynthesisJob, prepareSynthesis

from cones.segmentation import load_segmentation_model
from cones.segmentation.labels import BRATS_2018_LABELS, BRATS_2023_LABELS
from cones.sequences import Sequence

ROOT = Path(__file__).resolve().parents[2]
BATCH_SCRIPT = ROOT / "CoNeSSynthesis" / "Resources" / "batch_synthesize.py"
SOURCES = (Sequence.T1, Sequence.T2, Sequence.FLAIR)
TISSUES = ("NCR", "ED", "ET")


def tumourLabels(shape: tuple[int, ...], enhancing: int) -> np.ndarray:
    """Oedema around a necrotic core with an enhancing spot, and a separate necrosis blob."""
    labels = np.zeros(shape, dtype=np.uint8)
    labels[2:6, 5:15, 5:12] = 2
    labels[3:5, 8:12, 7:10] = enhancing
    labels[6:8, 20:25, 20:25] = 1
    return labels


def labelImageOn(referenceNode, labels: np.ndarray) -> sitk.Image:
    image = sitk.GetImageFromArray(labels)
    image.CopyInformation(volumes.imageFromVolume(referenceNode))
    return image


def segmentMask(scene, segmentationNode, segmentId: str, referenceNode) -> np.ndarray:
    """A segment as a boolean array on the reference volume's grid, through Slicer's export."""
    ids = vtk.vtkStringArray()
    ids.InsertNextValue(segmentId)
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode")
    try:
        assert slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(
            segmentationNode, ids, labelmap, referenceNode
        )
        return slicer.util.arrayFromVolume(labelmap) > 0
    finally:
        scene.RemoveNode(labelmap)


def segmentNames(segmentationNode) -> list[str]:
    segments = segmentationNode.GetSegmentation()
    return [segments.GetNthSegment(index).GetName() for index in range(segments.GetNumberOfSegments())]


@pytest.mark.parametrize("labelSet", [BRATS_2018_LABELS, BRATS_2023_LABELS], ids=["ET=4", "ET=3"])
def test_label_map_becomes_named_coloured_segments_on_the_reference(scene, case, labelSet) -> None:
    reference = case[Sequence.T1]
    labels = tumourLabels(slicer.util.arrayFromVolume(reference).shape, labelSet.value_of("ET"))
    node = segmentation.addTumourSegmentation(scene, labelImageOn(reference, labels), labelSet, reference)
    assert node.IsA("vtkMRMLSegmentationNode") and node.GetScene() is scene
    assert node.GetName() == "CASE-001 tumour segmentation"
    assert segmentNames(node) == list(TISSUES)
    role = slicer.vtkMRMLSegmentationNode.GetReferenceImageGeometryReferenceRole()
    assert node.GetNodeReferenceID(role) == reference.GetID()
    assert node.GetDisplayNode() is not None
    for tissue in TISSUES:
        segment = node.GetSegmentation().GetSegment(tissue)
        assert segment.GetColor() == pytest.approx(segmentation.SEGMENT_COLORS[tissue])
        expected = labels == labelSet.value_of(tissue)
        assert expected.any()
        np.testing.assert_array_equal(segmentMask(scene, node, tissue, reference), expected)


def test_absent_classes_give_empty_segments_and_names_stay_unique(scene, case) -> None:
    reference = case[Sequence.T1]
    labels = tumourLabels(slicer.util.arrayFromVolume(reference).shape, enhancing=4)
    labels[labels == 1] = 0
    image = labelImageOn(reference, labels)
    first = segmentation.addTumourSegmentation(scene, image, BRATS_2018_LABELS, reference)
    second = segmentation.addTumourSegmentation(scene, image, BRATS_2018_LABELS, reference, name=first.GetName())
    assert segmentNames(second) == list(TISSUES)
    assert not segmentMask(scene, second, "NCR", reference).any()
    assert second.GetName() != first.GetName()


def addRegistration(scene, case):
    """Put every volume of ``case`` under one shared, non-identity linear transform (rotation and shift)."""
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "registration")
    matrix = vtk.vtkTransform()
    matrix.Translate(12.0, -7.0, 5.0)
    matrix.RotateZ(20.0)
    transform.SetMatrixTransformToParent(matrix.GetMatrix())
    for node in case.values():
        node.SetAndObserveTransformNodeID(transform.GetID())
    return transform


def test_the_tumour_segmentation_lands_on_the_reference_under_a_shared_transform(scene, case) -> None:
    # Slicer's import moves a label map by the transform between the label map and the segmentation:
    # a temporary label map outside the reference's transform would be displaced by the transform's inverse.
    reference = case[Sequence.T1]
    transform = addRegistration(scene, case)
    labels = tumourLabels(slicer.util.arrayFromVolume(reference).shape, enhancing=4)
    node = segmentation.addTumourSegmentation(scene, labelImageOn(reference, labels), BRATS_2018_LABELS, reference)
    assert node.GetTransformNodeID() == transform.GetID()
    for tissue in TISSUES:
        np.testing.assert_array_equal(
            segmentMask(scene, node, tissue, reference), labels == BRATS_2018_LABELS.value_of(tissue)
        )


def test_the_brain_mask_lands_on_the_reference_under_a_shared_transform(scene, case) -> None:
    reference = case[Sequence.T1]
    transform = addRegistration(scene, case)
    mask = np.zeros(slicer.util.arrayFromVolume(reference).shape, dtype=np.uint8)
    mask[1:7, 4:20, 6:18] = 1
    node = segmentation.addBrainMaskSegmentation(scene, labelImageOn(reference, mask), reference)
    assert node.GetTransformNodeID() == transform.GetID() and segmentNames(node) == ["Brain"]
    np.testing.assert_array_equal(segmentMask(scene, node, "Brain", reference), mask > 0)


def test_a_label_map_off_the_reference_grid_or_with_unknown_values_is_refused(scene, case) -> None:
    reference = case[Sequence.T1]
    shape = slicer.util.arrayFromVolume(reference).shape
    nodes = scene.GetNumberOfNodes()
    shifted = labelImageOn(reference, tumourLabels(shape, enhancing=4))
    shifted.SetOrigin(tuple(value + 3.0 for value in shifted.GetOrigin()))
    with pytest.raises(ValueError, match="not on the grid of 'CASE-001_t1': origin"):
        segmentation.addTumourSegmentation(scene, shifted, BRATS_2018_LABELS, reference)
    with pytest.raises(ValueError, match=r"values \[3\] that are none of the model's labels"):
        segmentation.addTumourSegmentation(
            scene, labelImageOn(reference, tumourLabels(shape, enhancing=3)), BRATS_2018_LABELS, reference
        )
    assert scene.GetNumberOfNodes() == nodes


def workFolder(tmp_path: Path) -> Path:
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


def test_synthesis_then_segmentation_adds_both_nodes(
    scene, case, tinyModel: Path, tinySegmentationModel: Path, tmp_path: Path
) -> None:
    sources = {sequence.value: case[sequence] for sequence in SOURCES}
    request = prepareSynthesis(tinyModel, sources, device="cpu", segmentationModelPath=tinySegmentationModel)
    work = workFolder(tmp_path)
    job = SynthesisJob(scene, request, work, sys.executable)
    job.run()
    job.raiseForStatus()
    assert job.status is JobStatus.SUCCEEDED and not work.exists()
    reference = case[Sequence.T1]
    node = job.segmentationNode
    assert node.GetName() == "CASE-001 tumour segmentation" and segmentNames(node) == list(TISSUES)
    marking = node.GetAttribute("CoNeS.Synthetic")
    assert marking == "SEGMENTATION FROM " + job.outputNode.GetAttribute("CoNeS.Synthetic"), "it used the T1ce"
    assert job.segmentationNote == (
        "it was computed with synthesized T1ce and is marked as such (header and sidecar); "
        f"{tinySegmentationModel.name} records no Dice measured with T1ce synthesized"
    )
    segments = node.GetSegmentation()
    for tissue in TISSUES:
        tag = vtk.reference("")
        assert segments.GetSegment(tissue).GetTag("CoNeS.Synthetic", tag) and tag.get() == marking
    role = slicer.vtkMRMLSegmentationNode.GetReferenceImageGeometryReferenceRole()
    assert node.GetNodeReferenceID(role) == reference.GetID()
    # what the core makes of the sources and the synthesized T1ce now in the scene
    images = {sequence: volumes.imageFromVolume(case[sequence]) for sequence in SOURCES}
    images[Sequence.T1CE] = volumes.imageFromVolume(job.outputNode)
    model = load_segmentation_model(tinySegmentationModel)
    expected = sitk.GetArrayFromImage(model.segment(images))
    assert len(np.unique(expected)) > 1, "a constant map would not show a misplaced segment"
    for tissue in TISSUES:
        np.testing.assert_array_equal(
            segmentMask(scene, node, tissue, reference), expected == model.labels.value_of(tissue)
        )


def test_segmentation_requests_are_refused_before_any_process(
    scene, case, tinySegmentationModel: Path, tmp_path: Path
) -> None:
    twoSources = testing.writeTinyModel(tmp_path / "t1-t2.pt", sources=(Sequence.T1, Sequence.T2))
    sources = {sequence.value: case[sequence] for sequence in SOURCES}
    nodes = scene.GetNumberOfNodes()
    with pytest.raises(ValueError, match=r"FLAIR is neither given \(given: T1, T2\) nor synthesized"):
        prepareSynthesis(twoSources, sources, segmentationModelPath=tinySegmentationModel)
    with pytest.raises(ValueError, match="choose a segmentation model"):
        prepareSynthesis(twoSources, sources, segmentationModelPath=Path())
    with pytest.raises(ValueError, match="does not exist"):
        prepareSynthesis(twoSources, sources, segmentationModelPath=tmp_path / "absent.pt")
    assert scene.GetNumberOfNodes() == nodes


def test_batch_script_writes_a_segmentation_slicer_opens_with_its_segments(
    tinyModel: Path, tinySegmentationModel: Path, tmp_path: Path
) -> None:
    inputs = []
    for sequence, image in testing.syntheticCaseImages().items():
        if sequence in SOURCES:
            path = tmp_path / f"CASE-001_{sequence.value}.nii.gz"
            sitk.WriteImage(image, str(path))
            inputs.append(f"{sequence.value}={path}")
    output, tumour = tmp_path / "t1ce.nrrd", tmp_path / "tumour.seg.nrrd"
    command = [sys.executable, str(BATCH_SCRIPT), "--model", str(tinyModel), "--input", *inputs]
    command += ["--output", str(output), "--device", "cpu", "--segment", str(tinySegmentationModel)]
    refused = subprocess.run(
        [*command, "--segmentation-output", str(tmp_path / "tumour.nii.gz")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode == 2 and "must end with one of .seg.nrrd" in refused.stderr
    assert not output.exists()
    result = subprocess.run(
        [*command, "--segmentation-output", str(tumour)], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "it was computed with synthesized T1ce and is marked as such (header and sidecar)" in result.stdout
    scene = slicer.vtkMRMLScene()
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    storage = scene.AddNewNodeByClass("vtkMRMLSegmentationStorageNode")
    storage.SetFileName(str(tumour))
    assert storage.ReadData(node)
    assert segmentNames(node) == list(TISSUES)
    np.testing.assert_allclose(
        [node.GetSegmentation().GetSegment(tissue).GetColor() for tissue in TISSUES],
        [segmentation.SEGMENT_COLORS[tissue] for tissue in TISSUES],
    )
    sidecar = json.loads((tmp_path / "tumour.seg.nrrd.json").read_text())
    assert sidecar["derived_from_synthetic"] is True and sidecar["synthesized_inputs"] == ["t1ce"]
    tag = vtk.reference("")
    assert node.GetSegmentation().GetSegment(TISSUES[0]).GetTag("CoNeS.Synthetic", tag), "the .seg.nrrd keeps it"
    assert tag.get() == sidecar["marking"]
    assert sidecar["marking"].startswith("SEGMENTATION FROM SYNTHETIC T1ce - CoNeS ")
    assert sidecar["synthesis"]["marking"] == json.loads((tmp_path / "t1ce.nrrd.json").read_text())["marking"]


TORCH_FREE_REQUEST = """
import sys
import slicer
from CoNeSSynthesisLib import testing
from CoNeSSynthesisLib.synthesis import prepareSynthesis
case = testing.addSyntheticCase(slicer.vtkMRMLScene(), "CASE-001")
sources = {name: case[name] for name in ("t1", "t2", "flair")}
for model in sys.argv[2:]:
    print(prepareSynthesis(sys.argv[1], sources, segmentationModelPath=model).segmentation.labels.names)
print(sorted({"torch", "monai"} & set(sys.modules)))
"""


def test_a_segmentation_request_of_each_backend_is_checked_without_torch(
    tinyModel: Path, tinySegmentationModel: Path, tmp_path: Path
) -> None:
    # "Segment after synthesis" checks the request in Slicer's process; only the worker may import torch.
    exported = tmp_path / "seg.onnx"
    exported.write_bytes(b"\0")  # never opened: the sidecar is the description
    sidecar = {"sequences": ["t1", "t1ce", "t2", "flair"], "label_names": ["background", "NCR", "ED", "ET"]}
    exported.with_suffix(".json").write_text(
        json.dumps({**sidecar, "label_values": [0, 1, 2, 3], "patch_size": [8] * 3})
    )
    nnunet = tmp_path / "nnunet"
    nnunet.mkdir()
    channels = {"0": "T1", "1": "T1ce", "2": "T2", "3": "FLAIR"}
    labels = {"background": 0, "whole tumor": [1, 2, 3], "tumor core": [2, 3], "enhancing tumor": [3]}
    dataset = {"channel_names": channels, "labels": labels, "regions_class_order": [1, 2, 3]}
    (nnunet / "dataset.json").write_text(json.dumps(dataset))
    (nnunet / "plans.json").write_text("{}")
    environment = {**os.environ, "PYTHONPATH": str(ROOT / "CoNeSSynthesis")}
    command = [sys.executable, "-c", TORCH_FREE_REQUEST, str(tinyModel), str(tinySegmentationModel), str(exported)]
    result = subprocess.run(
        [*command, str(nnunet)], capture_output=True, text=True, check=False, env=environment, timeout=120
    )
    assert result.returncode == 0, result.stderr
    *names, imported = result.stdout.strip().splitlines()
    assert names == [str(("background", *TISSUES))] * 3
    assert imported == "[]"


def test_the_libraries_import_without_torch() -> None:
    # Slicer imports the module, and with it these, at startup, before the first Apply installs PyTorch; the
    # batch script's process only checks, loads and saves (torch runs in the cones process it starts).
    code = (
        "import sys, CoNeSSynthesisLib.segmentation, CoNeSSynthesisLib.synthesis, CoNeSSynthesisLib.batch; "
        "print(sorted({'torch', 'monai'} & set(sys.modules)))"
    )
    environment = {**os.environ, "PYTHONPATH": str(ROOT / "CoNeSSynthesis")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=environment)
    assert result.stdout.strip() == "[]"


def test_only_an_onnx_or_nnunet_model_asks_for_its_backend_package(tinySegmentationModel: Path, tmp_path: Path) -> None:
    # Installed on first use after asking (pip_ensure), never in requirements.txt; the specifiers are pyproject's.
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    onnx, torchscript, nnunet = tmp_path / "seg.onnx", tmp_path / "seg.ts", tmp_path / "nnunet"
    for exported in (onnx, torchscript):
        exported.write_bytes(b"\0")
        exported.with_suffix(".json").write_text("{}")
    nnunet.mkdir()
    (nnunet / "dataset.json").write_text("{}")
    (nnunet / "plans.json").write_text("{}")
    assert segmentation.segmentationRequirements(tinySegmentationModel) == ()
    assert segmentation.segmentationRequirements(torchscript) == ()
    (onnxruntime,) = segmentation.segmentationRequirements(onnx)
    (nnunetv2,) = segmentation.segmentationRequirements(nnunet)
    assert onnxruntime in extras["onnx"] and nnunetv2 in extras["nnunet"]
    assert segmentation.segmentationRequirements(Path()) == (), "no model chosen: prepareSynthesis says so"
    with pytest.raises(ValueError, match="does not exist"):
        segmentation.segmentationRequirements(tmp_path / "absent.onnx")
    requirements = (ROOT / "CoNeSSynthesis" / "Resources" / "requirements.txt").read_text(encoding="utf-8")
    assert "onnxruntime" not in requirements and "nnunetv2" not in requirements
