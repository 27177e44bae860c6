"""A ``cones train`` run from Slicer: the checked command, the live progress, and the run's log.

The run is the command line's, in a background process (:mod:`CoNeSCommon.jobs`), so the GUI
stays responsive and a run started here is exactly one that could have been typed. Progress comes
from two places: tqdm's ``training: ... | 9/20 [...]`` lines give the iteration as soon as it is
done, and ``log.jsonl`` in the run folder gives the losses every ``--log-interval`` iterations and
the validation PSNR/SSIM every ``--validation-interval``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from CoNeSCommon.jobs import (
    BackgroundLauncher,
    Device,
    JobStatus,
    ProcessJob,
    ProcessStarter,
    conesCommand,
    conesEnvironment,
    startPlainProcess,
)

from cones.cli import build_parser
from cones.sequences import Sequence

if TYPE_CHECKING:
    import argparse

__all__ = [
    "BEST_MODEL_NAME",
    "LAST_MODEL_NAME",
    "LOG_FILE_NAME",
    "PRESETS",
    "TRAIN_DEFAULTS",
    "TrainingJob",
    "TrainingLog",
    "TrainingProgress",
    "TrainingRequest",
    "isProgressBarLine",
    "parseTqdmIteration",
    "trainingCommand",
]

logger = logging.getLogger(__name__)

LOG_FILE_NAME, LAST_MODEL_NAME, BEST_MODEL_NAME = "log.jsonl", "last.pt", "best.pt"
"""The files ``cones train`` writes into its run folder."""

PRESETS = ("lite", "paper")
"""The model sizes ``cones train --preset`` accepts (``cones.model.Preset``, which imports torch)."""


def _trainDefaults() -> argparse.Namespace:
    """The ``cones train`` defaults, read from the command line's own parser so they never drift apart."""
    return build_parser().parse_args(["train", "--data", ".", "--sources", "t1", "--target", "t1ce", "--output", "."])


TRAIN_DEFAULTS = _trainDefaults()

_TQDM_PROGRESS = re.compile(r"^training:.*?\|\s*(\d+)/(\d+)\s*\[")


@dataclass(frozen=True)
class TrainingRequest:
    """The options of one ``cones train`` run (defaults: the command line's).

    Attributes:
        dataDirectory: folder of case folders in BraTS naming.
        outputDirectory: the run folder (``last.pt``, ``best.pt``, ``log.jsonl``).
        sources: source sequences, in the channel order the model will expect.
        target: the sequence to learn to synthesize.
        preset: model size, one of :data:`PRESETS`.
        iterations: optimisation steps in all (a resumed run continues up to this number).
        batchSize: crops per step.
        cropSize: (rows, columns) of the training crops.
        validationInterval: iterations between validations (and ``best.pt`` updates).
        seed: seeds initialisation, sampling and augmentation.
        device: where the network runs.
        resume: continue the run in ``outputDirectory`` from its ``last.pt``.
        allowNewData: let ``resume`` continue on data other than the run's (refused otherwise, as
            ``cones train --allow-new-data``; the model keeps the earlier data fingerprints).
        resample: resample sequences on other grids onto the first source instead of refusing them.
        initialModel: a trained model to fine-tune on this data (e.g. the bundled one) instead of
            starting from random weights; it must have the same preset and sequences.
    """

    dataDirectory: Path
    outputDirectory: Path
    sources: tuple[Sequence, ...]
    target: Sequence
    preset: str = TRAIN_DEFAULTS.preset
    iterations: int = TRAIN_DEFAULTS.iterations
    batchSize: int = TRAIN_DEFAULTS.batch_size
    cropSize: tuple[int, int] = tuple(TRAIN_DEFAULTS.crop_size)
    validationInterval: int = TRAIN_DEFAULTS.validation_interval
    seed: int = TRAIN_DEFAULTS.seed
    device: Device = Device.AUTO
    resume: bool = False
    allowNewData: bool = False
    resample: bool = False
    initialModel: Path | None = None


