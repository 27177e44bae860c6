"""The synthesized node says it is synthetic: attributes, subject-hierarchy place, DICOM export tags, NRRD keys."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("slicer")
import pydicom
import SimpleITK as sitk
import slicer
from CoNeSCommon.jobs import Device
from CoNeSSynthesisLib.provenance import MODEL_SHA256_ATTRIBUTE, SOURCE_NODE_IDS_ATTRIBUTE, SYNTHETIC_ATTRIBUTE
from CoNeSSynthesisLib.synthesis import SynthesisJob, prepareSynthesis
from conftest import BATCH_SCRIPT

from cones.sequences import Sequence

SOURCES = (Sequence.T1, Sequence.T2, Sequence.FLAIR)
DICOM = slicer.vtkMRMLSubjectHierarchyConstants.GetDICOMAttributePrefix()


def synthesizeInScene(scene, case, model: Path, tmp_path: Path):
    request = prepareSynthesis(model, {sequence.value: case[sequence] for sequence in SOURCES}, device=Device.CPU)
    work = tmp_path / "work"
    work.mkdir()
    job = SynthesisJob(scene, request, work, sys.executable)
    output = job.run()
    job.raiseForStatus()
    return output


def test_the_output_node_is_marked_and_exports_as_a_synthetic_series_of_the_reference_study(
    scene, case, tinyModel: Path, tmp_path: Path
) -> None:
    hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    patient = hierarchy.CreateSubjectItem(hierarchy.GetSceneItemID(), "patient")
    study = hierarchy.CreateStudyItem(patient, "study")
    for sequence in SOURCES:
        item = hierarchy.CreateItem(study, case[sequence])
        hierarchy.SetItemAttribute(item, DICOM + "SeriesNumber", "7")
    output = synthesizeInScene(scene, case, tinyModel, tmp_path)
    sha = hashlib.sha256(tinyModel.read_bytes()).hexdigest()
    assert output.GetAttribute(SYNTHETIC_ATTRIBUTE) == f"SYNTHETIC T1ce - CoNeS {sha[:12]}"
    assert output.GetAttribute(MODEL_SHA256_ATTRIBUTE) == sha
    assert output.GetAttribute(SOURCE_NODE_IDS_ATTRIBUTE) == " ".join(
        f"{sequence.value}={case[sequence].GetID()}" for sequence in SOURCES
    )
    item = hierarchy.GetItemByDataNode(output)
    assert hierarchy.GetItemParent(item) == study
    assert hierarchy.GetItemAttribute(item, DICOM + "SeriesDescription").startswith("SYNTHETIC T1ce")
    assert hierarchy.GetItemAttribute(item, DICOM + "SeriesNumber") == "1007"
    assert hierarchy.GetItemAttribute(item, DICOM + "Modality") == "MR"


def test_slicer_nrrd_storage_keeps_the_marking_and_the_default_storage_drops_it(
    scene, case, tinyModel: Path, tmp_path: Path
) -> None:
    """What the README says about saving a synthesized volume from Slicer."""
    output = synthesizeInScene(scene, case, tinyModel, tmp_path)
    marking = output.GetAttribute(SYNTHETIC_ATTRIBUTE)
    written = {}
    for storageClass in ("vtkMRMLNRRDStorageNode", "vtkMRMLVolumeArchetypeStorageNode"):
        storage = scene.AddNewNodeByClass(storageClass)
        written[storageClass] = tmp_path / f"{storageClass}.nrrd"
        storage.SetFileName(str(written[storageClass]))
        assert storage.WriteData(output)
    image = sitk.ReadImage(str(written["vtkMRMLNRRDStorageNode"]))
    assert image.GetMetaData(SYNTHETIC_ATTRIBUTE) == marking
    assert not sitk.ReadImage(str(written["vtkMRMLVolumeArchetypeStorageNode"])).HasMetaDataKey(SYNTHETIC_ATTRIBUTE)
    reloaded = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode")
    storage = scene.AddNewNodeByClass("vtkMRMLNRRDStorageNode")
    storage.SetFileName(str(written["vtkMRMLNRRDStorageNode"]))
    assert storage.ReadData(reloaded)
    assert reloaded.GetAttribute(SYNTHETIC_ATTRIBUTE) == marking, "a NRRD key comes back as the node attribute"


def savedWithItsStorageNode(node, path: Path) -> sitk.Image:
    """What Slicer's Save writes for a node: its own storage node with a file name the user chose."""
    storage = node.GetStorageNode()
    assert storage is not None and storage.IsA("vtkMRMLNRRDStorageNode"), "Save would use the default storage"
    assert not storage.GetFileName(), "no file of its own until saved"
    storage.SetFileName(str(path))
    assert storage.WriteData(node)
    return sitk.ReadImage(str(path))


