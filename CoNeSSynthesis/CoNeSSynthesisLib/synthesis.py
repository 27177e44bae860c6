"""One synthesis from MRML volumes: check the request, run ``cones synthesize``, put the result into MRML.

The check happens before any process starts, with messages that name the scene's volumes. The
process reads the sources from files written into a work folder and writes the result there; the
result is loaded into the scene only when the process has succeeded, and the folder is deleted
whatever happened. With a segmentation model, the same process then segments the tumour on the
sources completed by the synthesized sequence (``cones synthesize --segment``), and the label map
becomes a segmentation node (:mod:`CoNeSSynthesisLib.segmentation`). The uncertainty and virtual
enhancement maps (``--uncertainty-output``, ``--enhancement-output``) become marked volumes beside the
synthesized one (:mod:`CoNeSSynthesisLib.trust`).
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import SimpleITK as sitk
from CoNeSCommon.jobs import (
    BackgroundLauncher,
    Device,
    JobStatus,
    ProcessJob,
    ProcessStarter,
    Progress,
    conesCommand,
    conesEnvironment,
    startPlainProcess,
)
from CoNeSCommon.location import bundledModelPath
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLScene

from cones.precision import Precision, parse_precision
from cones.sequences import Sequence
from cones.trust.cli import makes_t1ce_from_t1
from CoNeSSynthesisLib import inputchecks, provenance, segmentation, trust, volumes

if TYPE_CHECKING:
    from slicer import vtkMRMLSegmentationNode

    from cones.checkpoint import ModelCard
    from cones.domain.checks import InputCheckReport
    from cones.segmentation.base import SegmentationInfo

__all__ = [
    "OUTPUT_FILE_NAME",
    "SEGMENTATION_FILE_NAME",
    "SynthesisJob",
    "SynthesisRequest",
    "checkEnhancementModel",
    "prepareSynthesis",
    "readModelCard",
]

logger = logging.getLogger(__name__)

OUTPUT_FILE_NAME = "synthesized.nrrd"
SEGMENTATION_FILE_NAME = "segmentation.nrrd"
BRAIN_MASK_FILE_NAME = "brain_mask.nrrd"
PREPARED_FOLDER_NAME = "prepared"


def readModelCard(modelPath: str | Path) -> ModelCard:
    """The card of a model file (which sources, in which order, and which target), without building the model.

    The card is read without importing torch (:func:`cones.checkpoint.read_model_card_without_torch`):
    the panel reads it in Slicer's own process whenever a model is chosen, where torch must not run
    (and may not be installed yet), and only the archive's small pickle is read, not the weights.

    Raises:
        ValueError: the file does not exist (saying so plainly when it is the bundled model that is
            missing), or the core refuses it (:class:`cones.checkpoint.CheckpointError`).
    """
    path = Path(modelPath)
    if not path.is_file() and path == bundledModelPath():
        raise ValueError(
            f"the bundled model {str(path)!r} is not part of this installation; choose a model file "
            "(one written by 'cones train', e.g. RUN/best.pt)"
        )
    if not path.is_file():
        raise ValueError(f"the model file {str(path)!r} does not exist; choose a CoNeS model file (.pt)")
    from cones.checkpoint import read_model_card_without_torch

    return read_model_card_without_torch(path)


@dataclass(frozen=True)
class SynthesisRequest:
    """A checked synthesis request.

    Attributes:
        modelPath: the model file.
        sources: one volume per model source, in the model's channel order; the first is the
            reference grid of the output.
        target: the sequence the model synthesizes.
        outputNode: the volume the user chose to replace, or ``None`` for a new volume.
        device: where the network runs.
        precision: the network's number format (``cones synthesize --precision``).
        allowResampling: resample sources on other grids onto the reference instead of refusing them.
        segmentation: the segmentation model to run after synthesis, or ``None``.
        prepare: raw scans: co-register the sources to the reference and extract the brain first
            (``cones synthesize --prepare``); implies resampling.
        addPreparedInputs: with ``prepare``, also add the brain mask (a segmentation) and the
            registered sources (new volumes) to the scene.
        strictInputChecks: refuse the sources on a warning of the input checks too (``--strict``).
        uncertaintyMap: also make the voxel-wise uncertainty map (``--uncertainty-output``: one more
            network pass per source).
        enhancementMap: also make the virtual enhancement map, synthesized T1ce minus T1
            (``--enhancement-output``).
    """

    modelPath: Path
    sources: Mapping[Sequence, vtkMRMLScalarVolumeNode]
    target: Sequence
    outputNode: vtkMRMLScalarVolumeNode | None = None
    device: Device = Device.AUTO
    allowResampling: bool = False
    segmentation: SegmentationInfo | None = None
    prepare: bool = False
    addPreparedInputs: bool = False
    strictInputChecks: bool = False
    precision: Precision = Precision.AUTO
    uncertaintyMap: bool = False
    enhancementMap: bool = False

    @property
    def referenceNode(self) -> vtkMRMLScalarVolumeNode:
        """The first source: its grid, transform and case name are the output's."""
        return next(iter(self.sources.values()))

    @property
    def maps(self) -> tuple[trust.MapKind, ...]:
        """The maps asked for, uncertainty first."""
        asked = {trust.UNCERTAINTY: self.uncertaintyMap, trust.ENHANCEMENT: self.enhancementMap}
        return tuple(kind for kind, wanted in asked.items() if wanted)


