"""A generated sample case in the scene, so that a new user can try the module with nothing of their own.

``cones sample-data`` builds a BraTS-style glioma case from real brain anatomy (the MNI template
shipped inside nilearn; see :mod:`cones.sample_data`): T1, T2 and FLAIR to synthesize from, and the
case's own T1ce to compare the synthesized one with. A BraTS-sized case takes about half a minute
to generate, so it is made in a background process like a synthesis; the volumes reach the scene in
the job's end callback, and the generated files go with the job's work folder (the volumes live on
in the scene, and are saved with it if the user saves it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import SimpleITK as sitk
from CoNeSCommon.jobs import (
    BackgroundLauncher,
    JobStatus,
    ProcessJob,
    ProcessStarter,
    conesCommand,
    conesEnvironment,
    startPlainProcess,
)
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLScene

from cones.sequences import Sequence
from CoNeSSynthesisLib import volumes

__all__ = [
    "SAMPLE_DATA_REQUIREMENTS",
    "SAMPLE_SEQUENCES",
    "SampleCaseJob",
    "addSampleCase",
    "sampleCaseFolder",
    "sampleDataCommand",
]

logger = logging.getLogger(__name__)

SAMPLE_DATA_REQUIREMENTS = ("nilearn>=0.10",)
"""What ``cones sample-data`` needs beyond the module's requirements (pyproject's ``sample`` extra):
nilearn ships the template anatomy, so generating needs no download."""

SAMPLE_SEQUENCES = (Sequence.T1, Sequence.T2, Sequence.FLAIR, Sequence.T1CE)
"""The sequences added to the scene: the bundled model's sources, then the T1ce to compare with."""

_CASES_FOLDER_NAME = "cases"


def sampleDataCommand(
    python: str,
    outputFolder: Path,
    seed: int = 0,
    size: tuple[int, int, int] | None = None,
    spacingMm: float | None = None,
) -> list[str]:
    """``python -m cones.cli sample-data`` writing one case into ``outputFolder``.

    Args:
        python: the interpreter that runs ``cones``.
        outputFolder: the dataset folder; the case is written into a folder of its own inside it.
        seed: which case; the same seed gives the same case.
        size: the grid in voxels, (x, y, z) as in the NIfTI files; ``None`` for BraTS's 240 x 240 x 155.
        spacingMm: the isotropic voxel size; ``None`` for BraTS's 1 mm.

    Raises:
        ValueError: the command line refuses the arguments (argparse's message).
    """
    arguments = ["sample-data", "--out", str(outputFolder), "--cases", "1", "--seed", str(seed)]
    if size is not None:
        arguments += ["--size", "x".join(str(voxels) for voxels in size)]
    if spacingMm is not None:
        arguments += ["--spacing", str(spacingMm)]
    return conesCommand(python, arguments)


def sampleCaseFolder(datasetFolder: Path) -> Path:
    """The one case folder ``cones sample-data --cases 1`` wrote into ``datasetFolder``.

    Raises:
        RuntimeError: there is not exactly one folder (the generator did not write what it said).
    """
    folders = sorted(path for path in datasetFolder.iterdir() if path.is_dir()) if datasetFolder.is_dir() else []
    if len(folders) != 1:
        raise RuntimeError(f"expected one generated case folder in {str(datasetFolder)!r}, found {len(folders)}")
    return folders[0]


