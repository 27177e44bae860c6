"""The input checks for volumes in the scene: the panel lists them before Apply, and the job's after it.

The checks are :func:`cones.domain.check_inputs`, the ones ``cones synthesize`` runs; they need only
numpy and SimpleITK, so they run in Slicer's own process whenever a selector changes. After a
synthesis the process's own report (which, with preparation, also covers the prepared sources) is
read back from the sidecar it writes beside its output (:func:`cones.marking.write_sidecar`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from cones.domain.checks import InputCheckReport, Preparation, Severity, check_inputs
from cones.sequences import Sequence
from CoNeSSynthesisLib import volumes

if TYPE_CHECKING:
    from slicer import vtkMRMLScalarVolumeNode

    from cones.checkpoint import ModelCard

__all__ = ["checkInputVolumes", "describeChecks", "reportFromSidecar"]

_MARKS = {Severity.ERROR: "Error", Severity.WARNING: "Warning"}


def checkInputVolumes(
    card: ModelCard, sources: Mapping[Sequence, vtkMRMLScalarVolumeNode], prepare: bool
) -> InputCheckReport:
    """Check the chosen source volumes as ``cones synthesize`` will (``prepare``: as with ``--prepare``).

    Raises:
        ValueError: a node has no voxels or is not a scalar volume.
    """
    images = {sequence: volumes.imageFromVolume(node) for sequence, node in sources.items()}
    return check_inputs(card, images, Preparation.PENDING if prepare else Preparation.AS_GIVEN)


def reportFromSidecar(record: Mapping[str, object]) -> InputCheckReport | None:
    """The input-check report in the sidecar ``cones synthesize`` wrote beside its output, or None without one."""
    section = record.get("input_checks")
    return None if section is None else InputCheckReport.from_dict(section)


def describeChecks(report: InputCheckReport, sources: Mapping[Sequence, vtkMRMLScalarVolumeNode]) -> str:
    """The report as the panel shows it: one line per finding, naming the volumes as the scene does.

    Sequences in the messages are the model's names; each finding is followed by the volumes it is about.
    """
    if not report.results:
        passed = f"All {len(report.checked)} input checks passed."
        if any("--prepare" in why for why in report.skipped.values()):
            passed += " The contrast and intensity checks run on the brain, once it is extracted."
        return passed
    lines = []
    for finding in report.results:
        named = ", ".join(volumes.volumeLabel(sources[s]) for s in finding.sequences if s in sources)
        lines.append(f"{_MARKS[finding.severity]}: {finding.message}" + (f" [{named}]" if named else ""))
    return "\n".join(lines)
