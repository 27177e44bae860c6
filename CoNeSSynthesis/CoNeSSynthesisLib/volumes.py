"""MRML volume nodes <-> SimpleITK images with exact geometry, source checks and the output node.

MRML stores a volume's IJK-to-RAS matrix; ITK stores spacing, origin and direction in LPS. The two
differ only by the sign of the first two physical axes, so the conversion is a pair of exact
negations: any grid, oblique or left-handed, survives a round trip bit for bit. Voxel arrays are
(k, j, i) in both, so they need no reordering.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import numpy as np
import SimpleITK as sitk
import slicer
import slicer.util
import vtk
from slicer import vtkMRMLDisplayableNode, vtkMRMLScalarVolumeNode, vtkMRMLScene, vtkMRMLSubjectHierarchyConstants

from cones.sequences import Sequence, parse_sequence

__all__ = [
    "addRegisteredVolume",
    "attachNrrdStorage",
    "caseName",
    "checkOutputVolume",
    "checkSameGrid",
    "checkSameTransform",
    "gridOf",
    "imageFromVolume",
    "matchSourceVolumes",
    "needsPreparation",
    "removeNodes",
    "synthesizedVolumeName",
    "updateVolumeFromImage",
    "volumeLabel",
    "writeSynthesizedVolume",
]

RAS_FROM_LPS = np.diag([-1.0, -1.0, 1.0])
"""Flips the first two axes; it is its own inverse, so it also maps RAS to LPS."""

_NAME_SEPARATORS = r"[\s_.\-]"


def volumeLabel(volumeNode: vtkMRMLScalarVolumeNode) -> str:
    """How messages name a volume: its node name, quoted, as the user sees it in the scene."""
    return repr(volumeNode.GetName())


def _requireScalarVolume(volumeNode: vtkMRMLScalarVolumeNode) -> None:
    imageData = volumeNode.GetImageData()
    if imageData is None:
        raise ValueError(f"volume {volumeLabel(volumeNode)} has no voxels")
    if volumeNode.IsA("vtkMRMLLabelMapVolumeNode"):
        raise ValueError(f"volume {volumeLabel(volumeNode)} is a label map, not an MR image")
    if imageData.GetNumberOfScalarComponents() != 1:
        raise ValueError(
            f"volume {volumeLabel(volumeNode)} has {imageData.GetNumberOfScalarComponents()} components per voxel; "
            "an MR sequence must have one"
        )


def _directions(volumeNode: vtkMRMLScalarVolumeNode) -> np.ndarray:
    matrix = vtk.vtkMatrix4x4()
    volumeNode.GetIJKToRASDirectionMatrix(matrix)
    return slicer.util.arrayFromVTKMatrix(matrix)[:3, :3]


def _geometry(image: sitk.Image, volumeNode: vtkMRMLScalarVolumeNode) -> sitk.Image:
    image.SetSpacing(volumeNode.GetSpacing())
    image.SetOrigin(tuple(RAS_FROM_LPS @ np.asarray(volumeNode.GetOrigin())))
    image.SetDirection(tuple((RAS_FROM_LPS @ _directions(volumeNode)).ravel()))
    return image


def imageFromVolume(volumeNode: vtkMRMLScalarVolumeNode) -> sitk.Image:
    """A SimpleITK copy of a scalar volume's voxels (same pixel type) and geometry.

    Raises:
        ValueError: the node has no voxels, is a label map, or has several components per voxel.
    """
    _requireScalarVolume(volumeNode)
    return _geometry(sitk.GetImageFromArray(np.array(slicer.util.arrayFromVolume(volumeNode))), volumeNode)


def gridOf(volumeNode: vtkMRMLScalarVolumeNode) -> sitk.Image:
    """An image with the node's grid and one byte per voxel, for geometry comparisons without copying voxels."""
    _requireScalarVolume(volumeNode)
    return _geometry(sitk.Image(volumeNode.GetImageData().GetDimensions(), sitk.sitkUInt8), volumeNode)