def trainingCommand(python: str, request: TrainingRequest) -> list[str]:
    """The ``python -m cones.cli train ...`` command of a request, checked by the command line's parser.

    Raises:
        ValueError: no source, the target is also a source, the dataset folder or the initial model
            does not exist, or the parser refuses an option (its message).
    """
    if not request.sources:
        raise ValueError("choose at least one source sequence")
    if request.target in request.sources:
        raise ValueError(f"{request.target.display_name} cannot be both a source and the target")
    if not Path(request.dataDirectory).is_dir():
        raise ValueError(f"the dataset folder {str(request.dataDirectory)!r} does not exist")
    arguments = [
        "train",
        "--data", str(request.dataDirectory),
        "--sources", *(sequence.value for sequence in request.sources),
        "--target", request.target.value,
        "--preset", request.preset,
        "--iterations", str(request.iterations),
        "--batch-size", str(request.batchSize),
        "--crop-size", *(str(size) for size in request.cropSize),
        "--validation-interval", str(request.validationInterval),
        "--seed", str(request.seed),
        "--device", request.device.value,
        "--output", str(request.outputDirectory),
    ]  # fmt: skip
    if request.resume:
        arguments.append("--resume")
    if request.allowNewData:
        arguments.append("--allow-new-data")
    if request.resample:
        arguments.append("--resample")
    if request.initialModel is not None:
        if not Path(request.initialModel).is_file():
            raise ValueError(f"the initial model {str(request.initialModel)!r} does not exist")
        arguments += ["--init-from", str(request.initialModel)]
    return conesCommand(python, arguments)


@dataclass(frozen=True)
class TrainingProgress:
    """What a run has reached, for a progress bar and a one-line readout.

    Attributes:
        iterations: the iterations the run will do in all.
        iteration: iterations done.
        seconds: training time at the last log line.
        generator: generator loss at the last log line.
        discriminator: discriminator (hinge) loss at the last log line.
        reconstruction: L1 reconstruction loss at the last log line.
        psnr: validation PSNR (dB) of the last validation.
        ssim: validation SSIM of the last validation.
        validationIteration: the iteration of the last validation.
    """

    iterations: int
    iteration: int = 0
    seconds: float | None = None
    generator: float | None = None
    discriminator: float | None = None
    reconstruction: float | None = None
    psnr: float | None = None
    ssim: float | None = None
    validationIteration: int | None = None

    @property
    def fraction(self) -> float:
        """Iterations done over iterations in all, in [0, 1]."""
        return min(self.iteration / self.iterations, 1.0) if self.iterations > 0 else 0.0

    def withLogEntry(self, entry: dict) -> TrainingProgress:
        """This progress updated by one ``log.jsonl`` entry (entries of other kinds are ignored)."""
        if entry.get("kind") == "train":
            return dataclasses.replace(
                self,
                iteration=max(self.iteration, int(entry["iteration"])),
                seconds=float(entry["seconds"]),
                generator=float(entry["generator"]),
                discriminator=float(entry["discriminator"]),
                reconstruction=float(entry["reconstruction"]),
            )
        if entry.get("kind") == "validation":
            return dataclasses.replace(
                self, psnr=float(entry["psnr"]), ssim=float(entry["ssim"]), validationIteration=int(entry["iteration"])
            )
        return self

    def summary(self) -> str:
        """E.g. ``"iteration 20 / 100 · L1 0.210 · G 34.70 · D 0.400 · PSNR 16.10 dB, SSIM 0.094 (iteration 20)"``."""
        parts = [f"iteration {self.iteration} / {self.iterations}"]
        if self.reconstruction is not None:
            parts.append(f"L1 {self.reconstruction:.3f} · G {self.generator:.2f} · D {self.discriminator:.3f}")
        if self.psnr is not None:
            parts.append(f"PSNR {self.psnr:.2f} dB, SSIM {self.ssim:.3f} (iteration {self.validationIteration})")
        return " · ".join(parts)


def isProgressBarLine(line: str) -> bool:
    """Whether a line is only a redraw of tqdm's ``training:`` bar (several a second: logged at DEBUG).

    A bar that a log message was printed straight after (``...5.65s/it]INFO iteration 2: ...``) is not
    only a redraw, and stays at INFO.
    """
    return parseTqdmIteration(line) is not None and line.rstrip().endswith("]")


