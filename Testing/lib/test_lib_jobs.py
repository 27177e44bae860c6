"""The background process runner: progress lines, log lines, failures, cancel and the work folder.

These use tiny Python scripts as the process, so they check the runner itself in milliseconds; the
synthesis tests run the real ``cones`` command through it.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from CoNeSCommon.jobs import (
    Device,
    JobCancelled,
    JobStatus,
    ProcessJob,
    Progress,
    conesCommand,
    conesEnvironment,
    makeWorkDirectory,
    parseProgressLine,
    pythonInterpreter,
    startPlainProcess,
)

from cones.precision import Precision

SLEEPER = "import time; print('CONES_PROGRESS 1 10 synthesize', flush=True); time.sleep(60)"


def script(code: str) -> list[str]:
    return [sys.executable, "-c", code]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("CONES_PROGRESS 3 12 synthesize", Progress(3, 12, "synthesize")),
        ("CONES_PROGRESS 0 0 prepare data", Progress(0, 0, "prepare data")),
        ("CONES_PROGRESS 5 7", Progress(5, 7, "")),
        ("CONES_PROGRESS x 7 synthesize", None),
        ("INFO synthesizing 12 of 40 slices on cpu", None),
        ("", None),
    ],
)
def test_parseProgressLine(line: str, expected: Progress | None) -> None:
    assert parseProgressLine(line) == expected


def test_progress_fraction_is_bounded_and_zero_without_a_total() -> None:
    assert Progress(3, 12, "").fraction == 0.25
    assert Progress(3, 0, "").fraction == 0.0
    assert Progress(13, 12, "").fraction == 1.0


def test_run_reports_progress_and_log_lines_and_removes_the_work_folder(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    progress, lines, finished = [], [], []
    code = "import sys\nfor i in (1, 2): print(f'CONES_PROGRESS {i} 2 synthesize')\nprint('done', file=sys.stderr)"
    job = ProcessJob(
        script(code),
        workDirectory=work,
        onProgress=progress.append,
        onLog=lines.append,
        onFinished=lambda job: finished.append(work.exists()),
    )
    assert job.run() is JobStatus.SUCCEEDED
    assert progress == [Progress(1, 2, "synthesize"), Progress(2, 2, "synthesize")]
    assert lines == ["done"]
    assert finished == [True], "the end callback runs before the work folder is deleted"
    assert not work.exists()
    assert job.errorMessage is None
    job.raiseForStatus()


def test_run_passes_the_environment_and_puts_its_pythonpath_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", "/callers/path")
    lines = []
    code = "import os; print(os.environ['CONES_TEST']); print(os.environ['PYTHONPATH'])"
    job = ProcessJob(script(code), {"CONES_TEST": "here", "PYTHONPATH": "/cones/parent"}, onLog=lines.append)
    job.run()
    assert lines == ["here", os.pathsep.join(["/cones/parent", "/callers/path"])]


def test_conesEnvironment_points_at_the_cones_this_process_runs() -> None:
    import cones

    environment = conesEnvironment()
    assert Path(environment["PYTHONPATH"]) / "cones" == Path(cones.__file__).resolve().parent
    assert environment["PYTHONUNBUFFERED"] == "1"


def test_refused_input_raises_valueerror_with_the_commands_error_line() -> None:
    code = "import sys; print('INFO reading'); print('error: the model needs source sequence(s) T2', file=sys.stderr)"
    job = ProcessJob(script(code + "; sys.exit(2)"))
    assert job.run() is JobStatus.FAILED
    assert job.errorMessage == "the model needs source sequence(s) T2"
    with pytest.raises(ValueError, match=r"^the model needs source sequence\(s\) T2$"):
        job.raiseForStatus()


def test_a_crash_raises_runtimeerror_with_the_last_line() -> None:
    job = ProcessJob(script("raise MemoryError('out of memory')"))
    assert job.run() is JobStatus.FAILED
    with pytest.raises(RuntimeError, match="exit code 1: MemoryError: out of memory"):
        job.raiseForStatus()


def test_cancel_kills_the_process_and_removes_the_work_folder(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "input.nrrd").write_bytes(b"0")
    jobs: list[ProcessJob] = []
    job = ProcessJob(script(SLEEPER), workDirectory=work, onProgress=lambda progress: jobs[0].cancel())
    jobs.append(job)
    started = time.monotonic()
    assert job.run() is JobStatus.CANCELLED
    assert time.monotonic() - started < 30
    assert job.process.returncode != 0
    assert not work.exists()
    with pytest.raises(JobCancelled):
        job.raiseForStatus()


def threadLauncher(args, environment, onLine, onExit) -> subprocess.Popen:
    """A background launcher like Slicer's launchConsoleProcess(blocking=False): a reader thread
    queues the lines and :func:`drain` delivers them on the test's thread, as Slicer's QTimer does."""
    process = startPlainProcess(args, environment)
    events: queue.Queue = queue.Queue()

    def read() -> None:
        for line in process.stdout:
            events.put((onLine, line.rstrip("\n")))
        events.put((onExit, process.wait()))

    threading.Thread(target=read, daemon=True).start()
    process.events = events
    return process


def drain(job: ProcessJob, until, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not until() and time.monotonic() < deadline:
        try:
            callback, value = job.process.events.get(timeout=0.1)
        except queue.Empty:
            continue
        callback(value)


def test_start_returns_at_once_and_cancel_from_the_caller_ends_the_job(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    ended = []
    job = ProcessJob(script(SLEEPER), workDirectory=work, onFinished=lambda job: ended.append(job.status))
    job.start(threadLauncher)
    assert job.status is JobStatus.RUNNING
    drain(job, until=lambda: job.progress is not None)
    job.cancel()
    drain(job, until=lambda: bool(ended))
    assert ended == [JobStatus.CANCELLED]
    assert not work.exists()


def test_a_job_runs_once() -> None:
    job = ProcessJob(script("pass"))
    job.run()
    with pytest.raises(RuntimeError, match="a job runs once"):
        job.run()


def test_a_process_that_cannot_start_removes_the_work_folder(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    job = ProcessJob([str(tmp_path / "no-such-python")], workDirectory=work)
    with pytest.raises(OSError):
        job.run()
    assert not work.exists()


def test_conesCommand_is_checked_by_the_command_lines_parser() -> None:
    arguments = ["synthesize", "--model", "m.pt", "--input", "t1=a.nrrd", "--output", "o.nrrd"]
    assert conesCommand("python", arguments) == ["python", "-m", "cones.cli", *arguments]
    with pytest.raises(ValueError, match="expected SEQUENCE=PATH"):
        conesCommand("python", ["synthesize", "--model", "m.pt", "--input", "t1", "--output", "o.nrrd"])
    with pytest.raises(ValueError, match="the following arguments are required: --output"):
        conesCommand("python", ["synthesize", "--model", "m.pt", "--input", "t1=a.nrrd"])


def test_pythonInterpreter_prefers_slicers_pythonslicer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert pythonInterpreter() == sys.executable
    launcher = tmp_path / "PythonSlicer"
    launcher.write_text("#!/bin/sh\n")
    launcher.chmod(0o755)
    assert pythonInterpreter() == str(launcher)


def test_device_values_are_the_command_lines_and_labels_are_readable() -> None:
    assert [device.value for device in Device] == ["auto", "cpu", "cuda", "mps"]
    assert Device.label(Device.MPS) == "MPS (Apple silicon GPU)"
    assert Device.label(Device.CUDA) == "CUDA (NVIDIA GPU)"


@pytest.mark.parametrize("choices", [Device, Precision], ids=lambda choices: choices.__name__)
def test_each_choice_of_a_panel_combo_box_has_a_label_of_its_own(choices) -> None:
    # Slicer's QComboBoxToEnumConnector shows label(member) where the enum has one, else the member's name
    # (Base/Python/slicer/parameterNodeWrapper/guiConnectors.py), which would read AUTO, FP32, BF16.
    labels = [choices.label(member) for member in choices]
    assert len(set(labels)) == len(labels)
    assert all(labels) and labels != [member.name for member in choices]
    assert choices.label(choices.AUTO).startswith("Automatic")


def failingCallback(argument: object) -> None:
    raise KeyError("a bug in the panel")


@pytest.mark.parametrize("callback", ["onProgress", "onLog", "onSucceeded", "onFinished"])
def test_a_failing_callback_ends_the_job_as_failed_with_its_error(tmp_path: Path, callback: str) -> None:
    work = tmp_path / "work"
    work.mkdir()
    code = "print('CONES_PROGRESS 1 2 synthesize'); print('a log line'); print('CONES_PROGRESS 2 2 synthesize')"
    job = ProcessJob(script(code), workDirectory=work, **{callback: failingCallback})
    assert job.run() is JobStatus.FAILED
    assert job.progress == Progress(2, 2, "synthesize"), "a failing callback does not stop the output being read"
    assert "KeyError in failingCallback" in job.errorMessage and "a bug in the panel" in job.errorMessage
    assert not work.exists()
    with pytest.raises(RuntimeError, match="a bug in the panel"):
        job.raiseForStatus()


def test_a_failing_callback_in_the_background_still_reaches_the_end(tmp_path: Path) -> None:
    ended = []
    job = ProcessJob(
        script("print('CONES_PROGRESS 1 1 synthesize')"),
        onProgress=failingCallback,
        onFinished=lambda job: ended.append(job.status),
    )
    job.start(threadLauncher)
    drain(job, until=lambda: bool(ended))
    assert ended == [JobStatus.FAILED]
    assert job.status is JobStatus.FAILED


@pytest.mark.parametrize(("code", "loads"), [("print('done')", True), ("raise SystemExit(1)", False)])
def test_onSucceeded_reads_the_work_folder_before_the_end_and_only_after_success(
    tmp_path: Path, code: str, loads: bool
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "result.txt").write_text("the result", encoding="utf-8")
    seen = []
    job = ProcessJob(
        script(code),
        workDirectory=work,
        onSucceeded=lambda job: seen.append((work / "result.txt").read_text(encoding="utf-8")),
        onFinished=lambda job: seen.append(job.status),
    )
    job.run()
    assert seen == (["the result", JobStatus.SUCCEEDED] if loads else [JobStatus.FAILED])
    assert not work.exists()


def test_a_failing_onSucceeded_is_seen_as_failed_by_onFinished(tmp_path: Path) -> None:
    ended = []
    job = ProcessJob(
        script("print('done')"), onSucceeded=failingCallback, onFinished=lambda job: ended.append(job.status)
    )
    assert job.run() is JobStatus.FAILED
    assert ended == [JobStatus.FAILED]


def test_makeWorkDirectory_gives_every_job_its_own_folder(tmp_path: Path) -> None:
    folders = [makeWorkDirectory(tmp_path / "temp") for _ in range(50)]
    assert len(set(folders)) == 50
    assert all(folder.is_dir() and folder.parent == tmp_path / "temp" for folder in folders)


def test_discard_ends_the_process_and_removes_the_work_folder_without_an_event_loop(tmp_path: Path) -> None:
    # At application close no event loop delivers the end, so the launcher's callbacks never come.
    work = tmp_path / "work"
    work.mkdir()
    (work / "t1.nrrd").write_bytes(b"copy of a scan")
    ended = []
    job = ProcessJob(script(SLEEPER), workDirectory=work, onFinished=ended.append)
    job.start(lambda args, environment, onLine, onExit: startPlainProcess(args, environment))
    started = time.monotonic()
    job.discard()
    assert time.monotonic() - started < 30
    assert job.process.poll() is not None, "the process has ended"
    assert not work.exists()
    assert job.status is JobStatus.CANCELLED and ended == []
    job._handleExit(job.process.returncode)  # an end that still arrives calls nothing
    assert ended == []