def updateVolumeFromImage(volumeNode: vtkMRMLScalarVolumeNode, image: sitk.Image) -> None:
    """Replace a volume node's voxels and geometry by an image's, in one modification."""
    wasModifying = volumeNode.StartModify()
    volumeNode.SetSpacing(image.GetSpacing())
    volumeNode.SetOrigin(tuple(RAS_FROM_LPS @ np.asarray(image.GetOrigin())))
    volumeNode.SetIJKToRASDirections(RAS_FROM_LPS @ np.asarray(image.GetDirection()).reshape(3, 3))
    slicer.util.updateVolumeFromArray(volumeNode, sitk.GetArrayFromImage(image))
    volumeNode.EndModify(wasModifying)


def caseName(volumeName: str) -> str:
    """The case a volume belongs to: its name without a trailing sequence, as loaded files are named.

    ``"BraTS-042_t1"`` and ``"BraTS-GLI-00001-000-t1n"`` give their case ids; a name without a
    sequence suffix (``"MRHead"``) is the case itself, and a bare ``"T1"`` gives ``""``.
    """
    match = re.fullmatch(rf"(.*?){_NAME_SEPARATORS}*([^\s_.\-]+)", volumeName.strip())
    if match is None:
        return volumeName.strip()
    try:
        parse_sequence(match.group(2))
    except ValueError:
        return volumeName.strip()
    return match.group(1)


def synthesizedVolumeName(referenceNode: vtkMRMLScalarVolumeNode, target: Sequence) -> str:
    """``"<case> T1ce (synthesized)"``: the case of the reference source, then what was made."""
    return f"{caseName(referenceNode.GetName())} {target.display_name} (synthesized)".strip()


def matchSourceVolumes(
    required: tuple[Sequence, ...], volumes: Mapping[Sequence | str, vtkMRMLScalarVolumeNode | None]
) -> dict[Sequence, vtkMRMLScalarVolumeNode]:
    """Pick the volume of every source a model needs, in the model's channel order.

    Args:
        required: the model's source sequences (its card's ``sources``); the first is the reference grid.
        volumes: volumes keyed by any sequence spelling (``"t1"``, ``"T2"``, ``"t2f"``); extra ones
            and ``None`` values are ignored.

    Raises:
        ValueError: a key is no sequence, a needed volume is missing, one node is given for two
            sequences, or a volume is not a single-component scalar image.
    """
    given = {parse_sequence(name): node for name, node in volumes.items() if node is not None}
    missing = [sequence.display_name for sequence in required if sequence not in given]
    if missing:
        raise ValueError(f"the model needs a {', '.join(missing)} volume; select one for each of its sources")
    chosen = {sequence: given[sequence] for sequence in required}
    for sequence, node in chosen.items():
        _requireScalarVolume(node)
        twice = [other.display_name for other, otherNode in chosen.items() if otherNode is node and other != sequence]
        if twice:
            raise ValueError(
                f"volume {volumeLabel(node)} is selected for both {sequence.display_name} and {twice[0]}; "
                "each source needs its own sequence"
            )
    return chosen


def checkOutputVolume(
    outputNode: vtkMRMLScalarVolumeNode | None, sources: Mapping[Sequence, vtkMRMLScalarVolumeNode]
) -> None:
    """Refuse an output volume that is one of the sources: synthesis never overwrites its inputs.

    Raises:
        ValueError: naming the volume and the sequence it is the source of.
    """
    if outputNode is None:
        return
    for sequence, node in sources.items():
        if outputNode.GetID() == node.GetID():
            raise ValueError(
                f"the output volume {volumeLabel(node)} is the {sequence.display_name} source; "
                "choose another output volume or create a new one"
            )


def checkSameTransform(sources: Mapping[Sequence, vtkMRMLScalarVolumeNode]) -> None:
    """Refuse sources under different parent transforms.

    Voxels of sources under different transforms are not the same point of the head even on
    identical grids; under one shared transform (or none) they are, and the output gets that transform.

    Raises:
        ValueError: naming the two volumes and their transforms.
    """
    (referenceSequence, reference), *others = sources.items()
    for sequence, node in others:
        if node.GetTransformNodeID() != reference.GetTransformNodeID():
            raise ValueError(
                f"volume {volumeLabel(node)} ({sequence.display_name}) is under transform "
                f"{_transformName(node)} but {volumeLabel(reference)} ({referenceSequence.display_name}) is under "
                f"{_transformName(reference)}; harden the transforms first"
            )


