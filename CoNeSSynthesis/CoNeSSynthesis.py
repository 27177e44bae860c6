"""CoNeS Synthesis: synthesize a missing MRI sequence (e.g. T1ce) from the co-registered ones you have.

The module is a thin shell: the parameter node holds the user's choices, the widget binds them to
the panel, and the logic runs ``cones synthesize`` in a background process through
:mod:`CoNeSSynthesisLib`, so Slicer stays responsive and Cancel leaves the scene as it was.
"""

import logging
from pathlib import Path

import qt
import slicer
import vtk
from CoNeSCommon import dependencies, location
from CoNeSCommon.about import CITATION
from CoNeSCommon.application import choosePath, launchSlicerProcess, newWorkDirectory, runEventLoopUntil
from CoNeSCommon.jobs import Device, JobStatus, Progress, pythonInterpreter
from CoNeSSynthesisLib import segmentation, testing, trust, volumes
from CoNeSSynthesisLib.inputchecks import checkInputVolumes, describeChecks
from CoNeSSynthesisLib.sample import SAMPLE_DATA_REQUIREMENTS, SampleCaseJob
from CoNeSSynthesisLib.synthesis import SynthesisJob, prepareSynthesis, readModelCard
from CoNeSSynthesisLib.trust import describeUncertainty
from slicer import vtkMRMLScalarVolumeNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

from cones.precision import Precision
from cones.segmentation.cli import SEGMENTATION_STAGE
from cones.sequences import Sequence, parse_sequence

SOURCE_PARAMETERS = {
    Sequence.T1: "t1Volume",
    Sequence.T1CE: "t1ceVolume",
    Sequence.T2: "t2Volume",
    Sequence.FLAIR: "flairVolume",
}
"""The parameter node field that holds the volume of each sequence."""
INPUT_CHECKS_DELAY_MS = 500
"""Quiet time after the last change of a volume, the model or preparation before the input checks run: picking
three volumes in a row runs them once (they take seconds on full-size volumes, in Slicer's own thread)."""


class CoNeSSynthesis(ScriptedLoadableModule):
    """Module description shown in Slicer."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("CoNeS Synthesis")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Image Synthesis")]
        self.parent.dependencies = []
        self.parent.contributors = ["CoNeS Slicer extension developers"]
        self.parent.helpText = (
            _(
                "Synthesize a missing MRI sequence, such as the contrast-enhanced T1 (T1ce), from the co-registered "
                "sequences of the same case (T1, T2, FLAIR) with CoNeS, conditional neural fields with shift "
                "modulation.<br><br>Pick a model file (the bundled model synthesizes T1ce from T1, T2 and FLAIR), one "
                "volume for each sequence the model needs, and Apply. The result is a new volume named "
                "'&lt;case&gt; T1ce (synthesized)' on the grid of the first source, unless you choose an existing "
                "output volume to replace. Sources on different grids are refused unless resampling is allowed. "
                "With 'Segment after synthesis', a tumour segmentation model (the bundled one, trained on real "
                "BraTS cases, unless you choose a 'cones train-seg' model, a TorchScript or ONNX network with its "
                "sidecar, or an nnU-Net folder) then segments the case completed by the synthesized sequence into a "
                "segmentation with NCR, ED and ET segments, marked as computed from a synthetic sequence; the status "
                "line gives the Dice the bundled model reached that way on validation cases. "
                "'Uncertainty map' adds where the synthesis is unsure (shown over the synthesized volume, with its "
                "mean inside the brain and the tumour); 'Virtual enhancement map' adds synthesized T1ce minus T1. "
                "The network runs in a background process: Slicer stays responsive and Cancel leaves the scene "
                "unchanged. PyTorch and the other dependencies are installed on the first Apply, after asking. "
                "No data of your own? 'Load sample case' generates a glioma case from real brain anatomy (T1, T2, "
                "FLAIR, and its T1ce to compare the synthesized one with) and selects it.<br><br>"
                "A synthesized image is not an acquired one; do not use it for diagnosis.<br><br>Method: "
            )
            + CITATION
        )
        self.parent.acknowledgementText = (
            _(
                "CoNeS was developed by Yunjie Chen and colleagues at Leiden University Medical Center, the University "
                "of Twente and Delft University of Technology. This extension is an open reimplementation of the "
                "method described in their paper: "
            )
            + CITATION
        )
        slicer.app.connect("startupCompleted()", registerSampleData)


SAMPLE_DATA_CATEGORY = "CoNeS"
"""The Sample Data module's section of the generated case."""


def registerSampleData():
    """Offer the generated glioma case in Slicer's Sample Data module, beside the panel's "Load sample case".

    There is no file to download: the case is generated from real brain anatomy by ``cones sample-data``,
    so the source has no URIs and its button runs :func:`generateSampleCase` (Sample Data calls a source's
    ``customDownloader`` with the source instead of downloading).
    """
    import SampleData

    SampleData.SampleDataLogic.registerCustomSampleDataCategory(SAMPLE_DATA_CATEGORY, title=_("CoNeS"))
    SampleData.SampleDataLogic.registerCustomSampleDataSource(
        category=SAMPLE_DATA_CATEGORY,
        sampleName="CoNeSGeneratedGlioma",
        thumbnailFileName=str(Path(__file__).parent / "Resources" / "Icons" / "CoNeSSynthesis.png"),
        uris=[],
        fileNames=[],
        nodeNames=[],
        customDownloader=generateSampleCase,
    )


