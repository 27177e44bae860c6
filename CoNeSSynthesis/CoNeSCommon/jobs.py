"""Running a ``cones`` command in a background process: output lines, progress, cancel and the end.

torch never runs in Slicer's process: MRML is not thread-safe and the GIL would stall the GUI. Every
synthesis or training run is therefore a ``python -m cones.cli ...`` process. A :class:`ProcessJob`
runs one, either blocking (scripts, the batch script, tests) or through a launcher that reports its
lines and its end on the GUI thread (``slicer.util.launchConsoleProcess(blocking=False, ...)``).
Results reach MRML only in the end callback, so a cancelled run leaves the scene as it was.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections import deque
from collections.abc import Callable, Mapping
from collections.abc import Sequence as SequenceOf
from dataclasses import dataclass
from enum import Enum, StrEnum
from pathlib import Path

import cones
from cones.cli import build_parser

__all__ = [
    "PROGRESS_PREFIX",
    "REFUSED_EXIT_CODE",
    "BackgroundLauncher",
    "Device",
    "JobCancelled",
    "JobStatus",
    "ProcessJob",
    "ProcessStarter",
    "Progress",
    "conesCommand",
    "conesEnvironment",
    "killProcessTree",
    "makeWorkDirectory",
    "parseProgressLine",
    "pythonInterpreter",
    "startPlainProcess",
]

logger = logging.getLogger(__name__)

PROGRESS_PREFIX = "CONES_PROGRESS"
"""The command line reports progress as ``CONES_PROGRESS <done> <total> <stage>`` lines on stdout."""

REFUSED_EXIT_CODE = 2
"""The command line's exit code for refused input (it prints one ``error: ...`` line then)."""

_ERROR_PREFIX = "error: "
_KEPT_LINES = 200

LineCallback = Callable[[str], None]
ExitCallback = Callable[[int], None]
ProcessStarter = Callable[[list[str], Mapping[str, str]], subprocess.Popen]
"""Starts ``args`` with extra environment variables; stdout and stderr merged into one text pipe."""
BackgroundLauncher = Callable[[list[str], Mapping[str, str], LineCallback, ExitCallback], subprocess.Popen]
"""Starts ``args`` and returns at once; later calls the line callback per output line and the exit
callback with the return code, on the thread that owns the scene."""


class Device(StrEnum):
    """Where the network runs; the values are the command line's ``--device`` values."""

    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"
    MPS = "mps"

    @staticmethod
    def label(device: Device) -> str:
        """The text of a device in a combo box (the parameter node GUI connector calls this)."""
        return _DEVICE_LABELS[device]


_DEVICE_LABELS = {
    Device.AUTO: "Automatic (GPU if available)",
    Device.CPU: "CPU",
    Device.CUDA: "CUDA (NVIDIA GPU)",
    Device.MPS: "MPS (Apple silicon GPU)",
}


class JobStatus(Enum):
    """Where a job stands; a cancelled job is told apart from a failed one."""

    NOT_STARTED = "not started"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class JobCancelled(RuntimeError):
    """Raised by :meth:`ProcessJob.raiseForStatus` for a job the user cancelled."""


@dataclass(frozen=True)
class Progress:
    """One progress report of the command line."""

    done: int
    total: int
    stage: str

    @property
    def fraction(self) -> float:
        """Done over total in [0, 1]; 0 while the total is unknown."""
        return min(self.done / self.total, 1.0) if self.total > 0 else 0.0


def parseProgressLine(line: str) -> Progress | None:
    """The :class:`Progress` of a ``CONES_PROGRESS <done> <total> <stage>`` line, or None for any other line."""
    parts = line.strip().split(maxsplit=3)
    if len(parts) < 3 or parts[0] != PROGRESS_PREFIX or not (parts[1].isdigit() and parts[2].isdigit()):
        return None
    return Progress(int(parts[1]), int(parts[2]), parts[3] if len(parts) == 4 else "")