def _transformName(volumeNode: vtkMRMLScalarVolumeNode) -> str:
    transform = volumeNode.GetParentTransformNode()
    return "none" if transform is None else repr(transform.GetName())


def checkSameGrid(sources: Mapping[Sequence, vtkMRMLScalarVolumeNode]) -> None:
    """Refuse sources that are not on the voxel grid of the first (reference) source.

    The model stacks the sources voxel by voxel, which only makes sense on one grid. The tolerance is
    the core's (:func:`cones.data.grid_difference`), so the module and the command line agree.

    Raises:
        ValueError: naming both volumes, their sequences, the property that differs and both values,
            and saying how to proceed.
    """
    from cones.data import grid_difference

    (referenceSequence, reference), *others = sources.items()
    referenceGrid = gridOf(reference)
    for sequence, node in others:
        difference = grid_difference(gridOf(node), referenceGrid)
        if difference is not None:
            raise ValueError(
                f"volume {volumeLabel(node)} ({sequence.display_name}) is not on the grid of {volumeLabel(reference)} "
                f"({referenceSequence.display_name}): {difference}; co-register the volumes, or allow resampling "
                f"onto the {referenceSequence.display_name} grid"
            )


_DICOM_UIDS = (
    vtkMRMLSubjectHierarchyConstants.GetDICOMUIDName(),
    vtkMRMLSubjectHierarchyConstants.GetDICOMInstanceUIDName(),
)
"""The subject-hierarchy UIDs Slicer's DICOM import gives a series item (DICOMLib/DICOMPlugin.py)."""
_DICOM_PREFIX = vtkMRMLSubjectHierarchyConstants.GetDICOMAttributePrefix()


def _unlinkFromAcquisition(scene: vtkMRMLScene, node: vtkMRMLScalarVolumeNode) -> None:
    """Cut a replaced volume from the scan it held: the file it was loaded from and its DICOM identity.

    Otherwise saving the scene would write the synthesized voxels into that file, replacing an
    acquired scan on disk, and a DICOM export or a DICOM-aware module would take the synthetic voxels
    for the acquired series (its series and instance UIDs, the ``DICOM.instanceUIDs`` attribute that
    the scalar volume plugin uses to find each slice in the database). Its series tags are then set
    anew by :func:`~CoNeSSynthesisLib.provenance.markSynthesizedVolume`.
    """
    storage = node.GetStorageNode()
    if storage is not None:
        node.SetAndObserveStorageNodeID(None)
        if not any(other.GetStorageNode() is storage for other in _volumeNodes(scene)):
            scene.RemoveNode(storage)
    for attribute in node.GetAttributeNames():
        if attribute.startswith(_DICOM_PREFIX):
            node.RemoveAttribute(attribute)
    hierarchy = scene.GetFirstNodeByClass("vtkMRMLSubjectHierarchyNode")  # none yet: no item has a UID either
    item = hierarchy.GetItemByDataNode(node) if hierarchy is not None else 0
    if not item:
        return
    for uidName in _DICOM_UIDS:
        hierarchy.RemoveItemUID(item, uidName)
    for attribute in hierarchy.GetItemAttributeNames(item):
        if attribute.startswith(_DICOM_PREFIX):
            hierarchy.RemoveItemAttribute(item, attribute)


def removeNodes(scene: vtkMRMLScene, nodes: Iterable[vtkMRMLDisplayableNode | None]) -> None:
    """Remove nodes from ``scene`` with their display and storage nodes, which removing a node leaves behind."""
    for node in nodes:
        if node is None or node.GetScene() is not scene:
            continue
        helpers = [node.GetNthDisplayNode(index) for index in range(node.GetNumberOfDisplayNodes())]
        helpers.append(node.GetStorageNode())
        scene.RemoveNode(node)
        for helper in helpers:
            if helper is not None and helper.GetScene() is scene:
                scene.RemoveNode(helper)


