"""CoNeS Training: train a CoNeS model on a folder of co-registered cases, with live progress.

The run is ``cones train`` in a background process (the same command a terminal would run, built
and checked by :mod:`CoNeSTrainingLib`), so Slicer stays responsive; Stop kills it and Resume
continues it from its last saved iteration.
"""

from pathlib import Path
from typing import Annotated

import slicer
import vtk
from CoNeSCommon import dependencies
from CoNeSCommon.about import CITATION
from CoNeSCommon.application import choosePath, launchSlicerProcess, newWorkDirectory, runEventLoopUntil
from CoNeSCommon.jobs import Device, JobStatus, pythonInterpreter
from CoNeSSynthesisLib import testing
from CoNeSSynthesisLib.synthesis import readModelCard
from CoNeSTrainingLib.training import (
    LAST_MODEL_NAME,
    PRESETS,
    TRAIN_DEFAULTS,
    TrainingJob,
    TrainingProgress,
    TrainingRequest,
)
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

from cones.sequences import Sequence

SOURCE_PARAMETERS = {
    Sequence.T1: "t1Source",
    Sequence.T1CE: "t1ceSource",
    Sequence.T2: "t2Source",
    Sequence.FLAIR: "flairSource",
}
"""The parameter node field that says whether a sequence is a source."""

_MANY = 10_000_000