def conesCommand(python: str, arguments: SequenceOf[str]) -> list[str]:
    """``python -m cones.cli <arguments>``, checked first by the command line's own parser.

    Checking here refuses a bad request at once, with argparse's message, instead of after a process
    has started and imported torch.

    Raises:
        ValueError: the arguments do not parse; the message is argparse's error line.
    """
    messages = io.StringIO()
    try:
        with contextlib.redirect_stderr(messages):
            build_parser().parse_args(list(arguments))
    except SystemExit:
        lines = messages.getvalue().strip().splitlines()
        raise ValueError(lines[-1] if lines else f"invalid cones arguments {list(arguments)!r}") from None
    return [python, "-m", "cones.cli", *arguments]


def makeWorkDirectory(parent: Path) -> Path:
    """A new folder in ``parent`` that no other job can be given, for one job's files.

    ``slicer.util.tempDirectory`` names folders by the time to the millisecond, so two jobs started
    in the same millisecond would share one and the first to end would delete the other's files;
    :func:`tempfile.mkdtemp` creates a fresh name atomically.
    """
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="CoNeS-", dir=parent))


def pythonInterpreter() -> str:
    """The interpreter that runs ``cones``: Slicer's ``PythonSlicer`` when there is one, else this one.

    Inside Slicer, ``PythonSlicer`` is on ``PATH`` and sees Slicer's packages (torch included); under a
    plain Python with the slicer-core wheel, the current interpreter is the one with torch.
    """
    return shutil.which("PythonSlicer") or sys.executable


def conesEnvironment() -> dict[str, str]:
    """Environment variables the ``cones`` process needs, set explicitly rather than trusting the launcher's.

    ``PYTHONPATH`` points at the folder holding the ``cones`` package this process imported, so the
    child runs the same code; unbuffered UTF-8 output makes progress lines (and tqdm's bar) arrive
    as they are written and decode on every platform.
    """
    return {
        "PYTHONPATH": str(Path(cones.__file__).resolve().parent.parent),
        "PYTHONUNBUFFERED": "1",
        "PYTHONIOENCODING": "utf-8",
    }


def startPlainProcess(args: list[str], environment: Mapping[str, str]) -> subprocess.Popen:
    """Start ``args`` with this process's environment plus ``environment`` (outside Slicer's launcher).

    A ``PYTHONPATH`` in ``environment`` goes before the caller's own, which is kept: the child must
    find this ``cones`` first, and still everything else the caller could import.
    """
    variables = {**os.environ, **environment}
    if "PYTHONPATH" in environment and os.environ.get("PYTHONPATH"):
        variables["PYTHONPATH"] = os.pathsep.join([environment["PYTHONPATH"], os.environ["PYTHONPATH"]])
    return subprocess.Popen(
        args,
        env=variables,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
        errors="replace",
    )


def killProcessTree(process: subprocess.Popen) -> None:
    """Kill a process and every process it started.

    Slicer's ``PythonSlicer`` is a launcher that runs the real interpreter as its child, so killing
    the launcher alone would leave torch computing; psutil (in the module's requirements, so present
    once the first Apply has set up dependencies) finds the children. Without psutil, as under a
    plain Python that starts the interpreter directly, the process is the whole tree.
    """
    try:
        import psutil
    except ImportError:
        process.kill()
        return
    try:
        children = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return
    process.kill()
    for child in children:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            logger.debug("process %d had already ended", child.pid)


