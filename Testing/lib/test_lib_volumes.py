"""Volume nodes <-> SimpleITK with exact geometry, source checks and the output node, on real MRML."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("slicer")
import SimpleITK as sitk
import slicer
import vtk
from CoNeSSynthesisLib import testing, volumes

from cones.sequences import Sequence


def ijkToRas(node) -> np.ndarray:
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    return slicer.util.arrayFromVTKMatrix(matrix)


def addVolume(scene, name: str, array: np.ndarray, matrix: np.ndarray = testing.OBLIQUE_LEFT_HANDED_IJK_TO_RAS):
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    node.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(matrix))
    slicer.util.updateVolumeFromArray(node, array)
    return node


def test_imageFromVolume_places_every_voxel_at_its_mrml_position(case) -> None:
    node = case[Sequence.T1]
    assert np.linalg.det(ijkToRas(node)[:3, :3]) < 0, "the generated grid must be left-handed"
    image = volumes.imageFromVolume(node)
    for index in [(0, 0, 0), (31, 0, 0), (0, 35, 9), (7, 20, 4)]:
        ras = ijkToRas(node) @ np.array([*index, 1.0])
        lps = np.asarray(image.TransformIndexToPhysicalPoint(index))
        np.testing.assert_allclose(lps, ras[:3] * [-1, -1, 1], atol=1e-9)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), slicer.util.arrayFromVolume(node))


def test_volume_image_round_trip_is_exact_for_oblique_left_handed_grids(scene) -> None:
    array = np.random.default_rng(0).integers(-500, 3000, size=(5, 7, 6)).astype(np.int16)
    source = addVolume(scene, "source", array)
    image = volumes.imageFromVolume(source)
    assert image.GetPixelID() == sitk.sitkInt16
    copy = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "copy")
    volumes.updateVolumeFromImage(copy, image)
    np.testing.assert_array_equal(ijkToRas(copy), ijkToRas(source))
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(copy), array)
    assert slicer.util.arrayFromVolume(copy).dtype == np.int16


def test_imageFromVolume_copies_voxels_so_the_node_stays_untouched(case) -> None:
    node = case[Sequence.T2]
    before = slicer.util.arrayFromVolume(node).copy()
    image = volumes.imageFromVolume(node)
    image[0, 0, 0] = 12345.0
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(node), before)


def test_storage_node_round_trip_keeps_a_left_handed_grid(scene, case, tmp_path: Path) -> None:
    path = tmp_path / "t1.nrrd"
    writer = scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    writer.SetFileName(str(path))
    assert writer.WriteData(case[Sequence.T1])
    reader = scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    reader.SetFileName(str(path))
    reader.SetForceRightHandedIJKCoordinateSystem(False)
    loaded = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "loaded")
    assert reader.ReadData(loaded)
    np.testing.assert_allclose(ijkToRas(loaded), ijkToRas(case[Sequence.T1]), atol=1e-9)
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(loaded), slicer.util.arrayFromVolume(case[Sequence.T1]))
    fromFile = sitk.ReadImage(str(path))
    fromNode = volumes.imageFromVolume(loaded)
    np.testing.assert_allclose(fromFile.GetDirection(), fromNode.GetDirection(), atol=1e-9)
    np.testing.assert_allclose(fromFile.GetOrigin(), fromNode.GetOrigin(), atol=1e-9)


def test_imageFromVolume_refuses_what_is_not_one_mr_sequence(scene) -> None:
    empty = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "empty")
    with pytest.raises(ValueError, match="'empty' has no voxels"):
        volumes.imageFromVolume(empty)
    labels = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "labels")
    slicer.util.updateVolumeFromArray(labels, np.zeros((2, 3, 4), np.uint8))
    with pytest.raises(ValueError, match="'labels' is a label map"):
        volumes.imageFromVolume(labels)
    vector = scene.AddNewNodeByClass("vtkMRMLVectorVolumeNode", "rgb")
    slicer.util.updateVolumeFromArray(vector, np.zeros((2, 3, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="'rgb' has 3 components"):
        volumes.imageFromVolume(vector)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("BraTS-042_t1", "BraTS-042"),
        ("BraTS-GLI-00001-000-t1n", "BraTS-GLI-00001-000"),
        ("CASE 7 FLAIR", "CASE 7"),
        ("MRHead", "MRHead"),
        ("T1", ""),
    ],
)
def test_caseName_drops_a_trailing_sequence(name: str, expected: str) -> None:
    assert volumes.caseName(name) == expected


def test_matchSourceVolumes_orders_sources_as_the_model_needs_them(case) -> None:
    required = (Sequence.FLAIR, Sequence.T1, Sequence.T2)
    matched = volumes.matchSourceVolumes(
        required, {"t1": case[Sequence.T1], "T2": case[Sequence.T2], "t2f": case[Sequence.FLAIR], "t1c": None}
    )
    assert list(matched) == list(required)
    assert matched[Sequence.FLAIR] is case[Sequence.FLAIR]


def test_matchSourceVolumes_names_what_is_missing_or_wrong(case) -> None:
    required = (Sequence.T1, Sequence.T2, Sequence.FLAIR)
    with pytest.raises(ValueError, match="needs a T2, FLAIR volume"):
        volumes.matchSourceVolumes(required, {"t1": case[Sequence.T1], "t2": None})
    with pytest.raises(ValueError, match="'CASE-001_t1' is selected for both T1 and T2"):
        volumes.matchSourceVolumes(
            required, {"t1": case[Sequence.T1], "t2": case[Sequence.T1], "flair": case[Sequence.FLAIR]}
        )
    with pytest.raises(ValueError, match="unknown sequence name 'dwi'"):
        volumes.matchSourceVolumes(required, {"dwi": case[Sequence.T1]})


def test_checkOutputVolume_refuses_to_overwrite_a_source(case) -> None:
    sources = {sequence: case[sequence] for sequence in (Sequence.T1, Sequence.T2)}
    with pytest.raises(ValueError, match="'CASE-001_t2' is the T2 source"):
        volumes.checkOutputVolume(case[Sequence.T2], sources)
    volumes.checkOutputVolume(case[Sequence.T1CE], sources)
    volumes.checkOutputVolume(None, sources)


def test_checkSameTransform_accepts_one_shared_transform_only(scene, case) -> None:
    sources = {sequence: case[sequence] for sequence in (Sequence.T1, Sequence.T2)}
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "registration")
    case[Sequence.T2].SetAndObserveTransformNodeID(transform.GetID())
    with pytest.raises(ValueError, match=r"'CASE-001_t2' \(T2\) is under transform 'registration'.*under none"):
        volumes.checkSameTransform(sources)
    case[Sequence.T1].SetAndObserveTransformNodeID(transform.GetID())
    volumes.checkSameTransform(sources)


def test_checkSameGrid_names_both_volumes_and_the_difference(scene, case) -> None:
    shifted = testing.OBLIQUE_LEFT_HANDED_IJK_TO_RAS.copy()
    shifted[0, 3] += 0.5
    other = addVolume(scene, "other_t2", slicer.util.arrayFromVolume(case[Sequence.T2]), shifted)
    sources = {Sequence.T1: case[Sequence.T1], Sequence.T2: other}
    with pytest.raises(ValueError, match=r"'other_t2' \(T2\) is not on the grid of 'CASE-001_t1' \(T1\): origin"):
        volumes.checkSameGrid(sources)
    volumes.checkSameGrid({Sequence.T1: case[Sequence.T1], Sequence.T2: case[Sequence.T2]})


def test_writeSynthesizedVolume_adds_a_named_node_on_the_reference_grid(scene, case) -> None:
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "registration")
    case[Sequence.T1].SetAndObserveTransformNodeID(transform.GetID())
    image = volumes.imageFromVolume(case[Sequence.T1CE])
    output = volumes.writeSynthesizedVolume(scene, image, case[Sequence.T1], Sequence.T1CE)
    assert output.GetName() == "CASE-001 T1ce (synthesized)"
    assert output.GetTransformNodeID() == transform.GetID()
    assert output.GetDisplayNode() is not None
    np.testing.assert_array_equal(ijkToRas(output), ijkToRas(case[Sequence.T1]))
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(output), slicer.util.arrayFromVolume(case[Sequence.T1CE]))
    again = volumes.writeSynthesizedVolume(scene, image, case[Sequence.T1], Sequence.T1CE)
    assert again is not output and again.GetName() != output.GetName()


def test_writeSynthesizedVolume_replaces_only_the_chosen_node(scene, case) -> None:
    chosen = addVolume(scene, "my output", np.zeros((2, 2, 2), np.float32), np.diag([3.0, 3.0, 3.0, 1.0]))
    bystander = addVolume(scene, "CASE-001 T1ce (synthesized)", np.ones((2, 2, 2), np.float32))
    nodes = scene.GetNumberOfNodes()
    image = volumes.imageFromVolume(case[Sequence.T1CE])
    output = volumes.writeSynthesizedVolume(scene, image, case[Sequence.T1], Sequence.T1CE, outputNode=chosen)
    assert output is chosen and chosen.GetName() == "my output"
    assert scene.GetNumberOfNodes() == nodes + 2, "only a display node and a NRRD storage node are added"
    assert chosen.GetStorageNode().IsA("vtkMRMLNRRDStorageNode")
    np.testing.assert_array_equal(ijkToRas(chosen), ijkToRas(case[Sequence.T1]))
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(bystander), np.ones((2, 2, 2)))