def generateSampleCase(source=None):
    """Sample Data's button for the generated case: open CoNeS Synthesis and generate it there, with its
    progress and Cancel, as "Load sample case" does (``source`` is the Sample Data source, unused)."""
    slicer.util.selectModule("CoNeSSynthesis")
    slicer.modules.conessynthesis.widgetRepresentation().self().startSampleCase()


@parameterNodeWrapper
class CoNeSSynthesisParameterNode:
    """What the user chose in CoNeS Synthesis (saved with the scene).

    modelPath - the CoNeS model file (default: the bundled T1 + T2 + FLAIR -> T1ce model).
    t1Volume - the T1 source volume (used when the model needs T1).
    t1ceVolume - the T1ce source volume (used when the model needs T1ce).
    t2Volume - the T2 source volume (used when the model needs T2).
    flairVolume - the FLAIR source volume (used when the model needs FLAIR).
    outputVolume - the volume to replace with the result; None adds "<case> <target> (synthesized)".
    device - where the network runs: automatic (CUDA if available), CPU or CUDA.
    precision - the network's number format: auto (bf16 where the hardware has bf16 units), fp32 or bf16.
    allowResampling - resample sources on other grids onto the first source instead of refusing them.
    prepareRawScans - co-register the sources to the first one and extract the brain before synthesis
        (raw clinical scans); turned on when the chosen volumes are on different grids or not skull-stripped.
    addPreparedInputs - with prepareRawScans, also add the brain mask and the registered sources to the scene.
    strictInputChecks - refuse the sources on a warning of the input checks too (cones synthesize --strict).
    segmentAfterSynthesis - segment the tumour after synthesis with the segmentation model.
    segmentationModelPath - the segmentation model: a file, or an nnU-Net folder; empty: the bundled one.
    uncertaintyMap - also make the voxel-wise uncertainty map (about 4x the synthesis time) and show it over the output.
    enhancementMap - also make the virtual enhancement map, synthesized T1ce minus T1 (T1ce models with a T1 source).

    Volumes are annotated with the plain node type, as in Slicer's module template: a node parameter
    may always be None, and the wrapper of older Slicer releases recognizes ``typing.Union`` but not
    the ``X | None`` spelling.
    """

    modelPath: Path = location.bundledModelPath()
    t1Volume: vtkMRMLScalarVolumeNode
    t1ceVolume: vtkMRMLScalarVolumeNode
    t2Volume: vtkMRMLScalarVolumeNode
    flairVolume: vtkMRMLScalarVolumeNode
    outputVolume: vtkMRMLScalarVolumeNode
    device: Device = Device.AUTO
    precision: Precision = Precision.AUTO
    allowResampling: bool = False
    prepareRawScans: bool = False
    addPreparedInputs: bool = False
    strictInputChecks: bool = False
    segmentAfterSynthesis: bool = False
    segmentationModelPath: str = ""
    uncertaintyMap: bool = False
    enhancementMap: bool = False


def sourceVolumes(parameterNode: CoNeSSynthesisParameterNode) -> dict[str, vtkMRMLScalarVolumeNode | None]:
    """The selected volume of every sequence; the logic uses those the model needs."""
    return {sequence.value: getattr(parameterNode, name) for sequence, name in SOURCE_PARAMETERS.items()}


class CoNeSSynthesisWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The panel: binds the parameter node to the .ui, runs one job at a time, shows its progress."""

    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._job = None
        self._sampleJob = None
        self._shownModelPath = None
        self._modelSources = ()
        self._suggestedFor = None
        self._checkedFor = None
        self._inputChecksTimer = None

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/CoNeSSynthesis.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = CoNeSSynthesisLogic()
        self._inputChecksTimer = qt.QTimer()
        self._inputChecksTimer.setSingleShot(True)
        self._inputChecksTimer.setInterval(INPUT_CHECKS_DELAY_MS)
        self._inputChecksTimer.connect("timeout()", self._showInputChecks)
        self._sourceRows = {
            Sequence.T1: (self.ui.t1Label, self.ui.t1VolumeSelector),
            Sequence.T1CE: (self.ui.t1ceLabel, self.ui.t1ceVolumeSelector),
            Sequence.T2: (self.ui.t2Label, self.ui.t2VolumeSelector),
            Sequence.FLAIR: (self.ui.flairLabel, self.ui.flairVolumeSelector),
        }
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.loadSampleCaseButton.connect("clicked(bool)", self.onLoadSampleCaseButton)
        self.ui.segmentationModelFileButton.connect("clicked(bool)", lambda: self._chooseSegmentationModel(False))
        self.ui.segmentationModelFolderButton.connect("clicked(bool)", lambda: self._chooseSegmentationModel(True))
        self.initializeParameterNode()

    def cleanup(self):
        """Called when the application closes: stop a running job and delete its files now, drop every observer.

        A job's end would come through the event loop, which does not run again, so its work folder (copies
        of the patient's scans) is deleted here rather than when the end arrives.
        """
        for job in (self._job, self._sampleJob):
            if job is not None:
                job.discard()
        self._inputChecksTimer.stop()
        self.removeObservers()

    def enter(self):
        self.initializeParameterNode()

    def exit(self):
        self.setParameterNode(None)

    def onSceneStartClose(self, caller, event):
        """The sources are about to disappear: a running job can no longer deliver its result."""
        self._cancelJob()
        self._cancelSampleJob()
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event):
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self):
        self.setParameterNode(self.logic.getParameterNode())

    def setParameterNode(self, parameterNode):
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified)
        self._parameterNode = parameterNode
        self._shownModelPath = None
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified)
            self._onParameterNodeModified()

    def _chooseSegmentationModel(self, folder):
        """Browse for a segmentation model file or an nnU-Net folder (the text field takes either typed)."""
        chosen = choosePath(
            slicer.util.mainWindow(),
            _("Choose an nnU-Net folder") if folder else _("Choose a segmentation model"),
            self._parameterNode.segmentationModelPath,
            folder=folder,
            nameFilter=_("Segmentation models (*.pt *.ts *.onnx)"),
        )
        if chosen is not None:
            self._parameterNode.segmentationModelPath = chosen

    def _onParameterNodeModified(self, caller=None, event=None):
        if self._parameterNode.modelPath != self._shownModelPath:
            self._showModel(self._parameterNode.modelPath)
        self._suggestPreparation()
        self._inputChecksTimer.start()  # restarted by every change: the checks run once the choice settles
        self._updateButtons()

    def _suggestPreparation(self):
        """Turn "Prepare raw scans" on or off when the chosen volumes change (the user may still change it)."""
        chosen = {sequence: sourceVolumes(self._parameterNode).get(sequence.value) for sequence in self._modelSources}
        key = tuple(node.GetID() if node is not None else None for node in chosen.values())
        if key == self._suggestedFor or not all(chosen.values()):
            return
        self._suggestedFor = key
        try:
            suggested = self.logic.needsPreparation(chosen)
        except Exception:  # whatever goes wrong must not break setup() or a selection: the choice stays the user's
            logging.exception("cannot tell whether the chosen volumes need preparation")
            return
        if suggested != self._parameterNode.prepareRawScans:
            self.ui.statusLabel.text = (
                _("'Prepare raw scans' turned on: the chosen volumes are on different grids or not skull-stripped.")
                if suggested
                else _("'Prepare raw scans' turned off: the chosen volumes look co-registered and skull-stripped.")
            )
        self._parameterNode.prepareRawScans = suggested

    def _showInputChecks(self):
        """List the input checks of the chosen volumes, again whenever a volume, the model or preparation changes."""
        if self._parameterNode is None:  # the module was left, or the scene closed, before the delay ran out
            return
        chosen = {sequence: sourceVolumes(self._parameterNode).get(sequence.value) for sequence in self._modelSources}
        key = (
            self._parameterNode.modelPath,
            self._parameterNode.prepareRawScans,
            *(node.GetID() if node is not None else None for node in chosen.values()),
        )
        if key == self._checkedFor:
            return
        self._checkedFor = key
        if not chosen or not all(chosen.values()):
            self.ui.inputChecksLabel.text = ""
            return
        try:
            with slicer.util.WaitCursor():
                text = self.logic.describeInputChecks(
                    self._parameterNode.modelPath, chosen, self._parameterNode.prepareRawScans
                )
        except Exception as error:  # whatever goes wrong must not break setup(): the panel shows it instead
            if not isinstance(error, ValueError):
                logging.exception("cannot run the input checks")
            text = _("Input checks not run: {message}").format(message=error)
        self.ui.inputChecksLabel.text = text

    def _showModel(self, modelPath):
        """Label and show one volume selector per source of the model, as its card lists them.

        The card is read without torch (which may not even be installed yet), so this is quick and safe
        in Slicer's own process.
        """
        self._shownModelPath = modelPath
        self._modelSources = ()
        try:
            card = self.logic.readModelCard(modelPath)
        except Exception as error:  # whatever goes wrong must not break setup(): the panel shows it instead
            logging.exception("cannot read the model card of %s", modelPath)
            text = str(error) if isinstance(error, ValueError) else f"{type(error).__name__}: {error}"
        else:
            self._modelSources = card.sources
            names = ", ".join(sequence.display_name for sequence in card.sources)
            text = _("Synthesizes {target} from {sources}.").format(target=card.targets[0].display_name, sources=names)
        self.ui.modelInfoLabel.text = text
        for sequence, (label, selector) in self._sourceRows.items():
            needed = sequence in self._modelSources
            label.visible = selector.visible = needed
            reference = needed and sequence == self._modelSources[0]
            template = _("{sequence} (reference grid):") if reference else _("{sequence}:")
            label.text = template.format(sequence=sequence.display_name)

    def _updateButtons(self):
        """Apply needs a readable model and its sources (it installs PyTorch first if needed); Cancel is always on."""
        running = self._job is not None
        generating = self._sampleJob is not None
        chosen = sourceVolumes(self._parameterNode) if self._parameterNode else {}
        ready = bool(self._modelSources) and all(chosen.get(sequence.value) for sequence in self._modelSources)
        self.ui.applyButton.text = _("Cancel") if running else _("Apply")
        self.ui.applyButton.enabled = running or (self._parameterNode is not None and ready and not generating)
        self.ui.loadSampleCaseButton.text = _("Cancel sample case") if generating else _("Load sample case")
        self.ui.loadSampleCaseButton.enabled = not running
        prepare = self._parameterNode is not None and self._parameterNode.prepareRawScans
        self.ui.addPreparedInputsCheckBox.enabled = prepare
        self.ui.inputsCollapsibleButton.enabled = not running
        self.ui.outputsCollapsibleButton.enabled = not running
        self.ui.advancedCollapsibleButton.enabled = not running

    def onApplyButton(self):
        """Apply starts a job; while one runs the same button cancels it."""
        if self._job is not None:
            self.ui.statusLabel.text = _("Cancelling...")
            self._cancelJob()
            return
        with slicer.util.tryWithErrorDisplay(_("CoNeS synthesis could not start."), waitCursor=True):
            parameters = self._parameterNode
            segmentationModel = (
                parameters.segmentationModelPath.strip() or str(location.bundledSegmentationModelPath())
                if parameters.segmentAfterSynthesis
                else None
            )
            self.logic.ensureDependencies(segmentationModel)
            self._showModel(self._parameterNode.modelPath)
            self.ui.processLogTextEdit.clear()
            self._job = self.logic.synthesize(
                parameters.modelPath,
                sourceVolumes(parameters),
                outputNode=parameters.outputVolume,
                device=parameters.device,
                precision=parameters.precision,
                allowResampling=parameters.allowResampling,
                segmentationModelPath=segmentationModel,
                prepare=parameters.prepareRawScans,
                addPreparedInputs=parameters.prepareRawScans and parameters.addPreparedInputs,
                strictInputChecks=parameters.strictInputChecks,
                uncertaintyMap=parameters.uncertaintyMap,
                enhancementMap=parameters.enhancementMap,
                wait=False,
                onProgress=self._onProgress,
                onLog=self.ui.processLogTextEdit.appendPlainText,
                onDone=self._onDone,
            )
            self.ui.progressBar.value = 0
            self.ui.statusLabel.text = _("Starting...")
            self.ui.uncertaintyLabel.text = ""
        self._updateButtons()

    def _cancelJob(self):
        if self._job is not None:
            self._job.cancel()

    def onLoadSampleCaseButton(self):
        """Generate a sample case; while one is generated the same button cancels it."""
        if self._sampleJob is not None:
            self.ui.statusLabel.text = _("Cancelling the sample case...")
            self._cancelSampleJob()
            return
        self.startSampleCase()

    def startSampleCase(self):
        """Generate a sample case in the background unless one is being generated (the logic selects its volumes
        when they are in the scene); "Load sample case" and Sample Data's button call this."""
        if self._sampleJob is not None:
            return
        with slicer.util.tryWithErrorDisplay(_("The sample case could not be generated."), waitCursor=True):
            self._sampleJob = self.logic.loadSampleCase(wait=False, onDone=self._onSampleCaseDone)
            self.ui.progressBar.maximum = 0  # busy: the generator reports no progress
            self.ui.statusLabel.text = _("Generating a sample case (about a minute)...")
        self._updateButtons()

    def _cancelSampleJob(self):
        if self._sampleJob is not None:
            self._sampleJob.cancel()

    def _onSampleCaseDone(self, job: SampleCaseJob):
        self._sampleJob = None
        self.ui.progressBar.maximum = 100
        self.ui.progressBar.value = 0
        self._updateButtons()
        if job.status is JobStatus.SUCCEEDED:
            self.ui.statusLabel.text = _(
                "Sample case loaded and selected: {names}. Its T1ce is there to compare the synthesized one with."
            ).format(names=", ".join(node.GetName() for node in job.volumes.values()))
            slicer.util.setSliceViewerLayers(background=job.volumes[Sequence.T1], fit=True)
        elif job.status is JobStatus.CANCELLED:
            self.ui.statusLabel.text = _("Sample case cancelled.")
        else:
            self.ui.statusLabel.text = _("Failed: {message}").format(message=job.errorMessage)
            message = _("The sample case could not be generated: {message}").format(message=job.errorMessage)
            slicer.util.errorDisplay(message)

    def _onProgress(self, progress: Progress):
        if progress.stage == SEGMENTATION_STAGE:
            self.ui.statusLabel.text = _("Segmenting the tumour...")
            return
        self.ui.progressBar.value = round(100 * progress.fraction)
        messages = {
            "extract-brain": _("Extracting the brain..."),
            "register": _("Co-registering: {done} of {total} sequences"),
        }
        template = messages.get(progress.stage, _("Synthesizing: {done} of {total} slices"))
        self.ui.statusLabel.text = template.format(done=progress.done, total=progress.total)

    def _onDone(self, job: SynthesisJob):
        self._job = None
        self._updateButtons()
        if job.status is JobStatus.SUCCEEDED:
            self.ui.progressBar.value = 100
            nodes = (
                job.outputNode, *job.mapNodes.values(), job.segmentationNode, job.brainMaskNode,
                *job.registeredNodes.values(),
            )  # fmt: skip
            made = [node.GetName() for node in nodes if node is not None]
            self.ui.statusLabel.text = _("Done: {names}").format(names=", ".join(made))
            if job.segmentationNote is not None:
                self.ui.statusLabel.text += _("\nTumour segmentation: {note}").format(note=job.segmentationNote)
            if job.uncertaintySummary is not None:
                self.ui.uncertaintyLabel.text = describeUncertainty(job.uncertaintySummary)
            if job.inputChecks is not None:
                self.ui.inputChecksLabel.text = describeChecks(job.inputChecks, job.request.sources)
            slicer.util.setSliceViewerLayers(background=job.outputNode, fit=True)
        elif job.status is JobStatus.CANCELLED:
            self.ui.progressBar.value = 0
            self.ui.statusLabel.text = _("Cancelled; the scene is unchanged.")
        else:
            self.ui.statusLabel.text = _("Failed: {message}").format(message=job.errorMessage)
            slicer.util.errorDisplay(_("CoNeS synthesis failed: {message}").format(message=job.errorMessage))