class ProcessJob:
    """One command run in a background process, with progress, cancel and one end callback.

    The job owns an optional work folder (the inputs it wrote, the outputs the process writes) and
    deletes it once the process has ended, succeeded, failed or cancelled, after the end callback
    has read what it needs; a cancelled job therefore leaves nothing behind.

    Args:
        args: the command, e.g. from :func:`conesCommand`.
        environment: variables added to the process's environment (:func:`conesEnvironment`).
        workDirectory: a folder to delete when the job ends.
        onProgress: called with each :class:`Progress` line.
        onLog: called with every other output line (they also go to ``logging``).
        isProgressBar: tells the lines a progress bar redraws (tqdm's, many a second): they go to
            ``logging`` at DEBUG, not INFO, so they do not flood Slicer's log, and are not kept for
            :attr:`errorMessage`; ``onLog`` still gets them (the caller may parse them).
        onSucceeded: called with the job when the process has succeeded, before ``onFinished``, to take
            in its results (read them from the work folder into the scene); if it raises, the job
            ends FAILED with its error, so ``onFinished`` sees the job's true end.
        onFinished: called once with the job when the process has ended, before the work folder is
            deleted.

    An exception raised by a callback is logged and kept in :attr:`callbackError`, and the job then
    ends as FAILED with that error; it never reaches the caller of the callback. Slicer's output
    poller (``launchConsoleProcess(blocking=False)``) stops polling for good when a callback raises,
    which would leave the job RUNNING forever and its panel stuck on "Cancel".
    """

    def __init__(
        self,
        args: SequenceOf[str],
        environment: Mapping[str, str] | None = None,
        *,
        workDirectory: Path | None = None,
        onProgress: Callable[[Progress], None] | None = None,
        onLog: LineCallback | None = None,
        isProgressBar: Callable[[str], bool] | None = None,
        onSucceeded: Callable[[ProcessJob], None] | None = None,
        onFinished: Callable[[ProcessJob], None] | None = None,
    ) -> None:
        self.args = list(args)
        self.environment = dict(environment or {})
        self.workDirectory = workDirectory
        self.status = JobStatus.NOT_STARTED
        self.returnCode: int | None = None
        self.progress: Progress | None = None
        self.process: subprocess.Popen | None = None
        self._onProgress, self._onLog = onProgress, onLog
        self._isProgressBar = isProgressBar
        self._onSucceeded, self._onFinished = onSucceeded, onFinished
        self.callbackError: str | None = None
        self._cancelRequested = False
        self._discarded = False
        self._output: deque[str] = deque(maxlen=_KEPT_LINES)

    def run(self, startProcess: ProcessStarter = startPlainProcess) -> JobStatus:
        """Run to the end in the calling thread, reading output lines as they come; returns the status.

        An interrupt (Ctrl-C in a batch script) or any other exception while waiting cancels the
        job: the process tree is killed and the work folder deleted before the exception goes on,
        so nothing keeps computing or stays behind.
        """
        self._begin(lambda: startProcess(self.args, self.environment))
        try:
            for line in self.process.stdout:
                self._handleLine(line.rstrip("\r\n"))
        except BaseException:
            self.cancel()
            self._handleExit(self.process.wait())
            raise
        self._handleExit(self.process.wait())
        return self.status

    def start(self, launcher: BackgroundLauncher) -> None:
        """Start the process through ``launcher`` and return at once; callbacks come from the launcher."""
        self._begin(lambda: launcher(self.args, self.environment, self._handleLine, self._handleExit))

    def cancel(self) -> None:
        """Kill the process (tree); the job then ends as :attr:`JobStatus.CANCELLED`. No-op unless running."""
        if self.status is JobStatus.RUNNING and not self._cancelRequested:
            self._cancelRequested = True
            logger.info("cancelling %s", " ".join(self.args))
            killProcessTree(self.process)

    def discard(self, timeoutSeconds: float = 10.0) -> None:
        """Stop the process and delete the work folder now, without waiting for its end to be delivered.

        For the application closing (a widget's ``cleanup()``): a background job's end comes through a
        QTimer of Slicer's event loop, which will not run again, so the folder with the copies of the
        patient's scans would stay behind. The end callbacks are not called, now or later.

        Args:
            timeoutSeconds: how long to wait for the killed process to exit (a file it still holds
                open cannot be deleted on Windows); the folder is deleted in any case.
        """
        self._discarded = True
        self.cancel()
        if self.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=timeoutSeconds)
        if self.status is JobStatus.RUNNING:
            self.status = JobStatus.CANCELLED
        self._removeWorkDirectory()

    @property
    def errorMessage(self) -> str | None:
        """Why the job did not succeed: the command's ``error:`` line, else its last line; None otherwise."""
        if self.status is JobStatus.CANCELLED:
            return "cancelled by the user"
        if self.status is not JobStatus.FAILED:
            return None
        if self.callbackError is not None:
            return self.callbackError
        errors = [line.removeprefix(_ERROR_PREFIX) for line in self._output if line.startswith(_ERROR_PREFIX)]
        if errors:
            return errors[-1]
        last = next((line.strip() for line in reversed(self._output) if line.strip()), None)
        return f"the process ended with exit code {self.returnCode}" + (f": {last}" if last else "")

    def raiseForStatus(self) -> None:
        """Raise unless the job succeeded.

        Raises:
            JobCancelled: the user cancelled it.
            ValueError: the command refused its input (exit code 2); the message is its ``error:`` line.
            RuntimeError: the process failed otherwise.
        """
        if self.status is JobStatus.CANCELLED:
            raise JobCancelled(self.errorMessage)
        if self.status is JobStatus.FAILED:
            refused = self.returnCode == REFUSED_EXIT_CODE and self.callbackError is None
            raise (ValueError if refused else RuntimeError)(self.errorMessage)
        if self.status is not JobStatus.SUCCEEDED:
            raise RuntimeError(f"the job has not ended; it is {self.status.value}")

    def _begin(self, start: Callable[[], subprocess.Popen]) -> None:
        if self.status is not JobStatus.NOT_STARTED:
            raise RuntimeError(f"a job runs once; this one is {self.status.value}")
        logger.info("starting %s", " ".join(self.args))
        try:
            self.process = start()
        except OSError:
            self._removeWorkDirectory()
            raise
        self.status = JobStatus.RUNNING

    def _handleLine(self, line: str) -> None:
        progress = parseProgressLine(line)
        if progress is not None:
            self.progress = progress
            self._notify(self._onProgress, progress)
            return
        if self._isProgressBar is not None and self._isProgressBar(line):
            logger.debug(line)
        else:
            self._output.append(line)
            logger.info(line)
        self._notify(self._onLog, line)

    def _handleExit(self, returnCode: int) -> None:
        self.returnCode = returnCode
        if self._discarded:
            return
        if self._cancelRequested:
            self.status = JobStatus.CANCELLED
        elif returnCode != 0 or self.callbackError is not None:
            self.status = JobStatus.FAILED
        else:
            self.status = JobStatus.SUCCEEDED
            self._notify(self._onSucceeded, self)
            if self.callbackError is not None:
                self.status = JobStatus.FAILED
        logger.info("%s: %s", " ".join(self.args), self.status.value)
        self._notify(self._onFinished, self)
        if self.callbackError is not None and self.status is JobStatus.SUCCEEDED:
            self.status = JobStatus.FAILED
        self._removeWorkDirectory()

    def _notify(self, callback: Callable[[object], None] | None, argument: object) -> None:
        """Call ``callback(argument)``; log an exception from it and keep the first one (see the class)."""
        if callback is None:
            return
        try:
            callback(argument)
        except Exception as error:
            logger.exception("a callback of %s failed", " ".join(self.args))
            if self.callbackError is None:
                self.callbackError = f"{type(error).__name__} in {getattr(callback, '__qualname__', callback)}: {error}"

    def _removeWorkDirectory(self) -> None:
        """Delete the work folder; a file another program keeps open (Windows) is logged, not raised."""
        if self.workDirectory is not None and self.workDirectory.exists():
            try:
                shutil.rmtree(self.workDirectory)
            except OSError as error:
                logger.warning("could not delete the work folder %s: %s", self.workDirectory, error)
