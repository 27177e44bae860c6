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
every segment, which Slicer's ``.seg.nrrd`` writer keeps (:func:`markSegmentationFromSynthetic`). A map
computed from a synthesized volume (its uncertainty, its virtual enhancement) is marked as the volume
itself is, with its own marking and series (:func:`markDerivedVolume`).
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
    "markDerivedVolume",
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
    tags = {
        "SeriesDescription": marking,
        "SeriesNumber": str(_seriesNumber(hierarchy, referenceItem) + SERIES_NUMBER_OFFSET),
        "Modality": "MR",
        "Manufacturer": "CoNeS (synthetic image)",
        "Model": f"CoNeS {modelSha256[:SHA_PREFIX_LENGTH]}",
    }
    return _placeBeside(hierarchy, outputNode, referenceItem, tags)


def markDerivedVolume(
    scene: vtkMRMLScene,
    mapNode: vtkMRMLScalarVolumeNode,
    synthesizedNode: vtkMRMLScalarVolumeNode,
    marking: str,
    seriesNumberOffset: int,
) -> int:
    """Mark a map computed from a synthesized volume (its uncertainty, its virtual enhancement) as that volume is.

    The map gets its own marking, the synthesized volume's model and sources, a subject-hierarchy
    place beside it, and DICOM export tags of its own: the marking as the series description and the
    synthesized series' number plus ``seriesNumberOffset``, so that an exported map neither passes
    for an acquired series nor shares the synthesized one's number.

    Args:
        scene: the scene of the volumes.
        mapNode: the map's volume.
        synthesizedNode: the synthesized volume it was computed from, already marked
            (:func:`markSynthesizedVolume`).
        marking: e.g. ``UNCERTAINTY OF SYNTHETIC <target> - CoNeS <sha prefix>``
            (:func:`cones.marking.uncertainty_marking`, :func:`cones.marking.enhancement_marking`).
        seriesNumberOffset: added to the synthesized series' number.

    Returns:
        The map's subject-hierarchy item.
    """
    mapNode.SetAttribute(SYNTHETIC_ATTRIBUTE, marking)
    for attribute in (MODEL_SHA256_ATTRIBUTE, SOURCE_NODE_IDS_ATTRIBUTE):
        mapNode.SetAttribute(attribute, synthesizedNode.GetAttribute(attribute))
    hierarchy = vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    synthesizedItem = _itemOf(hierarchy, synthesizedNode)
    tags = {
        tag: hierarchy.GetItemAttribute(synthesizedItem, _DICOM + tag) for tag in ("Modality", "Manufacturer", "Model")
    }
    tags["SeriesDescription"] = marking
    tags["SeriesNumber"] = str(_seriesNumber(hierarchy, synthesizedItem) + seriesNumberOffset)
    return _placeBeside(hierarchy, mapNode, synthesizedItem, tags)


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


def _seriesNumber(hierarchy: vtkMRMLSubjectHierarchyNode, item: int) -> int:
    """The item's DICOM series number, 0 when it has none."""
    number = hierarchy.GetItemAttribute(item, _DICOM + "SeriesNumber")
    return int(number) if number.isdigit() else 0


def _placeBeside(
    hierarchy: vtkMRMLSubjectHierarchyNode, node: vtkMRMLScalarVolumeNode, besideItem: int, tags: dict[str, str]
) -> int:
    """Put the node's item under the parent of ``besideItem`` (its study, when it has one) with these DICOM tags."""
    item = _itemOf(hierarchy, node)
    hierarchy.SetItemParent(item, hierarchy.GetItemParent(besideItem))
    for tag, value in tags.items():
        hierarchy.SetItemAttribute(item, _DICOM + tag, value)
    return item


def _itemOf(hierarchy: vtkMRMLSubjectHierarchyNode, node: vtkMRMLScalarVolumeNode) -> int:
    """The node's item; created under the scene when missing (Slicer's application adds one per node, bare MRML not)."""
    return hierarchy.GetItemByDataNode(node) or hierarchy.CreateItem(hierarchy.GetSceneItemID(), node)
