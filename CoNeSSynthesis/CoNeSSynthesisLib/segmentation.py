"""Tumour label maps into MRML: a segmentation node with named, coloured NCR, ED and ET segments.

A label map file is just numbers; in Slicer a tumour segmentation is a segmentation node whose
segments carry the BraTS names and colours, can be edited in Segment Editor, and reference the
volume they were made on (its grid is the segmentation's reference geometry). The label map the
``cones`` process writes is on the grid of the first synthesis source, so that volume is the reference.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import SimpleITK as sitk
import slicer
import slicer.util
import vtk
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLScene, vtkMRMLSegmentationNode

from CoNeSSynthesisLib import volumes

if TYPE_CHECKING:
    from cones.segmentation.base import SegmentationInfo
    from cones.segmentation.labels import LabelSet

__all__ = [
    "BRAIN_COLOR",
    "SEGMENT_COLORS",
    "addBrainMaskSegmentation",
    "addSegmentation",
    "addTumourSegmentation",
    "readSegmentationInfo",
    "registerSegmentationConverters",
    "segmentationRequirements",
    "tumourSegmentationName",
]

SEGMENT_COLORS = {"NCR": (1.0, 0.0, 0.0), "ED": (0.0, 0.8, 0.0), "ET": (1.0, 0.9, 0.0)}
"""RGB of each BraTS class as BraTS figures draw them: necrosis red, oedema green, enhancing tumour yellow."""
_OTHER_COLOR = (0.5, 0.5, 0.5)
BRAIN_COLOR = (0.55, 0.7, 1.0)
"""A light blue that stays readable over grey-scale anatomy and apart from the tumour colours."""


def readSegmentationInfo(modelPath: str | Path) -> SegmentationInfo:
    """The sequences and labels of a segmentation model (any backend), read from its descriptions only.

    Raises:
        ValueError: no model was chosen, or the core refuses the path (it does not exist, is no
            segmentation model, or its description is invalid).
    """
    if Path(modelPath) == Path():
        raise ValueError(
            "choose a segmentation model: a 'cones train-seg' model file, a TorchScript or ONNX file with its "
            ".json sidecar, or a trained nnU-Net folder"
        )
    from cones.segmentation.loading import read_segmentation_info

    return read_segmentation_info(modelPath)


_BACKEND_REQUIREMENTS = {"onnx": ("onnxruntime>=1.18",), "nnunet": ("nnunetv2>=2.5",)}
"""What each segmentation backend needs beyond the module's requirements (``cones[onnx]``, ``cones[nnunet]`` in
pyproject.toml; the ``onnx`` package there serves exporting, not running). Installed only for a model that needs it,
on its first use and after asking, so that neither is installed for users who never choose such a model."""


def segmentationRequirements(modelPath: str | Path) -> tuple[str, ...]:
    """The packages the backend of a segmentation model needs beyond the module's requirements; none if unchosen.

    Told from the path alone (:func:`cones.segmentation.loading.segmentation_backend`), before anything is installed.

    Raises:
        ValueError: the path does not exist, or is a folder that is no trained nnU-Net folder.
    """
    if Path(modelPath) == Path():
        return ()
    from cones.segmentation.loading import segmentation_backend

    return _BACKEND_REQUIREMENTS.get(segmentation_backend(modelPath), ())


def tumourSegmentationName(referenceNode: vtkMRMLScalarVolumeNode) -> str:
    """``"<case> tumour segmentation"``, named after the case of the volume it was made on."""
    return f"{volumes.caseName(referenceNode.GetName())} tumour segmentation".strip()


def registerSegmentationConverters() -> None:
    """Register the binary-labelmap converter rules, unless something (Slicer's Segmentations module) has.

    Slicer registers them when its Segmentations module starts; without them a segmentation cannot
    even hold an empty binary labelmap. The slicer-core wheel, which runs the batch script and the
    tests without the application, starts no modules, so the rules are registered here once.
    """
    factory = slicer.vtkSegmentationConverterFactory.GetInstance()
    if not factory.GetConverterRules():
        factory.RegisterConverterRule(slicer.vtkBinaryLabelmapToClosedSurfaceConversionRule())
        factory.RegisterConverterRule(slicer.vtkClosedSurfaceToBinaryLabelmapConversionRule())


def _checkLabelMap(labelImage: sitk.Image, labels: LabelSet, referenceNode: vtkMRMLScalarVolumeNode) -> np.ndarray:
    from cones.data import grid_difference

    difference = grid_difference(labelImage, volumes.gridOf(referenceNode))
    if difference is not None:
        raise ValueError(f"the label map is not on the grid of {volumes.volumeLabel(referenceNode)}: {difference}")
    array = sitk.GetArrayFromImage(labelImage)
    unknown = sorted(set(np.unique(array).tolist()) - set(labels.values))
    if unknown:
        raise ValueError(f"the label map holds values {unknown} that are none of the model's labels {labels.values}")
    return array


def addTumourSegmentation(
    scene: vtkMRMLScene,
    labelImage: sitk.Image,
    labels: LabelSet,
    referenceNode: vtkMRMLScalarVolumeNode,
    name: str | None = None,
) -> vtkMRMLSegmentationNode:
    """Add a label map to ``scene`` as a segmentation node with one named, coloured segment per class.

    Args:
        scene: the scene that holds ``referenceNode``.
        labelImage: the label map, on the grid of ``referenceNode``.
        labels: what each value means (the model's :class:`~cones.segmentation.labels.LabelSet`);
            every class but the background becomes a segment (possibly empty), in this order.
        referenceNode: the volume the segmentation was made on: its reference geometry, and its
            parent transform is the segmentation's.
        name: the node's name; default ``"<case> tumour segmentation"`` (made unique in the scene).

    Returns:
        The new segmentation node, with display nodes; segment IDs are the class names.

    Raises:
        ValueError: the label map is not on the reference's grid, or holds values ``labels`` does not name.
        RuntimeError: Slicer could not import the label map (nothing is left in the scene then).
    """
    array = _checkLabelMap(labelImage, labels, referenceNode)
    # The import maps label value i (1..N) to the i-th listed segment, so classes get consecutive values.
    consecutive = np.zeros(array.shape, dtype=np.uint8)
    for index, value in enumerate(labels.values[1:], start=1):
        consecutive[array == value] = index
    segments = [(className, SEGMENT_COLORS.get(className, _OTHER_COLOR)) for className in labels.names[1:]]
    return addSegmentation(scene, consecutive, segments, referenceNode, name or tumourSegmentationName(referenceNode))


def addBrainMaskSegmentation(
    scene: vtkMRMLScene, maskImage: sitk.Image, referenceNode: vtkMRMLScalarVolumeNode
) -> vtkMRMLSegmentationNode:
    """Add a brain mask (on the reference's grid) as a segmentation node ``"<case> brain mask"`` with a "Brain" segment.

    Raises:
        ValueError: the mask is not on the reference's grid.
        RuntimeError: Slicer could not import it.
    """
    from cones.data import grid_difference

    difference = grid_difference(maskImage, volumes.gridOf(referenceNode))
    if difference is not None:
        raise ValueError(f"the brain mask is not on the grid of {volumes.volumeLabel(referenceNode)}: {difference}")
    array = (sitk.GetArrayFromImage(maskImage) > 0).astype(np.uint8)
    name = f"{volumes.caseName(referenceNode.GetName())} brain mask"
    return addSegmentation(scene, array, [("Brain", BRAIN_COLOR)], referenceNode, name)


def addSegmentation(
    scene: vtkMRMLScene,
    consecutive: np.ndarray,
    segments: list[tuple[str, tuple[float, float, float]]],
    referenceNode: vtkMRMLScalarVolumeNode,
    name: str,
) -> vtkMRMLSegmentationNode:
    """Add a label array whose value i (1..N) is the i-th of ``segments`` (name, colour) as a segmentation node.

    Raises:
        RuntimeError: Slicer could not import the label map (nothing is left in the scene then).
    """
    registerSegmentationConverters()
    segmentationNode = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", scene.GenerateUniqueName(name))
    segmentationNode.SetReferenceImageGeometryParameterFromVolumeNode(referenceNode)
    segmentationNode.SetAndObserveTransformNodeID(referenceNode.GetTransformNodeID())
    segmentIds = vtk.vtkStringArray()
    for segmentName, color in segments:
        segmentIds.InsertNextValue(segmentationNode.GetSegmentation().AddEmptySegment(segmentName, segmentName, color))
    labelmapNode = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode")
    # The import resamples a label map by the transform between its parent and the segmentation's
    # (vtkSlicerSegmentationsModuleLogic::ImportLabelmapToSegmentationNode); under the reference's transform
    # there is none, and the voxels stay on the reference's grid.
    labelmapNode.SetAndObserveTransformNodeID(referenceNode.GetTransformNodeID())
    try:
        matrix = vtk.vtkMatrix4x4()
        referenceNode.GetIJKToRASMatrix(matrix)
        labelmapNode.SetIJKToRASMatrix(matrix)
        slicer.util.updateVolumeFromArray(labelmapNode, consecutive)
        imported = slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(
            labelmapNode, segmentationNode, segmentIds
        )
    finally:
        scene.RemoveNode(labelmapNode)
    if not imported:
        scene.RemoveNode(segmentationNode)
        raise RuntimeError(f"Slicer could not import the label map into {segmentationNode.GetName()!r}")
    segmentationNode.CreateDefaultDisplayNodes()
    return segmentationNode