def prepareSynthesis(
    modelPath: str | Path,
    sourceVolumes: Mapping[Sequence | str, vtkMRMLScalarVolumeNode | None],
    outputNode: vtkMRMLScalarVolumeNode | None = None,
    device: Device | str = Device.AUTO,
    allowResampling: bool = False,
    segmentationModelPath: str | Path | None = None,
    prepare: bool = False,
    addPreparedInputs: bool = False,
    strictInputChecks: bool = False,
    precision: Precision | str = Precision.AUTO,
    uncertaintyMap: bool = False,
    enhancementMap: bool = False,
) -> SynthesisRequest:
    """Check a request against the model's card and the scene, before any process starts.

    Args:
        modelPath: the model file.
        sourceVolumes: volumes keyed by sequence name (``{"t1": node, "t2": node, "flair": node}``).
        outputNode: an existing volume to replace, or ``None`` to add a new one.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        allowResampling: accept sources on other grids (they are resampled onto the first source).
        segmentationModelPath: segment the tumour after synthesis with this model (a ``cones train-seg``
            file, a TorchScript or ONNX file with its sidecar, or an nnU-Net folder); it gets the
            model's sources and the synthesized sequence.
        prepare: raw scans on grids of their own: co-register and extract the brain before synthesis.
        addPreparedInputs: with ``prepare``, also add the brain mask and the registered sources.
        strictInputChecks: let a warning of the input checks refuse the sources, as an error does.
        precision: ``"auto"``, ``"fp32"`` or ``"bf16"``.
        uncertaintyMap: also make the voxel-wise uncertainty map of the synthesis.
        enhancementMap: also make the virtual enhancement map (synthesized T1ce minus T1).

    Raises:
        ValueError: the model file is refused or synthesizes several sequences, a source is missing
            or unusable, the output is a source, the sources are under different transforms, or
            (without ``allowResampling`` or ``prepare``) on different grids, ``addPreparedInputs``
            without ``prepare``; the segmentation model is refused or
            needs a sequence that is neither a source nor synthesized; the enhancement map for a model
            that does not make T1ce from T1. Each message names the volumes.
    """
    card = readModelCard(modelPath)
    if len(card.targets) != 1:
        names = ", ".join(target.display_name for target in card.targets)
        raise ValueError(f"the model synthesizes {len(card.targets)} sequences ({names}); this module makes one")
    if enhancementMap:
        checkEnhancementModel(card)
    sources = volumes.matchSourceVolumes(card.sources, sourceVolumes)
    volumes.checkOutputVolume(outputNode, sources)
    volumes.checkSameTransform(sources)
    if addPreparedInputs and not prepare:
        raise ValueError("the brain mask and registered sources come from preparing raw scans; turn preparation on")
    if not (allowResampling or prepare):
        volumes.checkSameGrid(sources)
    info = None
    if segmentationModelPath is not None:
        from cones.segmentation.chain import check_segmentation_inputs

        info = segmentation.readSegmentationInfo(segmentationModelPath)
        check_segmentation_inputs(info, given=sources, synthesized=card.targets)
    return SynthesisRequest(
        Path(modelPath), sources, card.targets[0], outputNode, Device(device), allowResampling, info, prepare,
        addPreparedInputs, strictInputChecks, parse_precision(precision), uncertaintyMap, enhancementMap,
    )  # fmt: skip


