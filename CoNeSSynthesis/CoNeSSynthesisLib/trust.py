"""The uncertainty and virtual-enhancement maps of a synthesis in MRML: marked volumes, their display, their means.

``cones synthesize --uncertainty-output / --enhancement-output`` (:mod:`cones.trust`) writes both maps
on the synthesized volume's grid, 0 outside the brain. Here each becomes a volume beside the
synthesized one, marked as it is (:func:`CoNeSSynthesisLib.provenance.markDerivedVolume`) and named
after it, with a display that reads at a glance: the uncertainty in Slicer's Inferno lookup table
(dark where the synthesis is stable, bright where it is not) from 0 to its 99th percentile inside
the brain, the virtual enhancement in the blue-white-red diverging table on a window symmetric
about 0 (white: no difference from T1). The panel states the mean uncertainty inside the brain and,
when the segmentation chain ran, inside the segmented tumour (:func:`summarizeUncertainty`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
import slicer
import slicer.util
import vtk
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLScene, vtkMRMLSegmentationNode

from cones.marking import enhancement_marking, uncertainty_marking
from cones.trust.cli import ENHANCEMENT_OPTION, ENHANCEMENT_SECTION, UNCERTAINTY_OPTION, UNCERTAINTY_SECTION
from CoNeSSynthesisLib import provenance, volumes

__all__ = [
    "ENHANCEMENT",
    "ENHANCEMENT_COLOR_NODE_ID",
    "UNCERTAINTY",
    "UNCERTAINTY_COLOR_NODE_ID",
    "UNCERTAINTY_OPACITY",
    "WINDOW_PERCENTILE",
    "MapKind",
    "UncertaintySummary",
    "addMapVolume",
    "checkMapGrid",
    "describeUncertainty",
    "displayWindow",
    "showOnSliceViews",
    "summarizeUncertainty",
    "tumourMask",
]

UNCERTAINTY_COLOR_NODE_ID = "vtkMRMLColorTableNodeFileInferno.txt"
"""Slicer's Inferno table (``Base/Logic/Resources/ColorFiles/Inferno.txt``, there in v5.12.0): the ID
``vtkMRMLColorLogic::GetFileColorNodeID`` gives a default colour file (``Libs/MRML/Logic/vtkMRMLColorLogic.cxx``)."""
ENHANCEMENT_COLOR_NODE_ID = "vtkMRMLColorTableNodeFileDivergingBlueRed.txt"
"""Slicer's DivergingBlueRed table (``Base/Logic/Resources/ColorFiles/DivergingBlueRed.txt``): blue, white in the
middle, red; on a window symmetric about 0, white is "as T1" and red "brighter than T1"."""
UNCERTAINTY_OPACITY = 0.4
"""Foreground opacity of the uncertainty over the synthesized volume: the anatomy stays readable beneath."""
WINDOW_PERCENTILE = 99.0
"""The window's top, as a percentile inside the brain: a few extreme voxels would otherwise wash the map out."""


@dataclass(frozen=True)
class MapKind:
    """One kind of map: how ``cones synthesize`` is asked for it and describes it, and how the scene shows it.

    Attributes:
        option: the ``cones synthesize`` option that writes it.
        section: the synthesized volume's sidecar section that describes it (:mod:`cones.trust.cli`).
        marking: its marking from the synthesized volume's (:mod:`cones.marking`).
        nameSuffix: appended to the synthesized volume's name (``"<case> T1ce (synthesized) uncertainty"``).
        referenceRole: the synthesized volume's node reference to the map, so a script (or a saved
            scene) finds a volume's maps: ``synthesized.GetNodeReference(UNCERTAINTY.referenceRole)``.
        colorNodeID: the display's lookup table.
        symmetricWindow: a window from ``-top`` to ``top`` (signed maps) instead of from 0 to ``top``.
        seriesNumberOffset: its DICOM series number is the synthesized series' plus this.
    """

    option: str
    section: str
    marking: Callable[[str], str]
    nameSuffix: str
    referenceRole: str
    colorNodeID: str
    symmetricWindow: bool
    seriesNumberOffset: int


UNCERTAINTY = MapKind(
    UNCERTAINTY_OPTION, UNCERTAINTY_SECTION, uncertainty_marking, "uncertainty", "CoNeS.UncertaintyMap",
    UNCERTAINTY_COLOR_NODE_ID, symmetricWindow=False, seriesNumberOffset=1,
)  # fmt: skip
ENHANCEMENT = MapKind(
    ENHANCEMENT_OPTION, ENHANCEMENT_SECTION, enhancement_marking, "virtual enhancement",
    "CoNeS.VirtualEnhancementMap", ENHANCEMENT_COLOR_NODE_ID, symmetricWindow=True, seriesNumberOffset=2,
)  # fmt: skip