class CoNeSTraining(ScriptedLoadableModule):
    """Module description shown in Slicer."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("CoNeS Training")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Image Synthesis")]
        self.parent.dependencies = ["CoNeSSynthesis"]
        self.parent.contributors = ["CoNeS Slicer extension developers"]
        self.parent.helpText = (
            _(
                "Train a CoNeS model that synthesizes one MRI sequence from others, on a folder of co-registered "
                "cases in BraTS naming (CASE/CASE_t1.nii.gz, _t1ce, _t2, _flair; BraTS 2023 names work too).<br><br>"
                "Choose the dataset folder, the source sequences and the target, the model size (lite for CPUs, "
                "paper for GPUs), the number of iterations and a run folder, then Start. The run is the 'cones "
                "train' command in a background process: the progress bar, the losses and the validation PSNR "
                "update while Slicer stays responsive. Stop ends it; tick Resume and Start to continue it. The run "
                "folder then holds last.pt and best.pt, which CoNeS Synthesis reads.<br><br>Method: "
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


@parameterNodeWrapper
class CoNeSTrainingParameterNode:
    """What the user chose in CoNeS Training (saved with the scene).

    dataDirectory - the folder of case folders to train on; empty until chosen.
    outputDirectory - the run folder (last.pt, best.pt, log.jsonl); empty until chosen.
    t1Source - whether T1 is a source.
    t1ceSource - whether T1ce is a source.
    t2Source - whether T2 is a source.
    flairSource - whether FLAIR is a source.
    target - the sequence to learn to synthesize.
    preset - the model size: lite (CPU) or paper (GPU).
    iterations - optimisation steps in all.
    batchSize - training crops per step.
    cropRows - rows of a training crop.
    cropColumns - columns of a training crop.
    validationInterval - iterations between validations (and best.pt updates).
    seed - seeds initialisation, sampling and augmentation.
    device - where the network runs.
    resume - continue the run in the run folder instead of starting a new one.
    resample - resample sequences on other grids onto the first source instead of refusing them.
    initialModel - optional trained model to fine-tune instead of starting from random weights; empty for none.

    Paths are text bound to plain line edits: an unset ``Path`` parameter reads as ``Path()`` and shows
    as "." in the panel, and a ``ctkPathLineEdit`` cannot be cleared (see :func:`CoNeSCommon.application.choosePath`).
    """

    dataDirectory: str = ""
    outputDirectory: str = ""
    t1Source: bool = True
    t1ceSource: bool = False
    t2Source: bool = True
    flairSource: bool = True
    target: Sequence = Sequence.T1CE
    preset: Annotated[str, Choice(list(PRESETS))] = TRAIN_DEFAULTS.preset
    iterations: Annotated[int, WithinRange(1, _MANY)] = TRAIN_DEFAULTS.iterations
    batchSize: Annotated[int, WithinRange(1, 1024)] = TRAIN_DEFAULTS.batch_size
    cropRows: Annotated[int, WithinRange(16, 4096)] = TRAIN_DEFAULTS.crop_size[0]
    cropColumns: Annotated[int, WithinRange(16, 4096)] = TRAIN_DEFAULTS.crop_size[1]
    validationInterval: Annotated[int, WithinRange(1, _MANY)] = TRAIN_DEFAULTS.validation_interval
    seed: Annotated[int, WithinRange(0, 2**31 - 1)] = TRAIN_DEFAULTS.seed
    device: Device = Device.AUTO
    resume: bool = False
    resample: bool = False
    initialModel: str = ""


def chosenPath(text: str) -> Path | None:
    """The path typed or browsed into a path field, or None while the field is empty."""
    return Path(text.strip()) if text.strip() else None


def trainingRequest(parameterNode: CoNeSTrainingParameterNode) -> TrainingRequest:
    """The request the parameter node describes.

    Raises:
        ValueError: the dataset folder or the run folder is not chosen yet (an empty path would mean
            Slicer's working folder).
    """
    dataDirectory, outputDirectory = chosenPath(parameterNode.dataDirectory), chosenPath(parameterNode.outputDirectory)
    if dataDirectory is None or outputDirectory is None:
        raise ValueError(_("Choose the dataset folder and the run folder."))
    return TrainingRequest(
        dataDirectory=dataDirectory,
        outputDirectory=outputDirectory,
        sources=tuple(sequence for sequence, name in SOURCE_PARAMETERS.items() if getattr(parameterNode, name)),
        target=parameterNode.target,
        preset=parameterNode.preset,
        iterations=parameterNode.iterations,
        batchSize=parameterNode.batchSize,
        cropSize=(parameterNode.cropRows, parameterNode.cropColumns),
        validationInterval=parameterNode.validationInterval,
        seed=parameterNode.seed,
        device=parameterNode.device,
        resume=parameterNode.resume,
        resample=parameterNode.resample,
        initialModel=chosenPath(parameterNode.initialModel),
    )


class CoNeSTrainingWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The panel: binds the parameter node to the .ui, runs one training at a time, shows its progress."""

    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._job = None

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/CoNeSTraining.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = CoNeSTrainingLogic()
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.startButton.connect("clicked(bool)", self.onStartButton)
        self.ui.initialModelFileButton.connect("clicked(bool)", self.onChooseInitialModel)
        self.ui.dataDirectoryFolderButton.connect(
            "clicked(bool)", lambda: self._chooseFolder("dataDirectory", _("Choose the folder of case folders"))
        )
        self.ui.outputDirectoryFolderButton.connect(
            "clicked(bool)", lambda: self._chooseFolder("outputDirectory", _("Choose the run folder"))
        )
        self.initializeParameterNode()

    def cleanup(self):
        """Called when the application closes: stop a running training, drop every observer."""
        if self._job is not None:
            self._job.stop()
        self.removeObservers()

    def enter(self):
        self.initializeParameterNode()

    def exit(self):
        self.setParameterNode(None)

    def onSceneStartClose(self, caller, event):
        """A training run does not depend on the scene, so it keeps running; only the GUI binding goes."""
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event):
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self):
        self.setParameterNode(self.logic.getParameterNode())

    def setParameterNode(self, parameterNode):
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtons)
        self._parameterNode = parameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtons)
            self._updateButtons()

    def onChooseInitialModel(self):
        """Browse for the model to start from; clearing the text field goes back to random weights."""
        chosen = choosePath(
            slicer.util.mainWindow(),
            _("Choose the model to start from"),
            self._parameterNode.initialModel,
            nameFilter=_("CoNeS models (*.pt)"),
        )
        if chosen is not None:
            self._parameterNode.initialModel = chosen

    def _chooseFolder(self, parameterName, title):
        """Browse for the folder of a folder parameter (its text field also takes a typed path)."""
        chosen = choosePath(slicer.util.mainWindow(), title, getattr(self._parameterNode, parameterName), folder=True)
        if chosen is not None:
            setattr(self._parameterNode, parameterName, chosen)

    def _updateButtons(self, caller=None, event=None):
        """Start needs the dataset folder and the run folder; while a run goes, the button stops it."""
        running = self._job is not None
        parameters = self._parameterNode
        chosen = parameters is not None and all(
            chosenPath(text) is not None for text in (parameters.dataDirectory, parameters.outputDirectory)
        )
        self.ui.startButton.text = _("Stop") if running else _("Start")
        self.ui.startButton.enabled = running or chosen
        self.ui.dataCollapsibleButton.enabled = not running
        self.ui.trainingCollapsibleButton.enabled = not running
        self.ui.advancedCollapsibleButton.enabled = not running

    def onStartButton(self):
        """Start trains; while a run is going the same button stops it."""
        if self._job is not None:
            self.ui.statusLabel.text = _("Stopping...")
            self._job.stop()
            return
        with slicer.util.tryWithErrorDisplay(_("CoNeS training could not start."), waitCursor=True):
            self.ui.processLogTextEdit.clear()
            self._job = self.logic.train(
                trainingRequest(self._parameterNode),
                wait=False,
                onProgress=self._onProgress,
                onLog=self.ui.processLogTextEdit.appendPlainText,
                onDone=self._onDone,
            )
            self.ui.progressBar.value = 0
            self.ui.metricsLabel.text = ""
            self.ui.statusLabel.text = _("Preparing the data (the first run builds a slice cache)...")
        self._updateButtons()

    def _onProgress(self, progress: TrainingProgress):
        self.ui.progressBar.value = round(100 * progress.fraction)
        self.ui.statusLabel.text = _("Training...")
        self.ui.metricsLabel.text = progress.summary()

    def _onDone(self, job: TrainingJob):
        self._job = None
        self._updateButtons()
        self.ui.metricsLabel.text = job.progress.summary()
        if job.status is JobStatus.SUCCEEDED:
            self.ui.progressBar.value = 100
            self.ui.statusLabel.text = _("Done: {last} (best validation: {best})").format(
                last=job.lastModelPath, best=job.bestModelPath
            )
        elif job.status is JobStatus.CANCELLED:
            self.ui.statusLabel.text = _("Stopped. Tick Resume and Start to continue from {last}.").format(
                last=job.lastModelPath
            )
        else:
            self.ui.statusLabel.text = _("Failed: {message}").format(message=job.process.errorMessage)
            slicer.util.errorDisplay(_("CoNeS training failed: {message}").format(message=job.process.errorMessage))