class CoNeSSynthesisLogic(ScriptedLoadableModuleLogic):
    """The console API of the module; it needs no GUI.

    Example::

        import CoNeSSynthesis
        logic = CoNeSSynthesis.CoNeSSynthesisLogic()
        t1ce = logic.synthesize(modelPath, {"t1": t1Node, "t2": t2Node, "flair": flairNode})
        t1ce, tumour = logic.synthesize(modelPath, sources, segmentationModelPath="SEGRUN/last.pt")
    """

    def getParameterNode(self):
        return CoNeSSynthesisParameterNode(super().getParameterNode())

    def ensureDependencies(self, segmentationModelPath=None):
        """Install PyTorch and the other requirements on first use, after asking (see :mod:`dependencies`).

        With a segmentation model, also what its backend needs (onnxruntime, nnunetv2), in the same dialog.
        """
        extra = () if segmentationModelPath is None else segmentation.segmentationRequirements(segmentationModelPath)
        dependencies.ensureDependencies(Path(slicer.app.temporaryPath), extraRequirements=extra)

    def readModelCard(self, modelPath):
        """The card of a model file: its sources in channel order and its target, read without torch.

        Raises:
            ValueError: the file is missing or refused.
        """
        return readModelCard(modelPath)

    def selectSourceVolumes(self, sourceVolumes):
        """Select volumes keyed by sequence (any spelling, e.g. ``{"t1": node}``) as the panel's sources."""
        parameterNode = self.getParameterNode()
        for sequence, node in sourceVolumes.items():
            setattr(parameterNode, SOURCE_PARAMETERS[parse_sequence(sequence)], node)

    def loadSampleCase(self, seed=0, size=None, spacingMm=None, select=True, wait=True, onDone=None):
        """Generate a glioma case from real brain anatomy (``cones sample-data``) and add its sequences to the scene.

        For trying the module with no data of one's own: T1, T2 and FLAIR to synthesize from, and the
        case's own T1ce to compare the synthesized one with. nilearn (which holds the template anatomy)
        is installed on first use, after asking, together with any other missing requirement.

        Args:
            seed: which case; the same seed gives the same case.
            size: the grid in voxels, (x, y, z); ``None`` for BraTS's 240 x 240 x 155 (about half a minute).
            spacingMm: the isotropic voxel size; ``None`` for 1 mm.
            select: select the volumes as the sources in the module's parameter node once they are added.
            wait: True generates to the end and returns the volumes keyed by sequence (scripts); False
                returns the running :class:`~CoNeSSynthesisLib.sample.SampleCaseJob` at once (GUI).
            onDone: called with the job when it has ended (its ``volumes`` are in the scene then).

        Raises:
            ValueError: the generator refused ``size`` or ``spacingMm`` (its message).
            RuntimeError: a dependency was declined, or the generator failed or (``wait=True``) was cancelled.
        """
        dependencies.ensureDependencies(Path(slicer.app.temporaryPath), extraRequirements=SAMPLE_DATA_REQUIREMENTS)

        def finish(job):
            if select and job.status is JobStatus.SUCCEEDED:
                self.selectSourceVolumes(job.volumes)
            if onDone is not None:
                onDone(job)

        job = SampleCaseJob(
            slicer.mrmlScene,
            newWorkDirectory(),
            pythonInterpreter(),
            seed=seed,
            size=size,
            spacingMm=spacingMm,
            onDone=finish,
        )
        job.start(launchSlicerProcess)
        if not wait:
            return job
        runEventLoopUntil(lambda: job.status is not JobStatus.RUNNING)
        job.raiseForStatus()
        return job.volumes

    def checkInputs(self, modelPath, sourceVolumes, prepare=False):
        """Run the input checks of ``cones synthesize`` on volumes keyed by sequence (see "What the checks mean").

        Returns:
            A :class:`cones.domain.InputCheckReport`: its ``errors`` refuse a synthesis, its ``warnings``
            do with ``strictInputChecks``.

        Raises:
            ValueError: the model file is refused, or a volume the model needs is missing or unusable.
        """
        card = self.readModelCard(modelPath)
        sources = volumes.matchSourceVolumes(card.sources, sourceVolumes)
        return checkInputVolumes(card, sources, prepare)

    def describeInputChecks(self, modelPath, sourceVolumes, prepare=False):
        """:meth:`checkInputs` as the panel shows it: one line per finding, naming the volumes."""
        report = self.checkInputs(modelPath, sourceVolumes, prepare)
        return describeChecks(report, {parse_sequence(name): node for name, node in sourceVolumes.items()})

    def needsPreparation(self, sourceVolumes):
        """Whether the volumes (keyed by sequence) look like raw scans: different grids, or not skull-stripped."""
        return volumes.needsPreparation(sourceVolumes)

    def synthesize(
        self,
        modelPath,
        sourceVolumes,
        outputNode=None,
        device=Device.AUTO,
        allowResampling=False,
        segmentationModelPath=None,
        prepare=False,
        addPreparedInputs=False,
        strictInputChecks=False,
        wait=True,
        onProgress=None,
        onDone=None,
        precision=Precision.AUTO,
        uncertaintyMap=False,
        enhancementMap=False,
        onLog=None,
    ):
        """Synthesize the model's target sequence from scalar volumes of the scene.

        Args:
            modelPath: the CoNeS model file (str or Path).
            sourceVolumes: volumes keyed by sequence name, e.g. ``{"t1": node, "t2": node, "flair": node}``;
                the model's first source is the reference grid of the output.
            outputNode: an existing volume to replace; ``None`` adds "<case> <target> (synthesized)".
            device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
            allowResampling: resample sources on other grids onto the reference instead of refusing them.
            segmentationModelPath: segment the tumour after synthesis with this model (a ``cones train-seg``
                file, a TorchScript or ONNX file with its ``.json`` sidecar, or an nnU-Net folder); the result
                is a segmentation node with NCR, ED and ET segments referencing the first source.
            prepare: raw scans (each sequence its own acquisition, skull on): co-register the sources to the
                first one and extract the brain (deepbet) before synthesis; the output is on the first source's
                grid, zero outside the brain. Implies resampling.
            addPreparedInputs: with ``prepare``, also add the brain mask (a segmentation, ``job.brainMaskNode``)
                and the registered sources (volumes, ``job.registeredNodes``).
            strictInputChecks: refuse the sources on a warning of the input checks too (``job.inputChecks``
                holds the report of the process once it has succeeded).
            wait: True runs to the end and returns the output node, or ``(output node, segmentation node)``
                with ``segmentationModelPath`` (scripts); False returns the running
                :class:`~CoNeSSynthesisLib.synthesis.SynthesisJob` at once (GUI), which has ``cancel()``
                and, once done, ``outputNode`` and ``segmentationNode``.
            onProgress: called with each :class:`~CoNeSCommon.jobs.Progress` (done, total slices).
            onDone: called with the job when it has ended (the output, if any, is in the scene then).
            precision: ``"auto"`` (bf16 where the CPU or GPU has bf16 units), ``"fp32"`` or ``"bf16"``.
            uncertaintyMap: also make the voxel-wise uncertainty map (one more network pass per source), a
                volume "<output> uncertainty" (``job.uncertaintyNode``) shown over the output in the slice views,
                and its mean inside the brain and the segmented tumour (``job.uncertaintySummary``).
            enhancementMap: also make the virtual enhancement map, synthesized T1ce minus T1 on their own
                brain percentiles, a volume "<output> virtual enhancement" (``job.enhancementNode``). The output
                references both maps: ``output.GetNodeReference("CoNeS.UncertaintyMap")``,
                ``"CoNeS.VirtualEnhancementMap"``.
            onLog: called with each output line of the process but its progress lines (the panel's process log).

        Raises:
            ValueError: refused input (the message names the volumes), the model file is refused, the
                segmentation model is refused or needs a sequence that is neither a source nor synthesized,
                or the enhancement map is asked of a model that does not make T1ce from T1.
            RuntimeError: the synthesis failed or (``wait=True``) was cancelled.
        """
        self.ensureDependencies(segmentationModelPath)
        request = prepareSynthesis(
            modelPath,
            sourceVolumes,
            outputNode,
            device,
            allowResampling,
            segmentationModelPath,
            prepare=prepare,
            addPreparedInputs=addPreparedInputs,
            strictInputChecks=strictInputChecks,
            precision=precision,
            uncertaintyMap=uncertaintyMap,
            enhancementMap=enhancementMap,
        )

        def finish(job):
            if job.status is JobStatus.SUCCEEDED:
                trust.showOnSliceViews(slicer.mrmlScene, job.outputNode, job.uncertaintyNode)
            if onDone is not None:
                onDone(job)

        job = SynthesisJob(
            slicer.mrmlScene,
            request,
            newWorkDirectory(),
            pythonInterpreter(),
            onProgress=onProgress,
            onLog=onLog,
            onDone=finish,
        )
        job.start(launchSlicerProcess)
        if not wait:
            return job
        runEventLoopUntil(lambda: job.status is not JobStatus.RUNNING)
        job.raiseForStatus()
        return job.outputNode if segmentationModelPath is None else (job.outputNode, job.segmentationNode)


