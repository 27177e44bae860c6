"""The uncertainty and virtual-enhancement maps in MRML: marked volumes on the output's grid, their display and means.

One synthesis with both maps and the segmentation chain runs for the module; the means are checked
against numpy on the nodes, and the tumour against the core's own segmentation of the same images.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("slicer")
import SimpleITK as sitk
import slicer
import vtk
from CoNeSSynthesisLib import segmentation, testing, trust, volumes
from CoNeSSynthesisLib.provenance import MODEL_SHA256_ATTRIBUTE, SYNTHETIC_ATTRIBUTE
from CoNeSSynthesisLib.synthesis import SynthesisJob, prepareSynthesis

from cones.segmentation.labels import BRATS_2018_LABELS
from cones.sequences import Sequence

SOURCES = (Sequence.T1, Sequence.T2, Sequence.FLAIR)
DICOM = slicer.vtkMRMLSubjectHierarchyConstants.GetDICOMAttributePrefix()


def sourceVolumes(case) -> dict[str, object]:
    return {sequence.value: case[sequence] for sequence in SOURCES}


def ijkToRas(node) -> np.ndarray:
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    return slicer.util.arrayFromVTKMatrix(matrix)


def array(node) -> np.ndarray:
    return slicer.util.arrayFromVolume(node)


@pytest.fixture(scope="module")
def mapped(tinyModel: Path, tinySegmentationModel: Path, tmp_path_factory):
    """One synthesis of a generated case with both maps and the tumour segmentation."""
    scene = slicer.vtkMRMLScene()
    case = testing.addSyntheticCase(scene, "CASE-001")
    request = prepareSynthesis(
        tinyModel, sourceVolumes(case), device="cpu", segmentationModelPath=tinySegmentationModel,
        uncertaintyMap=True, enhancementMap=True,
    )  # fmt: skip
    work = tmp_path_factory.mktemp("trust") / "work"
    work.mkdir()
    job = SynthesisJob(scene, request, work, sys.executable)
    job.run()
    job.raiseForStatus()
    return {"scene": scene, "case": case, "job": job, "work": work}


@pytest.mark.parametrize("kind", [trust.UNCERTAINTY, trust.ENHANCEMENT], ids=lambda kind: kind.section)
def test_each_map_is_a_marked_volume_on_the_output_grid_zero_outside_the_brain(mapped, kind) -> None:
    job, scene = mapped["job"], mapped["scene"]
    output, node = job.outputNode, job.mapNodes[kind]
    assert not mapped["work"].exists()
    assert node.GetScene() is scene and node.GetName() == f"CASE-001 T1ce (synthesized) {kind.nameSuffix}"
    assert output.GetNodeReference(kind.referenceRole) is node
    np.testing.assert_array_equal(ijkToRas(node), ijkToRas(output))
    # the case is skull-stripped: its brain is where the sources are not 0
    values, brain = array(node), array(mapped["case"][Sequence.T1]) > 0
    assert values.shape == brain.shape and values.dtype == np.float32
    assert np.isfinite(values).all() and brain.any() and (~brain).any()
    assert np.all(values[~brain] == 0)
    assert values[brain].std() > 0
    synthesisMarking = output.GetAttribute(SYNTHETIC_ATTRIBUTE)
    assert synthesisMarking.startswith("SYNTHETIC T1ce - CoNeS ")
    assert node.GetAttribute(SYNTHETIC_ATTRIBUTE) == kind.marking(synthesisMarking)
    assert node.GetAttribute(MODEL_SHA256_ATTRIBUTE) == output.GetAttribute(MODEL_SHA256_ATTRIBUTE)
    assert job.mapRecords[kind]["units"], "the process's description of the map is kept"


def test_the_uncertainty_map_is_inferno_from_zero_to_its_brain_percentile(mapped) -> None:
    job = mapped["job"]
    display = job.uncertaintyNode.GetDisplayNode()
    assert display.GetColorNodeID() == slicer.vtkMRMLColorLogic.GetFileColorNodeID("Inferno.txt")
    assert not display.GetAutoWindowLevel()
    values, brain = array(job.uncertaintyNode), array(job.outputNode) > 0
    assert values.min() >= 0, "a root of squares"
    assert display.GetWindowLevelMin() == 0
    assert display.GetWindowLevelMax() == pytest.approx(np.percentile(values[brain], 99), rel=1e-5)


def test_the_enhancement_map_is_diverging_on_a_symmetric_window(mapped) -> None:
    job = mapped["job"]
    display = job.enhancementNode.GetDisplayNode()
    assert display.GetColorNodeID() == slicer.vtkMRMLColorLogic.GetFileColorNodeID("DivergingBlueRed.txt")
    values, brain = array(job.enhancementNode), array(job.outputNode) > 0
    assert values.min() >= -1 and values.max() <= 1 and values.min() < 0 < values.max()
    top = np.percentile(np.abs(values[brain]), 99)
    assert (display.GetWindowLevelMin(), display.GetWindowLevelMax()) == pytest.approx((-top, top), rel=1e-5)


def test_the_maps_export_beside_the_synthesized_series_with_their_own_description(mapped) -> None:
    job = mapped["job"]
    hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(mapped["scene"])
    outputItem = hierarchy.GetItemByDataNode(job.outputNode)
    numbers = {hierarchy.GetItemAttribute(outputItem, DICOM + "SeriesNumber")}
    for node in (job.uncertaintyNode, job.enhancementNode):
        item = hierarchy.GetItemByDataNode(node)
        assert hierarchy.GetItemParent(item) == hierarchy.GetItemParent(outputItem)
        assert hierarchy.GetItemAttribute(item, DICOM + "SeriesDescription") == node.GetAttribute(SYNTHETIC_ATTRIBUTE)
        assert hierarchy.GetItemAttribute(item, DICOM + "Modality") == "MR"
        numbers.add(hierarchy.GetItemAttribute(item, DICOM + "SeriesNumber"))
    assert len(numbers) == 3, "three series, three numbers"


def test_the_summary_is_the_mean_in_the_brain_and_in_the_core_s_tumour(mapped, tinySegmentationModel: Path) -> None:
    from cones.segmentation import load_segmentation_model

    job, case = mapped["job"], mapped["case"]
    values = array(job.uncertaintyNode).astype(np.float64)
    brain = array(job.outputNode) > 0
    images = {sequence: volumes.imageFromVolume(case[sequence]) for sequence in SOURCES}
    images[Sequence.T1CE] = volumes.imageFromVolume(job.outputNode)
    tumour = sitk.GetArrayFromImage(load_segmentation_model(tinySegmentationModel).segment(images)) > 0
    assert tumour.any() and (tumour != brain).any(), "the tumour must differ from the brain to tell them apart"
    summary = job.uncertaintySummary
    assert summary.brainVoxels == brain.sum() and summary.brainMean == pytest.approx(values[brain].mean())
    assert summary.tumourVoxels == tumour.sum() and summary.tumourMean == pytest.approx(values[tumour].mean())
    text = trust.describeUncertainty(summary)
    assert f"{summary.brainMean:.3g} in the brain" in text and f"{summary.tumourMean:.3g} in the tumour" in text


def test_summarizeUncertainty_measures_the_segments_and_refuses_another_grid(scene, case) -> None:
    reference = case[Sequence.T1]
    shape = array(reference).shape
    synthesized = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "synthesized")
    synthesized.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(ijkToRas(reference)))
    slicer.util.updateVolumeFromArray(synthesized, np.where(array(reference) > 0, 500.0, 0.0).astype(np.float32))
    uncertainty = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "uncertainty")
    uncertainty.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(ijkToRas(reference)))
    values = np.random.default_rng(3).uniform(0.0, 50.0, shape).astype(np.float32)
    slicer.util.updateVolumeFromArray(uncertainty, values)
    labels = np.zeros(shape, np.uint8)
    labels[3:6, 10:20, 8:14], labels[4, 12:15, 9:11] = 2, 4
    image = sitk.GetImageFromArray(labels)
    image.CopyInformation(volumes.imageFromVolume(reference))
    tumourNode = segmentation.addTumourSegmentation(scene, image, BRATS_2018_LABELS, reference)
    slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)  # Slicer's scenes always have one
    nodes = scene.GetNumberOfNodes()

    brain = array(synthesized) > 0
    withoutTumour = trust.summarizeUncertainty(uncertainty, synthesized)
    assert withoutTumour.brainMean == pytest.approx(values[brain].astype(np.float64).mean())
    assert withoutTumour.tumourMean is None and withoutTumour.tumourVoxels is None
    summary = trust.summarizeUncertainty(uncertainty, synthesized, tumourNode)
    assert summary.tumourVoxels == (labels > 0).sum()
    assert summary.tumourMean == pytest.approx(values[labels > 0].astype(np.float64).mean())
    assert scene.GetNumberOfNodes() == nodes, "the export's label map is removed"

    moved = ijkToRas(reference)
    moved[:3, 3] += 2.0
    uncertainty.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(moved))
    with pytest.raises(ValueError, match="'uncertainty' is not on the grid of 'synthesized': origin"):
        trust.summarizeUncertainty(uncertainty, synthesized)


@pytest.mark.parametrize(
    ("summary", "expected"),
    [
        (trust.UncertaintySummary(12.34, 100), "Mean uncertainty (synthesized volume's scale): 12.3 in the brain."),
        (trust.UncertaintySummary(12.34, 100, 40.0, 7), ": 12.3 in the brain, 40 in the tumour (7 voxels)."),
        (trust.UncertaintySummary(12.34, 100, None, 0), ": 12.3 in the brain, none in the tumour, whose segmentation"),
        (trust.UncertaintySummary(None, 0), "none to show; the synthesized volume has no brain voxels"),
    ],
)
def test_describeUncertainty_says_what_was_measured(summary, expected: str) -> None:
    assert expected in trust.describeUncertainty(summary)


def test_displayWindow_is_never_empty() -> None:
    brain = np.array([True, True, True, False])
    assert trust.displayWindow(np.array([0.0, 0.0, 0.0, 9.0]), brain, symmetric=False) == (0.0, 1.0)
    assert trust.displayWindow(np.array([-4.0, 1.0, 2.0, 9.0]), brain, symmetric=True)[1] == pytest.approx(
        np.percentile([4.0, 1.0, 2.0], 99)
    )
    assert trust.displayWindow(np.zeros(4), np.zeros(4, bool), symmetric=True) == (-1.0, 1.0)


def test_a_map_off_the_output_grid_is_refused_and_adds_nothing(scene, case) -> None:
    output = case[Sequence.T1CE]
    image = volumes.imageFromVolume(output)
    image.SetSpacing(tuple(2.0 * spacing for spacing in image.GetSpacing()))
    nodes = scene.GetNumberOfNodes()
    with pytest.raises(ValueError, match="the uncertainty map is not on the grid of 'CASE-001_t1ce': spacing"):
        trust.addMapVolume(scene, image, output, trust.UNCERTAINTY, "SYNTHETIC T1ce - CoNeS 0123456789ab")
    assert scene.GetNumberOfNodes() == nodes


def test_the_enhancement_map_is_refused_for_a_model_that_does_not_make_t1ce_from_t1(
    scene, case, tinyModel: Path, tmp_path: Path
) -> None:
    withoutT1 = testing.writeTinyModel(tmp_path / "t2-flair.pt", sources=(Sequence.T2, Sequence.FLAIR))
    with pytest.raises(ValueError, match="the model makes T1ce from T2, FLAIR; untick 'Virtual enhancement map'"):
        prepareSynthesis(withoutT1, sourceVolumes(case), enhancementMap=True)
    assert prepareSynthesis(withoutT1, sourceVolumes(case), uncertaintyMap=True).maps == (trust.UNCERTAINTY,)
    assert prepareSynthesis(tinyModel, sourceVolumes(case)).maps == ()
    both = prepareSynthesis(tinyModel, sourceVolumes(case), uncertaintyMap=True, enhancementMap=True)
    assert both.maps == (trust.UNCERTAINTY, trust.ENHANCEMENT)


def test_the_colour_tables_are_slicer_s_default_file_tables() -> None:
    assert slicer.vtkMRMLColorLogic.GetFileColorNodeID("Inferno.txt") == trust.UNCERTAINTY_COLOR_NODE_ID
    assert slicer.vtkMRMLColorLogic.GetFileColorNodeID("DivergingBlueRed.txt") == trust.ENHANCEMENT_COLOR_NODE_ID


def test_a_run_without_uncertainty_takes_an_earlier_map_off_the_slice_views(scene, case) -> None:
    composites = [scene.AddNewNodeByClass("vtkMRMLSliceCompositeNode") for _ in range(3)]
    first, second, earlierMap = case[Sequence.T1CE], case[Sequence.T2], case[Sequence.FLAIR]
    earlierMap.SetAttribute(SYNTHETIC_ATTRIBUTE, "UNCERTAINTY OF SYNTHETIC T1ce - CoNeS 0123456789ab")
    trust.showOnSliceViews(scene, first, earlierMap)
    for composite in composites:
        assert (composite.GetBackgroundVolumeID(), composite.GetForegroundVolumeID()) == (
            first.GetID(),
            earlierMap.GetID(),
        )
        assert composite.GetForegroundOpacity() == pytest.approx(trust.UNCERTAINTY_OPACITY)
    trust.showOnSliceViews(scene, second, None)
    for composite in composites:
        assert (composite.GetBackgroundVolumeID(), composite.GetForegroundVolumeID()) == (second.GetID(), None)
    chosen = case[Sequence.T1]  # a foreground the user put there, not a CoNeS volume
    composites[0].SetForegroundVolumeID(chosen.GetID())
    trust.showOnSliceViews(scene, first, None)
    assert composites[0].GetForegroundVolumeID() == chosen.GetID()