def displayWindow(values: np.ndarray, brain: np.ndarray, symmetric: bool) -> tuple[float, float]:
    """The window of a map: 0 (or ``-top``) to ``top``, the :data:`WINDOW_PERCENTILE` of its magnitude in the brain.

    An empty brain or a map that is 0 there gets ``top`` = 1, so the window is never empty.
    """
    inside = np.abs(values[brain]) if symmetric else values[brain]
    top = float(np.percentile(inside, WINDOW_PERCENTILE)) if inside.size else 0.0
    top = top if top > 0 else 1.0
    return (-top if symmetric else 0.0, top)


def checkMapGrid(image: sitk.Image, grid: sitk.Image, kind: MapKind, gridLabel: str) -> None:
    """Refuse a map that is not on the grid of the volume it was computed from.

    Raises:
        ValueError: naming the map, ``gridLabel`` and what differs.
    """
    from cones.data import grid_difference

    difference = grid_difference(image, grid)
    if difference is not None:
        raise ValueError(f"the {kind.nameSuffix} map is not on the grid of {gridLabel}: {difference}")


def addMapVolume(
    scene: vtkMRMLScene,
    image: sitk.Image,
    synthesizedNode: vtkMRMLScalarVolumeNode,
    kind: MapKind,
    synthesisMarking: str,
) -> vtkMRMLScalarVolumeNode:
    """Add a map of the synthesized volume as a new, marked volume with its display.

    Args:
        scene: the scene of the synthesized volume.
        image: the map, on the synthesized volume's grid.
        synthesizedNode: the synthesized volume, already marked; the map takes its grid, parent
            transform and name, and its brain (where it is not 0) sets the window.
        kind: :data:`UNCERTAINTY` or :data:`ENHANCEMENT`.
        synthesisMarking: the synthesized volume's marking; the map's is made from it (``kind.marking``).

    Returns:
        The new volume, named ``"<synthesized name> <kind.nameSuffix>"`` (made unique in the scene) and
        referenced by the synthesized volume under ``kind.referenceRole``; a NRRD storage node keeps its
        marking when Slicer saves it (:func:`~CoNeSSynthesisLib.volumes.attachNrrdStorage`).

    Raises:
        ValueError: the map is not on the synthesized volume's grid.
    """
    checkMapGrid(image, volumes.gridOf(synthesizedNode), kind, volumes.volumeLabel(synthesizedNode))
    name = scene.GenerateUniqueName(f"{synthesizedNode.GetName()} {kind.nameSuffix}")
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    volumes.updateVolumeFromImage(node, image)
    node.SetAndObserveTransformNodeID(synthesizedNode.GetTransformNodeID())
    volumes.attachNrrdStorage(scene, node)
    node.CreateDefaultDisplayNodes()
    display = node.GetDisplayNode()
    display.SetAndObserveColorNodeID(kind.colorNodeID)
    display.AutoWindowLevelOff()
    brain = slicer.util.arrayFromVolume(synthesizedNode) > 0
    display.SetWindowLevelMinMax(*displayWindow(slicer.util.arrayFromVolume(node), brain, kind.symmetricWindow))
    provenance.markDerivedVolume(scene, node, synthesizedNode, kind.marking(synthesisMarking), kind.seriesNumberOffset)
    synthesizedNode.SetNodeReferenceID(kind.referenceRole, node.GetID())
    return node


def showOnSliceViews(
    scene: vtkMRMLScene, synthesizedNode: vtkMRMLScalarVolumeNode, uncertaintyNode: vtkMRMLScalarVolumeNode | None
) -> None:
    """Show a synthesized volume in every slice view, its uncertainty map over it, or no CoNeS map without one.

    A map of an earlier run left in the foreground would otherwise lie over the new volume and pass
    for its uncertainty; a foreground the user chose (not a CoNeS volume) is kept.

    Args:
        scene: the scene whose slice composite nodes (one per slice view) are set.
        synthesizedNode: the volume to show as the background.
        uncertaintyNode: its uncertainty map, shown at :data:`UNCERTAINTY_OPACITY`, or ``None``.
    """
    for index in range(scene.GetNumberOfNodesByClass("vtkMRMLSliceCompositeNode")):
        composite = scene.GetNthNodeByClass(index, "vtkMRMLSliceCompositeNode")
        composite.SetBackgroundVolumeID(synthesizedNode.GetID())
        if uncertaintyNode is not None:
            composite.SetForegroundVolumeID(uncertaintyNode.GetID())
            composite.SetForegroundOpacity(UNCERTAINTY_OPACITY)
            continue
        foreground = scene.GetNodeByID(composite.GetForegroundVolumeID() or "")
        if foreground is not None and foreground.GetAttribute(provenance.SYNTHETIC_ATTRIBUTE) is not None:
            composite.SetForegroundVolumeID(None)