class CoNeSTrainingLogic(ScriptedLoadableModuleLogic):
    """The console API of the module; it needs no GUI.

    Example::

        import CoNeSTraining
        from CoNeSTrainingLib.training import TrainingRequest
        from cones.sequences import Sequence
        request = TrainingRequest(Path("data"), Path("run"), (Sequence.T1, Sequence.T2, Sequence.FLAIR), Sequence.T1CE,
                                  preset="lite", iterations=2000)
        last = CoNeSTraining.CoNeSTrainingLogic().train(request)
    """

    def getParameterNode(self):
        return CoNeSTrainingParameterNode(super().getParameterNode())

    def ensureDependencies(self):
        """Install PyTorch and the other requirements on first use, after asking (shared with CoNeS Synthesis)."""
        dependencies.ensureDependencies(Path(slicer.app.temporaryPath))

    def train(self, request, wait=True, onProgress=None, onDone=None, onLog=None):
        """Train a model as ``cones train`` would.

        Args:
            request: a :class:`~CoNeSTrainingLib.training.TrainingRequest`.
            wait: True trains to the end and returns the path of ``last.pt`` (scripts); False returns the
                running :class:`~CoNeSTrainingLib.training.TrainingJob` at once (GUI), which has ``stop()``.
            onProgress: called with the :class:`~CoNeSTrainingLib.training.TrainingProgress` as it changes.
            onDone: called with the job when the process has ended.
            onLog: called with each output line of the process but tqdm's progress bar (the panel's process log).

        Raises:
            ValueError: the request is refused (the message says why).
            RuntimeError: training failed or (``wait=True``) was stopped.
        """
        self.ensureDependencies()
        job = TrainingJob(request, pythonInterpreter(), onProgress=onProgress, onLog=onLog, onDone=onDone)
        job.start(launchSlicerProcess)
        if not wait:
            return job
        runEventLoopUntil(lambda: job.process.status is not JobStatus.RUNNING)
        job.process.raiseForStatus()
        return job.lastModelPath