class CoNeSSynthesisTest(ScriptedLoadableModuleTest):
    """Runs inside Slicer on a generated case and a tiny random-init model: logic, cancel and the panel."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_synthesizeKeepsTheReferenceGridAndTheSources()
        self.setUp()
        self.test_segmentAfterSynthesisAddsTheTumourSegmentation()
        self.setUp()
        self.test_uncertaintyMapIsShownOverTheSynthesizedVolume()
        self.setUp()
        self.test_mismatchedGridsAreRefused()
        self.setUp()
        self.test_cancelLeavesTheSceneUnchanged()
        self.setUp()
        self.test_panelApplyCreatesTheOutput()
        self.setUp()
        self.test_loadSampleCaseSelectsTheSourcesToSynthesizeFrom()

    def _model(self):
        """A tiny model file; writing it imports torch here, which is fine in a test (no inference runs here)."""
        dependencies.ensureDependencies(Path(slicer.app.temporaryPath), installWithoutAsking=True)
        return testing.writeTinyModel(newWorkDirectory() / "tiny.pt")

    def _sources(self, case):
        return {sequence.value: case[sequence] for sequence in (Sequence.T1, Sequence.T2, Sequence.FLAIR)}

    def _waitFor(self, condition, timeoutSeconds=300):
        """Let the event loop run (the job's callbacks come from it) until ``condition()`` holds."""
        self.assertTrue(runEventLoopUntil(condition, timeoutSeconds), "timed out waiting for the synthesis")

    def test_synthesizeKeepsTheReferenceGridAndTheSources(self):
        self.delayDisplay("Synthesis from the console API")
        case = testing.addSyntheticCase(slicer.mrmlScene, "TEST-CASE")
        before = {sequence: slicer.util.arrayFromVolume(node).copy() for sequence, node in case.items()}
        output = CoNeSSynthesisLogic().synthesize(self._model(), self._sources(case), device="cpu")
        self.assertEqual(output.GetName(), "TEST-CASE T1ce (synthesized)")
        reference, synthesized = vtk.vtkMatrix4x4(), vtk.vtkMatrix4x4()
        case[Sequence.T1].GetIJKToRASMatrix(reference)
        output.GetIJKToRASMatrix(synthesized)
        self.assertEqual(
            slicer.util.arrayFromVTKMatrix(synthesized).tolist(), slicer.util.arrayFromVTKMatrix(reference).tolist()
        )
        self.assertGreater(slicer.util.arrayFromVolume(output).std(), 0)
        for sequence, node in case.items():
            self.assertTrue((slicer.util.arrayFromVolume(node) == before[sequence]).all())

    def test_segmentAfterSynthesisAddsTheTumourSegmentation(self):
        self.delayDisplay("Segment after synthesis from the console API")
        case = testing.addSyntheticCase(slicer.mrmlScene, "TEST-CASE")
        model = self._model()
        segmentationModel = testing.writeTinySegmentationModel(newWorkDirectory() / "segmentation.pt")
        output, tumour = CoNeSSynthesisLogic().synthesize(
            model, self._sources(case), device="cpu", segmentationModelPath=segmentationModel
        )
        self.assertEqual(output.GetName(), "TEST-CASE T1ce (synthesized)")
        self.assertEqual(tumour.GetName(), "TEST-CASE tumour segmentation")
        segments = tumour.GetSegmentation()
        names = [segments.GetNthSegment(index).GetName() for index in range(segments.GetNumberOfSegments())]
        self.assertEqual(names, ["NCR", "ED", "ET"])
        role = slicer.vtkMRMLSegmentationNode.GetReferenceImageGeometryReferenceRole()
        self.assertEqual(tumour.GetNodeReferenceID(role), case[Sequence.T1].GetID())

    def test_uncertaintyMapIsShownOverTheSynthesizedVolume(self):
        self.delayDisplay("Uncertainty and virtual enhancement maps")
        case = testing.addSyntheticCase(slicer.mrmlScene, "TEST-CASE")
        output = CoNeSSynthesisLogic().synthesize(
            self._model(), self._sources(case), device="cpu", uncertaintyMap=True, enhancementMap=True
        )
        uncertainty = output.GetNodeReference(trust.UNCERTAINTY.referenceRole)
        enhancement = output.GetNodeReference(trust.ENHANCEMENT.referenceRole)
        self.assertEqual(uncertainty.GetName(), "TEST-CASE T1ce (synthesized) uncertainty")
        self.assertEqual(enhancement.GetName(), "TEST-CASE T1ce (synthesized) virtual enhancement")
        # the lookup tables exist in a running Slicer (the slicer-core wheel has no default colour nodes)
        self.assertEqual(uncertainty.GetDisplayNode().GetColorNode().GetName(), "Inferno")
        self.assertEqual(enhancement.GetDisplayNode().GetColorNode().GetName(), "DivergingBlueRed")
        composite = slicer.app.layoutManager().sliceWidget("Red").mrmlSliceCompositeNode()
        self.assertEqual(composite.GetBackgroundVolumeID(), output.GetID())
        self.assertEqual(composite.GetForegroundVolumeID(), uncertainty.GetID())
        self.assertAlmostEqual(composite.GetForegroundOpacity(), trust.UNCERTAINTY_OPACITY)

    def test_mismatchedGridsAreRefused(self):
        self.delayDisplay("Sources on different grids")
        case = testing.addSyntheticCase(slicer.mrmlScene, "TEST-CASE")
        case[Sequence.T2].SetSpacing(2.0, 2.0, 2.0)
        with self.assertRaisesRegex(ValueError, "'TEST-CASE_t2' \\(T2\\) is not on the grid"):
            CoNeSSynthesisLogic().synthesize(self._model(), self._sources(case), device="cpu")

    def test_cancelLeavesTheSceneUnchanged(self):
        self.delayDisplay("Cancel")
        case = testing.addSyntheticCase(slicer.mrmlScene, "TEST-CASE")
        nodes = slicer.mrmlScene.GetNumberOfNodes()
        job = CoNeSSynthesisLogic().synthesize(self._model(), self._sources(case), device="cpu", wait=False)
        job.cancel()
        self._waitFor(lambda: job.status is not JobStatus.RUNNING)
        self.assertIs(job.status, JobStatus.CANCELLED)
        self.assertEqual(slicer.mrmlScene.GetNumberOfNodes(), nodes)

    def test_panelApplyCreatesTheOutput(self):
        self.delayDisplay("Apply in the panel")
        slicer.util.selectModule("CoNeSSynthesis")
        widget = slicer.modules.conessynthesis.widgetRepresentation().self()
        case = testing.addSyntheticCase(slicer.mrmlScene, "TEST-CASE")
        # Every choice is set, since the parameter node (a scene singleton) may keep an earlier test's values.
        parameters = widget.logic.getParameterNode()
        parameters.modelPath = self._model()
        parameters.t1Volume = case[Sequence.T1]
        parameters.t1ceVolume = None
        parameters.t2Volume = case[Sequence.T2]
        parameters.flairVolume = case[Sequence.FLAIR]
        # The generated case's brain is far below the stripped-brain floor, so choosing it turned "Prepare raw
        # scans" on, as for a raw scan; this test synthesizes the case as it is (no registration, no deepbet).
        self.assertTrue(parameters.prepareRawScans)
        parameters.prepareRawScans = False
        parameters.addPreparedInputs = False
        parameters.outputVolume = None
        parameters.device = Device.CPU
        parameters.precision = Precision.FP32
        parameters.allowResampling = False
        parameters.strictInputChecks = False
        parameters.segmentAfterSynthesis = False
        parameters.segmentationModelPath = ""
        parameters.uncertaintyMap = True
        parameters.enhancementMap = False
        self.assertFalse(widget.ui.t1VolumeSelector.isHidden())
        self.assertTrue(widget.ui.t1ceVolumeSelector.isHidden(), "T1ce is the target, not a source")
        widget.ui.applyButton.click()
        self.assertEqual(widget.ui.applyButton.text, "Cancel")
        self._waitFor(lambda: widget.ui.applyButton.text == "Apply")
        output = slicer.mrmlScene.GetFirstNodeByName("TEST-CASE T1ce (synthesized)")
        self.assertIsNotNone(output, widget.ui.statusLabel.text)
        self.assertEqual(widget.ui.progressBar.value, 100)
        self.assertFalse(parameters.prepareRawScans, "the job did not switch preparation back on")
        self.assertIsNone(slicer.mrmlScene.GetFirstNodeByName("TEST-CASE brain mask"), "no brain extraction ran")
        self.assertTrue(
            widget.ui.uncertaintyLabel.text.startswith("Mean uncertainty ("), widget.ui.uncertaintyLabel.text
        )

    def test_loadSampleCaseSelectsTheSourcesToSynthesizeFrom(self):
        self.delayDisplay("Load sample case")
        dependencies.ensureDependencies(
            Path(slicer.app.temporaryPath), extraRequirements=SAMPLE_DATA_REQUIREMENTS, installWithoutAsking=True
        )
        logic = CoNeSSynthesisLogic()
        loaded = logic.loadSampleCase(size=(48, 48, 32), spacingMm=5.0)
        self.assertEqual(loaded[Sequence.T1CE].GetName(), "CONES-SAMPLE-000_t1ce")
        parameters = logic.getParameterNode()
        for sequence, node in loaded.items():
            self.assertEqual(getattr(parameters, SOURCE_PARAMETERS[sequence]).GetID(), node.GetID())
        output = logic.synthesize(self._model(), sourceVolumes(parameters), device="cpu")
        self.assertEqual(output.GetName(), "CONES-SAMPLE-000 T1ce (synthesized)")