def tumourMask(segmentationNode: vtkMRMLSegmentationNode, referenceNode: vtkMRMLScalarVolumeNode) -> np.ndarray:
    """Every segment of a tumour segmentation (NCR, ED and ET: the whole tumour) on a volume's grid, as booleans.

    The segments go through Slicer's own export onto the reference geometry, so a segmentation the
    user has edited, or one on another grid, is measured as it now is.

    Raises:
        RuntimeError: Slicer could not export the segments.
    """
    scene = segmentationNode.GetScene()
    segmentation = segmentationNode.GetSegmentation()
    segmentIds = vtk.vtkStringArray()
    for index in range(segmentation.GetNumberOfSegments()):
        segmentIds.InsertNextValue(segmentation.GetNthSegmentID(index))
    shape = slicer.util.arrayFromVolume(referenceNode).shape
    if segmentIds.GetNumberOfValues() == 0:
        return np.zeros(shape, dtype=bool)
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode")
    try:
        exported = slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(
            segmentationNode, segmentIds, labelmap, referenceNode, slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY
        )
        if not exported:
            raise RuntimeError(f"Slicer could not export the segments of {segmentationNode.GetName()!r}")
        return slicer.util.arrayFromVolume(labelmap) > 0
    finally:
        _removeLabelmap(scene, labelmap)


def _removeLabelmap(scene: vtkMRMLScene, labelmap: slicer.vtkMRMLLabelMapVolumeNode) -> None:
    """Remove a temporary label map with the display nodes and the colour table the export made for it.

    Removing a volume leaves its display nodes in the scene, and the export gives the label map a
    colour table of the segments of its own (``<segmentation>_ColorTable``).
    """
    displays = [labelmap.GetNthDisplayNode(index) for index in range(labelmap.GetNumberOfDisplayNodes())]
    colors = {display.GetColorNode() for display in displays if display is not None} - {None}
    scene.RemoveNode(labelmap)
    for node in [*displays, *colors]:
        if node is not None and node.GetSingletonTag() is None:
            scene.RemoveNode(node)


@dataclass(frozen=True)
class UncertaintySummary:
    """The mean uncertainty of a synthesis, on the synthesized volume's scale.

    Attributes:
        brainMean: the mean inside the brain (where the synthesized volume is not 0); None when it is empty.
        brainVoxels: how many voxels that is.
        tumourMean: the mean inside the segmented tumour; None without a segmentation or when it is empty.
        tumourVoxels: how many voxels the tumour has; None without a segmentation.
    """

    brainMean: float | None
    brainVoxels: int
    tumourMean: float | None = None
    tumourVoxels: int | None = None


def _mean(values: np.ndarray, mask: np.ndarray) -> float | None:
    return float(values[mask].mean(dtype=np.float64)) if mask.any() else None


def summarizeUncertainty(
    uncertaintyNode: vtkMRMLScalarVolumeNode,
    synthesizedNode: vtkMRMLScalarVolumeNode,
    tumourSegmentationNode: vtkMRMLSegmentationNode | None = None,
) -> UncertaintySummary:
    """The mean uncertainty inside the brain and, given the tumour segmentation, inside the tumour.

    Args:
        uncertaintyNode: the uncertainty map.
        synthesizedNode: the synthesized volume, on the map's grid; the brain is where it is not 0
            (a synthesis is exactly 0 outside the brain it was made for).
        tumourSegmentationNode: the segmentation of the chain (every segment counts as tumour), or None.

    Raises:
        ValueError: the map and the synthesized volume are on different grids.
    """
    from cones.data import grid_difference

    difference = grid_difference(volumes.gridOf(uncertaintyNode), volumes.gridOf(synthesizedNode))
    if difference is not None:
        raise ValueError(
            f"the uncertainty map {volumes.volumeLabel(uncertaintyNode)} is not on the grid of "
            f"{volumes.volumeLabel(synthesizedNode)}: {difference}"
        )
    values = slicer.util.arrayFromVolume(uncertaintyNode)
    brain = slicer.util.arrayFromVolume(synthesizedNode) > 0
    summary = UncertaintySummary(_mean(values, brain), int(brain.sum()))
    if tumourSegmentationNode is None:
        return summary
    tumour = tumourMask(tumourSegmentationNode, uncertaintyNode)
    return UncertaintySummary(summary.brainMean, summary.brainVoxels, _mean(values, tumour), int(tumour.sum()))


def describeUncertainty(summary: UncertaintySummary) -> str:
    """The summary as the panel shows it, e.g. ``"Mean uncertainty (synthesized volume's scale): 12.3 in the brain,
    25.1 in the tumour (812 voxels)."``"""
    if summary.brainMean is None:
        return "Mean uncertainty: none to show; the synthesized volume has no brain voxels."
    parts = [f"{summary.brainMean:.3g} in the brain"]
    if summary.tumourVoxels is not None:
        parts.append(
            "none in the tumour, whose segmentation is empty"
            if summary.tumourMean is None
            else f"{summary.tumourMean:.3g} in the tumour ({summary.tumourVoxels} voxels)"
        )
    return f"Mean uncertainty (synthesized volume's scale): {', '.join(parts)}."