def checkEnhancementModel(card: ModelCard) -> None:
    """Refuse the virtual enhancement map for a model that does not make T1ce from T1 (the map is their difference).

    Raises:
        ValueError: naming what the model makes, and from what.
    """
    if not makes_t1ce_from_t1(card):
        sources = ", ".join(source.display_name for source in card.sources)
        raise ValueError(
            f"the virtual enhancement map is synthesized T1ce minus T1, but the model makes "
            f"{card.targets[0].display_name} from {sources}; untick 'Virtual enhancement map' or choose a T1ce "
            "model with a T1 source"
        )


def _writeSources(sources: Mapping[Sequence, vtkMRMLScalarVolumeNode], folder: Path) -> dict[Sequence, Path]:
    """Write each source as uncompressed NRRD (fast, exact geometry) for the process to read."""
    paths = {}
    for sequence, node in sources.items():
        paths[sequence] = folder / f"{sequence.value}.nrrd"
        sitk.WriteImage(volumes.imageFromVolume(node), str(paths[sequence]), useCompression=False)
    return paths


def _command(
    python: str, request: SynthesisRequest, inputs: Mapping[Sequence, Path], output: Path, segmentationOutput: Path
) -> list[str]:
    arguments = [
        "synthesize",
        "--model", str(request.modelPath),
        "--input", *(f"{sequence.value}={path}" for sequence, path in inputs.items()),
        "--output", str(output),
        "--device", request.device.value,
        "--precision", request.precision.value,
    ]  # fmt: skip
    if request.allowResampling:
        arguments.append("--resample")
    if request.prepare:
        arguments.append("--prepare")
    if request.strictInputChecks:
        arguments.append("--strict")
    if request.addPreparedInputs:
        folder = output.parent
        arguments += [
            "--brain-mask-output", str(folder / BRAIN_MASK_FILE_NAME),
            "--prepared-output-dir", str(folder / PREPARED_FOLDER_NAME),
        ]  # fmt: skip
    if request.segmentation is not None:
        arguments += ["--segment", str(request.segmentation.source), "--segmentation-output", str(segmentationOutput)]
    for kind in request.maps:
        arguments += [kind.option, str(_mapPath(output.parent, kind))]
    return conesCommand(python, arguments)


def _mapPath(folder: Path, kind: trust.MapKind) -> Path:
    return folder / f"{kind.section}.nrrd"