def addSampleCase(scene: vtkMRMLScene, caseFolder: Path) -> dict[Sequence, vtkMRMLScalarVolumeNode]:
    """Add the sequences of a case folder in BraTS layout to the scene, as Slicer would name the loaded files.

    The nodes are named after their files (``"CONES-SAMPLE-000_t1"``), so the synthesized volume is
    named after the case (``"CONES-SAMPLE-000 T1ce (synthesized)"``) as for any loaded BraTS case.
    Every file is read before the first node is added: a missing or unreadable file adds nothing.

    Args:
        scene: the scene to add the volumes to.
        caseFolder: ``<case>/<case>_<sequence>.nii.gz`` files, one for each of :data:`SAMPLE_SEQUENCES`.

    Returns:
        The new volume nodes, keyed by sequence in :data:`SAMPLE_SEQUENCES` order.

    Raises:
        RuntimeError: a file is missing or cannot be read; the message names it.
    """
    caseId = caseFolder.name
    images = {}
    for sequence in SAMPLE_SEQUENCES:
        path = caseFolder / f"{caseId}_{sequence.value}.nii.gz"
        try:
            images[sequence] = sitk.ReadImage(str(path))
        except RuntimeError as error:
            raise RuntimeError(f"cannot load the sample {sequence.display_name} {str(path)!r}: {error}") from None
    nodes = {}
    for sequence, image in images.items():
        name = scene.GenerateUniqueName(f"{caseId}_{sequence.value}")
        nodes[sequence] = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
        volumes.updateVolumeFromImage(nodes[sequence], image)
        nodes[sequence].CreateDefaultDisplayNodes()
    return nodes


class SampleCaseJob:
    """Generate a sample case in a background process and add its volumes to the scene when it succeeds.

    Args:
        scene: the scene the volumes are added to.
        workDirectory: an empty folder the job owns and deletes when it ends (generated files included).
        python: the interpreter that runs ``cones`` (:func:`~CoNeSCommon.jobs.pythonInterpreter`).
        seed, size, spacingMm: which case, on which grid (see :func:`sampleDataCommand`).
        onLog: called with each output line of the generator.
        onDone: called once with the job when it has ended; on success its volumes are in the scene.
    """

    def __init__(
        self,
        scene: vtkMRMLScene,
        workDirectory: Path,
        python: str,
        *,
        seed: int = 0,
        size: tuple[int, int, int] | None = None,
        spacingMm: float | None = None,
        onLog: Callable[[str], None] | None = None,
        onDone: Callable[[SampleCaseJob], None] | None = None,
    ) -> None:
        self.scene = scene
        self.volumes: dict[Sequence, vtkMRMLScalarVolumeNode] = {}
        self._datasetFolder = workDirectory / _CASES_FOLDER_NAME
        self._onDone = onDone
        self.process = ProcessJob(
            sampleDataCommand(python, self._datasetFolder, seed, size, spacingMm),
            conesEnvironment(),
            workDirectory=workDirectory,
            onLog=onLog,
            onSucceeded=self._addVolumes,
            onFinished=self._finish,
        )

    @property
    def status(self) -> JobStatus:
        """Where the job stands; FAILED also when the generated files could not be loaded."""
        return self.process.status

    @property
    def errorMessage(self) -> str | None:
        """Why the job did not succeed, or None."""
        return self.process.errorMessage

    def run(self, startProcess: ProcessStarter = startPlainProcess) -> dict[Sequence, vtkMRMLScalarVolumeNode]:
        """Run to the end in the calling thread; returns the volumes (empty unless succeeded)."""
        self.process.run(startProcess)
        return self.volumes

    def start(self, launcher: BackgroundLauncher) -> None:
        """Start in the background; ``onDone`` tells when it has ended."""
        self.process.start(launcher)

    def cancel(self) -> None:
        """Stop generating; nothing is added to the scene."""
        self.process.cancel()

    def discard(self) -> None:
        """Stop and delete the work folder now, adding nothing (the application is closing; see
        :meth:`~CoNeSCommon.jobs.ProcessJob.discard`)."""
        self.process.discard()

    def raiseForStatus(self) -> None:
        """Raise unless the job succeeded (see :meth:`~CoNeSCommon.jobs.ProcessJob.raiseForStatus`)."""
        self.process.raiseForStatus()

    def _addVolumes(self, process: ProcessJob) -> None:
        self.volumes = addSampleCase(self.scene, sampleCaseFolder(self._datasetFolder))
        logger.info("added the sample case: %s", ", ".join(node.GetName() for node in self.volumes.values()))

    def _finish(self, process: ProcessJob) -> None:
        if self._onDone is not None:
            self._onDone(self)