def attachNrrdStorage(scene: vtkMRMLScene, node: vtkMRMLScalarVolumeNode) -> None:
    """Give a synthetic volume a NRRD storage node (no file yet), so that Slicer's Save keeps its marking.

    The NRRD storage node writes every node attribute as a header key (``CoNeS.Synthetic`` among
    them) and reads it back. Without a storage node, Save makes the volume's default one
    (``vtkMRMLScalarVolumeNode::CreateDefaultStorageNode``: ``vtkMRMLVolumeArchetypeStorageNode``),
    which writes no attribute, so the saved file would no longer say it is synthetic.
    """
    storage = scene.AddNewNodeByClass("vtkMRMLNRRDStorageNode")
    node.SetAndObserveStorageNodeID(storage.GetID())


def _volumeNodes(scene: vtkMRMLScene) -> list[vtkMRMLScalarVolumeNode]:
    return [
        scene.GetNthNodeByClass(index, "vtkMRMLScalarVolumeNode")
        for index in range(scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode"))
    ]


def addRegisteredVolume(
    scene: vtkMRMLScene, image: sitk.Image, referenceNode: vtkMRMLScalarVolumeNode, sequence: Sequence
) -> vtkMRMLScalarVolumeNode:
    """Add a source registered onto the reference's grid as a new volume ``"<case> <sequence> (registered)"``."""
    name = scene.GenerateUniqueName(f"{caseName(referenceNode.GetName())} {sequence.display_name} (registered)".strip())
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    updateVolumeFromImage(node, image)
    node.SetAndObserveTransformNodeID(referenceNode.GetTransformNodeID())
    node.CreateDefaultDisplayNodes()
    return node


def needsPreparation(sources: Mapping[Sequence, vtkMRMLScalarVolumeNode]) -> bool:
    """Whether the chosen volumes look like raw scans: on different grids, or a head that is not skull-stripped.

    The panel turns "Prepare raw scans" on when this holds, so the usual case needs no thought.
    """
    from cones.preprocessing.brain_extraction import looks_skull_stripped

    chosen = {sequence: node for sequence, node in sources.items() if node is not None and node.GetImageData()}
    if not chosen:
        return False
    try:
        checkSameGrid(chosen)
    except ValueError:
        return True
    return not all(looks_skull_stripped(imageFromVolume(node)) for node in chosen.values())


def writeSynthesizedVolume(
    scene: vtkMRMLScene,
    image: sitk.Image,
    referenceNode: vtkMRMLScalarVolumeNode,
    target: Sequence,
    outputNode: vtkMRMLScalarVolumeNode | None = None,
) -> vtkMRMLScalarVolumeNode:
    """Put a synthesized image into the scene and return its node.

    Args:
        scene: the scene that holds the sources.
        image: the synthesized image (on the reference's grid).
        referenceNode: the first source; the output takes its parent transform and case name.
        target: the synthesized sequence, for the new node's name.
        outputNode: the node the user chose to replace; ``None`` adds a new node named
            ``"<case> <target> (synthesized)"``, so no existing node is touched unless chosen. A
            replaced node is unlinked from its file and its DICOM identity (see :func:`_unlinkFromAcquisition`).

    Returns:
        The node, with a NRRD storage node and no file (:func:`attachNrrdStorage`).
    """
    if outputNode is None:
        name = scene.GenerateUniqueName(synthesizedVolumeName(referenceNode, target))
        outputNode = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    else:
        _unlinkFromAcquisition(scene, outputNode)
    attachNrrdStorage(scene, outputNode)
    updateVolumeFromImage(outputNode, image)
    outputNode.SetAndObserveTransformNodeID(referenceNode.GetTransformNodeID())
    if outputNode.GetDisplayNode() is None:
        outputNode.CreateDefaultDisplayNodes()
    return outputNode
