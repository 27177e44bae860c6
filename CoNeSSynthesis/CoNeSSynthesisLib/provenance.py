"""Marking a synthesized volume node as synthetic: node attributes, its subject-hierarchy place and DICOM export tags.

The file the process writes says it is synthetic (:mod:`cones.marking`); once its voxels are in a
node, the node must say so too, wherever Slicer takes it next:

* node attributes ``CoNeS.Synthetic`` (the marking), ``CoNeS.ModelSHA256`` and
  ``CoNeS.SourceNodeIDs``. Slicer's NRRD storage node (``vtkMRMLNRRDStorageNode``) writes every
  node attribute as a NRRD key and reads keys back as attributes; the default scalar-volume storage
  node (``vtkMRMLVolumeArchetypeStorageNode``) writes none;
* the subject-hierarchy item goes beside the reference volume, under its study when it has one;
* the item's ``DICOM.*`` attributes are the series tags Slicer's DICOM export (the scalar volume
  plugin) takes over its defaults: a ``SeriesDescription`` starting with ``SYNTHETIC``, a new
  ``SeriesNumber``, ``Modality`` MR, and CoNeS with the model's sha256 as ``Manufacturer`` and
  ``Model``. That exporter writes no ``ImageType`` of its own choosing, so ``DERIVED`` cannot be set
  through it; ``cones synthesize --output-format dicom`` writes it.

A tumour segmentation computed with a synthesized sequence carries the same attribute, and a tag on
every segment, which Slicer's ``.seg.nrrd`` writer keeps (:func:`markSegmentationFromSynthetic`).
"""

from __future__ import annotations

from collections.abc import Mapping

from slicer import (
    vtkMRMLScalarVolumeNode,
    vtkMRMLScene,
    vtkMRMLSegmentationNode,
    vtkMRMLSubjectHierarchyConstants,
    vtkMRMLSubjectHierarchyNode,
)

from cones.marking import SERIES_NUMBER_OFFSET, SHA_PREFIX_LENGTH, SYNTHETIC_KEY
from cones.sequences import Sequence

__all__ = [
    "MODEL_SHA256_ATTRIBUTE",
    "SOURCE_NODE_IDS_ATTRIBUTE",
    "SYNTHETIC_ATTRIBUTE",
    "markSegmentationFromSynthetic",
    "markSynthesizedVolume",
]

SYNTHETIC_ATTRIBUTE = SYNTHETIC_KEY
"""The node attribute holding the marking; the same key as in the NRRD header, so a NRRD storage node keeps it."""
MODEL_SHA256_ATTRIBUTE = "CoNeS.ModelSHA256"
SOURCE_NODE_IDS_ATTRIBUTE = "CoNeS.SourceNodeIDs"
"""``sequence=nodeID`` pairs, space-separated, in the model's channel order."""
_DICOM = vtkMRMLSubjectHierarchyConstants.GetDICOMAttributePrefix()


def markSynthesizedVolume(
    scene: vtkMRMLScene,
    outputNode: vtkMRMLScalarVolumeNode,
    sources: Mapping[Sequence, vtkMRMLScalarVolumeNode],
    marking: str,
    modelSha256: str,
) -> int:
    """Give a synthesized volume its provenance attributes, subject-hierarchy place and DICOM export tags.

    Args:
        scene: the scene of the volumes.
        outputNode: the synthesized volume.
        sources: the source volumes in the model's order; the first is the reference.
        marking: ``SYNTHETIC <target> - CoNeS <sha prefix>`` (:func:`cones.marking.synthetic_marking`).
        modelSha256: the model file's sha256.

    Returns:
        The output's subject-hierarchy item.
    """
    outputNode.SetAttribute(SYNTHETIC_ATTRIBUTE, marking)
    outputNode.SetAttribute(MODEL_SHA256_ATTRIBUTE, modelSha256)
    outputNode.SetAttribute(
        SOURCE_NODE_IDS_ATTRIBUTE, " ".join(f"{sequence.value}={node.GetID()}" for sequence, node in sources.items())
    )
    hierarchy = vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    referenceItem = _itemOf(hierarchy, next(iter(sources.values())))
    item = _itemOf(hierarchy, outputNode)
    hierarchy.SetItemParent(item, hierarchy.GetItemParent(referenceItem))
    referenceNumber = hierarchy.GetItemAttribute(referenceItem, _DICOM + "SeriesNumber")
    tags = {
        "SeriesDescription": marking,
        "SeriesNumber": str((int(referenceNumber) if referenceNumber.isdigit() else 0) + SERIES_NUMBER_OFFSET),
        "Modality": "MR",
        "Manufacturer": "CoNeS (synthetic image)",
        "Model": f"CoNeS {modelSha256[:SHA_PREFIX_LENGTH]}",
    }
    for tag, value in tags.items():
        hierarchy.SetItemAttribute(item, _DICOM + tag, value)
    return item


def markSegmentationFromSynthetic(segmentationNode: vtkMRMLSegmentationNode, marking: str) -> None:
    """Mark a segmentation computed with a synthesized sequence: a node attribute and a tag on every segment.

    Segment tags are what Slicer's ``.seg.nrrd`` writer keeps of a segmentation's own metadata
    (``SegmentN_Tags``), so a saved segmentation still says what it was computed from.

    Args:
        segmentationNode: the tumour segmentation.
        marking: ``SEGMENTATION FROM SYNTHETIC <target> - CoNeS <sha prefix>``
            (:func:`cones.marking.segmentation_marking`).
    """
    segmentationNode.SetAttribute(SYNTHETIC_ATTRIBUTE, marking)
    segments = segmentationNode.GetSegmentation()
    for index in range(segments.GetNumberOfSegments()):
        segments.GetNthSegment(index).SetTag(SYNTHETIC_ATTRIBUTE, marking)


def _itemOf(hierarchy: vtkMRMLSubjectHierarchyNode, node: vtkMRMLScalarVolumeNode) -> int:
    """The node's item; created under the scene when missing (Slicer's application adds one per node, bare MRML not)."""
    return hierarchy.GetItemByDataNode(node) or hierarchy.CreateItem(hierarchy.GetSceneItemID(), node)