def parseTqdmIteration(line: str) -> int | None:
    """The iteration of a tqdm ``training:`` progress line (``training:  45%|####5 | 9/20 [...]``), else None."""
    match = _TQDM_PROGRESS.match(line.strip())
    return int(match.group(1)) if match else None


class TrainingLog:
    """Reads a run's ``log.jsonl`` incrementally while the run appends to it.

    Only complete lines are read: a line being written is left for the next read.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0

    def readNew(self) -> list[dict]:
        """The entries appended since the last call; a line that is not JSON is logged and skipped."""
        if not self.path.is_file():
            return []
        with self.path.open("rb") as handle:
            handle.seek(self._offset)
            data = handle.read()
        complete = data[: data.rfind(b"\n") + 1]
        self._offset += len(complete)
        entries = []
        for line in complete.decode("utf-8").splitlines():
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                logger.warning("%s: skipping a line that is not JSON: %r", self.path, line[:200])
        return entries


class TrainingJob:
    """One ``cones train`` run in a background process, with live :class:`TrainingProgress`.

    Stopping kills the process; the run folder keeps the last saved ``last.pt`` (written atomically
    every ``--checkpoint-interval``), so the run can be resumed.

    Args:
        request: the run's options.
        python: the interpreter that runs ``cones`` (:func:`~CoNeSCommon.jobs.pythonInterpreter`).
        onProgress: called with the :class:`TrainingProgress` whenever it changes.
        onLog: called with the process's output lines other than tqdm's progress bar.
        onDone: called once with the job when the process has ended.

    Raises:
        ValueError: the request is refused (see :func:`trainingCommand`).
    """

    def __init__(
        self,
        request: TrainingRequest,
        python: str,
        *,
        onProgress: Callable[[TrainingProgress], None] | None = None,
        onLog: Callable[[str], None] | None = None,
        onDone: Callable[[TrainingJob], None] | None = None,
    ) -> None:
        self.request = request
        self.progress = TrainingProgress(iterations=request.iterations)
        self._log = TrainingLog(Path(request.outputDirectory) / LOG_FILE_NAME)
        self._onProgress, self._onLog, self._onDone = onProgress, onLog, onDone
        self.process = ProcessJob(
            trainingCommand(python, request),
            conesEnvironment(),
            onLog=self._handleLine,
            isProgressBar=isProgressBarLine,
            onFinished=self._finish,
        )

    @property
    def status(self) -> JobStatus:
        """The process's status (a stopped run is CANCELLED)."""
        return self.process.status

    @property
    def lastModelPath(self) -> Path:
        """The model after the last saved iteration."""
        return Path(self.request.outputDirectory) / LAST_MODEL_NAME

    @property
    def bestModelPath(self) -> Path:
        """The model of the best validation PSNR."""
        return Path(self.request.outputDirectory) / BEST_MODEL_NAME

    def run(self, startProcess: ProcessStarter = startPlainProcess) -> JobStatus:
        """Train to the end in the calling thread; returns the status."""
        return self.process.run(startProcess)

    def start(self, launcher: BackgroundLauncher) -> None:
        """Start in the background; ``onDone`` tells when it has ended."""
        self.process.start(launcher)

    def stop(self) -> None:
        """Kill the run; what ``last.pt`` holds can be resumed."""
        self.process.cancel()

    def _handleLine(self, line: str) -> None:
        iteration = parseTqdmIteration(line)
        if iteration is None and self._onLog is not None:
            self._onLog(line)
        progress = self.progress if iteration is None else dataclasses.replace(self.progress, iteration=iteration)
        self._update(progress)

    def _update(self, progress: TrainingProgress) -> None:
        for entry in self._log.readNew():
            progress = progress.withLogEntry(entry)
        if progress != self.progress:
            self.progress = progress
            if self._onProgress is not None:
                self._onProgress(progress)

    def _finish(self, process: ProcessJob) -> None:
        self._update(self.progress)
        if self._onDone is not None:
            self._onDone(self)