def test_saving_a_synthesized_volume_or_a_map_keeps_its_marking(scene, case, tinyModel: Path, tmp_path: Path) -> None:
    request = prepareSynthesis(
        tinyModel, {sequence.value: case[sequence] for sequence in SOURCES}, device=Device.CPU, uncertaintyMap=True
    )
    work = tmp_path / "work"
    work.mkdir()
    job = SynthesisJob(scene, request, work, sys.executable)
    job.run()
    job.raiseForStatus()
    for node in (job.outputNode, job.uncertaintyNode):
        saved = savedWithItsStorageNode(node, tmp_path / f"{node.GetID()}.nrrd")
        assert saved.GetMetaData(SYNTHETIC_ATTRIBUTE) == node.GetAttribute(SYNTHETIC_ATTRIBUTE)
    assert job.uncertaintyNode.GetAttribute(SYNTHETIC_ATTRIBUTE).startswith("UNCERTAINTY OF SYNTHETIC T1ce")


def test_a_replaced_dicom_volume_loses_its_file_and_dicom_identity(
    scene, case, tinyModel: Path, tmp_path: Path
) -> None:
    # What Slicer's DICOM import gives a scalar volume (DICOMLib/DICOMPlugin.py, DICOMScalarVolumePlugin.py).
    hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    study = hierarchy.CreateStudyItem(hierarchy.CreateSubjectItem(hierarchy.GetSceneItemID(), "patient"), "study")
    acquired = {}
    for sequence in (*SOURCES, Sequence.T1CE):
        node = case[sequence]
        node.SetAttribute("DICOM.instanceUIDs", f"1.2.{sequence.value}.1 1.2.{sequence.value}.2")
        item = hierarchy.CreateItem(study, node)
        hierarchy.SetItemUID(item, "DICOM", f"1.2.{sequence.value}")
        hierarchy.SetItemUID(item, "DICOMInstanceUID", f"1.2.{sequence.value}.1 1.2.{sequence.value}.2")
        hierarchy.SetItemAttribute(item, DICOM + "SeriesDate", "20260101")
        acquired[sequence] = item
    storage = scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    storage.SetFileName(str(tmp_path / "acquired-t1ce.nii.gz"))
    case[Sequence.T1CE].SetAndObserveStorageNodeID(storage.GetID())
    request = prepareSynthesis(
        tinyModel, {sequence.value: case[sequence] for sequence in SOURCES}, case[Sequence.T1CE], device=Device.CPU
    )
    work = tmp_path / "work"
    work.mkdir()
    job = SynthesisJob(scene, request, work, sys.executable)
    job.run()
    job.raiseForStatus()
    replaced, item = job.outputNode, acquired[Sequence.T1CE]
    assert replaced is case[Sequence.T1CE]
    assert replaced.GetAttribute("DICOM.instanceUIDs") is None
    assert not hierarchy.HasItemUID(item, "DICOM") and not hierarchy.HasItemUID(item, "DICOMInstanceUID")
    assert not hierarchy.HasItemAttribute(item, DICOM + "SeriesDate")
    assert hierarchy.GetItemAttribute(item, DICOM + "SeriesDescription").startswith("SYNTHETIC T1ce")
    assert savedWithItsStorageNode(replaced, tmp_path / "saved.nrrd").HasMetaDataKey(SYNTHETIC_ATTRIBUTE)
    assert not (tmp_path / "acquired-t1ce.nii.gz").exists()
    for sequence in SOURCES:
        assert hierarchy.GetItemUID(acquired[sequence], "DICOM") == f"1.2.{sequence.value}", "the sources keep theirs"
        assert case[sequence].GetAttribute("DICOM.instanceUIDs")


def test_batch_reads_a_dicom_t1_beside_nifti_and_writes_a_synthetic_dicom_series(
    tinyModel: Path, tmp_path: Path
) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))
    from CoNeSSynthesisLib import testing
    from dicom_series import PATIENT_ID, write_series

    right_handed = testing.syntheticCaseImages(ijkToRas=np.diag([-1.0, -1.0, 2.0, 1.0]))  # DICOM reads right-handed
    t1 = write_series(right_handed[Sequence.T1], tmp_path / "t1", "1.2.826.0.1.3680043.8.498.21")
    inputs = [f"t1={t1}"]
    for sequence in (Sequence.T2, Sequence.FLAIR):
        path = tmp_path / f"{sequence.value}.nii.gz"
        sitk.WriteImage(sitk.Cast(sitk.Round(right_handed[sequence]), sitk.sitkInt16), str(path))
        inputs.append(f"{sequence.value}={path}")
    folder = tmp_path / "t1ce"
    result = subprocess.run(
        [sys.executable, str(BATCH_SCRIPT), "--model", str(tinyModel), "--input", *inputs, "--output", str(folder),
         "--output-format", "dicom", "--device", "cpu"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    datasets = [pydicom.dcmread(path) for path in sorted(folder.iterdir())]
    assert len(datasets) == right_handed[Sequence.T1].GetSize()[2]
    assert all(ds.SeriesDescription.startswith("SYNTHETIC T1ce") and ds.PatientID == PATIENT_ID for ds in datasets)
    assert all(list(ds.ImageType) == ["DERIVED", "SECONDARY", "OTHER"] for ds in datasets)
    assert (tmp_path / "t1ce.json").is_file()