class CoNeSTrainingTest(ScriptedLoadableModuleTest):
    """Runs inside Slicer: a two-iteration lite run on generated cases, from the console API and the panel."""

    def setUp(self):
        slicer.mrmlScene.Clear()
        # A clean Slicer under ctest has none of the requirements, and pip_ensure skips them in testing mode.
        dependencies.ensureDependencies(Path(slicer.app.temporaryPath), installWithoutAsking=True)

    def runTest(self):
        self.setUp()
        self.test_trainWritesAModelForTheChosenSequences()
        self.setUp()
        self.test_panelStartTrainsAndShowsProgress()

    def _request(self, **changes):
        folder = newWorkDirectory()
        data = testing.writeSyntheticDataset(folder / "data", cases=2)
        options = {
            "preset": "lite",
            "iterations": 2,
            "batchSize": 1,
            "cropSize": (32, 32),
            "validationInterval": 1,
            "device": Device.CPU,
        }
        sources = (Sequence.T1, Sequence.T2, Sequence.FLAIR)
        return TrainingRequest(data, folder / "run", sources, Sequence.T1CE, **{**options, **changes})

    def _waitFor(self, condition, timeoutSeconds=600):
        """Let the event loop run (the job's callbacks come from it) until ``condition()`` holds."""
        self.assertTrue(runEventLoopUntil(condition, timeoutSeconds), "timed out waiting for the training")

    def test_trainWritesAModelForTheChosenSequences(self):
        self.delayDisplay("Training from the console API")
        request = self._request()
        last = CoNeSTrainingLogic().train(request)
        card = readModelCard(last)
        self.assertEqual(card.sources, request.sources)
        self.assertEqual(card.targets, (Sequence.T1CE,))
        self.assertEqual(card.provenance.iterations, 2)

    def test_panelStartTrainsAndShowsProgress(self):
        self.delayDisplay("Start in the panel")
        slicer.util.selectModule("CoNeSTraining")
        widget = slicer.modules.conestraining.widgetRepresentation().self()
        request = self._request()
        parameters = widget.logic.getParameterNode()
        self.assertFalse(widget.ui.startButton.enabled, "Start waits for the dataset and run folders")
        parameters.dataDirectory = str(request.dataDirectory)
        parameters.outputDirectory = str(request.outputDirectory)
        parameters.preset = request.preset
        parameters.iterations = request.iterations
        parameters.batchSize = request.batchSize
        parameters.cropRows, parameters.cropColumns = request.cropSize
        parameters.validationInterval = request.validationInterval
        parameters.device = request.device
        widget.ui.startButton.click()
        self.assertEqual(widget.ui.startButton.text, "Stop")
        self._waitFor(lambda: widget.ui.startButton.text == "Start")
        self.assertTrue((request.outputDirectory / LAST_MODEL_NAME).is_file(), widget.ui.statusLabel.text)
        self.assertEqual(widget.ui.progressBar.value, 100)
        self.assertIn("iteration 2 / 2", widget.ui.metricsLabel.text)
        self.assertIn("PSNR", widget.ui.metricsLabel.text)