class SynthesisJob:
    """One synthesis run in a background process, from MRML sources to an MRML output volume.

    The sources are written when the job is made (on the caller's thread, which owns the scene);
    the output node (and the segmentation node, when the request has a segmentation model, and the
    maps the request asks for) is created or replaced only when the process has succeeded.

    Args:
        scene: the scene of the sources; a new output volume is added to it.
        request: a request from :func:`prepareSynthesis`.
        workDirectory: an empty folder the job owns and deletes when it ends (or fails to start).
        python: the interpreter that runs ``cones`` (:func:`~CoNeSCommon.jobs.pythonInterpreter`).
        onProgress: called with each :class:`~CoNeSCommon.jobs.Progress` of the process.
        onLog: called with the process's other output lines.
        onDone: called once with the job when it has ended, its output (if any) in the scene.
    """

    def __init__(
        self,
        scene: vtkMRMLScene,
        request: SynthesisRequest,
        workDirectory: Path,
        python: str,
        *,
        onProgress: Callable[[Progress], None] | None = None,
        onLog: Callable[[str], None] | None = None,
        onDone: Callable[[SynthesisJob], None] | None = None,
    ) -> None:
        self.scene, self.request = scene, request
        self.outputNode: vtkMRMLScalarVolumeNode | None = None
        self.segmentationNode: vtkMRMLSegmentationNode | None = None
        self.brainMaskNode: vtkMRMLSegmentationNode | None = None
        self.segmentationNote: str | None = None
        """For a tumour segmentation computed with a synthesized sequence: how it is marked, its measured Dice."""
        self.registeredNodes: dict[Sequence, vtkMRMLScalarVolumeNode] = {}
        self.mapNodes: dict[trust.MapKind, vtkMRMLScalarVolumeNode] = {}
        """The maps the request asked for (:data:`~CoNeSSynthesisLib.trust.UNCERTAINTY`, ...), once added."""
        self.mapRecords: dict[trust.MapKind, dict] = {}
        """What the process's sidecar says of each map (its section); the ``path`` there is the work
        folder's, which is gone once the job has ended."""
        self.uncertaintySummary: trust.UncertaintySummary | None = None
        """The mean uncertainty in the brain (and in the segmented tumour), with the uncertainty map."""
        self.inputChecks: InputCheckReport | None = None
        """The process's input-check report, read when it has succeeded."""
        self.preparation: dict | None = None
        """With preparation: what the process's sidecar says it did (registrations and their checked figures)."""
        self.outputPath = workDirectory / OUTPUT_FILE_NAME
        self.segmentationPath = workDirectory / SEGMENTATION_FILE_NAME
        self._loadError: str | None = None
        self._onDone = onDone
        try:
            inputs = _writeSources(request.sources, workDirectory)
            command = _command(python, request, inputs, self.outputPath, self.segmentationPath)
        except BaseException:  # an interrupt too: the folder holds copies of the patient's scans
            shutil.rmtree(workDirectory)
            raise
        self.process = ProcessJob(
            command,
            conesEnvironment(),
            workDirectory=workDirectory,
            onProgress=onProgress,
            onLog=onLog,
            onFinished=self._finish,
        )

    @property
    def status(self) -> JobStatus:
        """The process's status, or FAILED when its output could not be loaded."""
        return JobStatus.FAILED if self._loadError else self.process.status

    @property
    def errorMessage(self) -> str | None:
        """Why the job did not succeed, or None."""
        return self._loadError or self.process.errorMessage

    @property
    def uncertaintyNode(self) -> vtkMRMLScalarVolumeNode | None:
        """The uncertainty map ``"<output> uncertainty"``, when asked for and the job succeeded."""
        return self.mapNodes.get(trust.UNCERTAINTY)

    @property
    def enhancementNode(self) -> vtkMRMLScalarVolumeNode | None:
        """The virtual enhancement map ``"<output> virtual enhancement"``, when asked for and the job succeeded."""
        return self.mapNodes.get(trust.ENHANCEMENT)

    def run(self, startProcess: ProcessStarter = startPlainProcess) -> vtkMRMLScalarVolumeNode | None:
        """Run to the end in the calling thread; returns the output node, None unless succeeded."""
        self.process.run(startProcess)
        return self.outputNode

    def start(self, launcher: BackgroundLauncher) -> None:
        """Start in the background; ``onDone`` tells when it has ended."""
        self.process.start(launcher)

    def cancel(self) -> None:
        """Stop the process; the scene stays as it was and the work folder is deleted."""
        self.process.cancel()

    def discard(self) -> None:
        """Stop and delete the work folder now, adding nothing (the application is closing; see
        :meth:`~CoNeSCommon.jobs.ProcessJob.discard`)."""
        self.process.discard()

    def raiseForStatus(self) -> None:
        """Raise unless the job succeeded (see :meth:`~CoNeSCommon.jobs.ProcessJob.raiseForStatus`)."""
        if self._loadError:
            raise RuntimeError(self._loadError)
        self.process.raiseForStatus()

    def _finish(self, process: ProcessJob) -> None:
        if process.status is JobStatus.SUCCEEDED:
            try:
                self._loadResults()
            except Exception as error:  # whatever it is, the job must end and say why (see ProcessJob)
                self._loadError = str(error) if isinstance(error, RuntimeError | ValueError) else repr(error)
                logger.exception("could not load the results of %s", self.outputPath.parent)
                self._removeAddedNodes()
        if self._onDone is not None:
            self._onDone(self)

    def _loadResults(self) -> None:
        """Read every result file, then add the results to the scene, the one that checks its input first.

        A result that cannot be read or is refused (a label map off the reference grid) adds nothing.
        """
        image = _readResult(self.outputPath, "the synthesized volume")
        record = _readSidecar(self.outputPath)
        self.inputChecks = inputchecks.reportFromSidecar(record)
        self.preparation = record.get("preparation")
        reference = self.request.referenceNode
        folder = self.outputPath.parent
        labels = brainMask = segmentationRecord = None
        registered = {}
        if self.request.segmentation is not None:
            labels = _readResult(self.segmentationPath, "the tumour label map")
            segmentationRecord = _readSidecar(self.segmentationPath)
        if self.request.addPreparedInputs:
            brainMask = _readResult(folder / BRAIN_MASK_FILE_NAME, "the brain mask")
            for sequence in list(self.request.sources)[1:]:
                path = folder / PREPARED_FOLDER_NAME / f"{sequence.value}_registered.nii.gz"
                registered[sequence] = _readResult(path, f"the registered {sequence.display_name}")
        maps = {kind: self._readMap(kind, image, record) for kind in self.request.maps}
        if labels is not None:
            self.segmentationNode = segmentation.addTumourSegmentation(
                self.scene, labels, self.request.segmentation.labels, reference
            )
            if segmentationRecord.get("marking"):
                provenance.markSegmentationFromSynthetic(self.segmentationNode, segmentationRecord["marking"])
            used = tuple(Sequence(name) for name in segmentationRecord.get("synthesized_inputs", ()))
            if used:
                from cones.segmentation.chain import synthetic_segmentation_note

                self.segmentationNote = synthetic_segmentation_note(self.request.segmentation, used)
        if brainMask is not None:
            self.brainMaskNode = segmentation.addBrainMaskSegmentation(self.scene, brainMask, reference)
        for sequence, moved in registered.items():
            self.registeredNodes[sequence] = volumes.addRegisteredVolume(self.scene, moved, reference, sequence)
        self.outputNode = volumes.writeSynthesizedVolume(
            self.scene, image, reference, self.request.target, self.request.outputNode
        )
        provenance.markSynthesizedVolume(
            self.scene, self.outputNode, self.request.sources, record["marking"], record["model"]["sha256"]
        )
        self._addMaps(maps, record)

    def _removeAddedNodes(self) -> None:
        """Take out of the scene what a failed load had added, so a failed job adds nothing.

        A replaced output volume stays: it is the user's node, and it already holds the synthesized voxels
        if the failure came after they were written (the failure message says the job failed).
        """
        added = [self.segmentationNode, self.brainMaskNode, *self.registeredNodes.values(), *self.mapNodes.values()]
        if self.request.outputNode is None:
            added.append(self.outputNode)
        volumes.removeNodes(self.scene, added)
        self.segmentationNode = self.brainMaskNode = None
        self.registeredNodes, self.mapNodes, self.mapRecords = {}, {}, {}
        self.uncertaintySummary = None
        self.outputNode = None

    def _readMap(self, kind: trust.MapKind, synthesized: sitk.Image, record: Mapping) -> sitk.Image:
        """A map file, refused unless on the synthesized volume's grid and described in its sidecar."""
        image = _readResult(_mapPath(self.outputPath.parent, kind), f"the {kind.nameSuffix} map")
        trust.checkMapGrid(image, synthesized, kind, "the synthesized volume")
        if kind.section not in record:
            raise RuntimeError(f"the synthesis process wrote no {kind.section!r} section for the {kind.nameSuffix} map")
        return image

    def _addMaps(self, maps: Mapping[trust.MapKind, sitk.Image], record: Mapping) -> None:
        """Add the maps beside the output, marked; summarize the uncertainty (in the tumour too, if segmented)."""
        for kind, image in maps.items():
            self.mapNodes[kind] = trust.addMapVolume(self.scene, image, self.outputNode, kind, record["marking"])
            self.mapRecords[kind] = record[kind.section]
        if self.uncertaintyNode is not None:
            self.uncertaintySummary = trust.summarizeUncertainty(
                self.uncertaintyNode, self.outputNode, self.segmentationNode
            )


def _readSidecar(outputPath: Path) -> dict:
    """The provenance the process wrote beside an output (:func:`cones.marking.write_sidecar`,
    :func:`cones.marking.write_segmentation_sidecar`)."""
    from cones.marking import sidecar_path

    try:
        return json.loads(sidecar_path(outputPath).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise RuntimeError(f"cannot load the provenance of the synthesized volume: {error}") from None


def _readResult(path: Path, what: str) -> sitk.Image:
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as error:
        raise RuntimeError(f"cannot load {what} {str(path)!r}: {error}") from None
