"""The training library: the checked ``cones train`` command, progress parsing, the log reader, one real run."""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
from pathlib import Path

import pytest
from CoNeSCommon.jobs import Device, JobStatus, startPlainProcess
from CoNeSTrainingLib.training import (
    BEST_MODEL_NAME,
    LAST_MODEL_NAME,
    LOG_FILE_NAME,
    PRESETS,
    TRAIN_DEFAULTS,
    TrainingJob,
    TrainingLog,
    TrainingProgress,
    TrainingRequest,
    isProgressBarLine,
    parseTqdmIteration,
    trainingCommand,
)

from cones.sequences import Sequence

SOURCES = (Sequence.T1, Sequence.T2, Sequence.FLAIR)
TRAIN_ENTRY = {
    "kind": "train",
    "iteration": 20,
    "seconds": 43.2,
    "learning_rate_factor": 0.1,
    "discriminator": 0.40,
    "generator": 34.7,
    "reconstruction": 0.21,
    "adversarial": 1.08,
    "feature_matching": 1.10,
    "latent_regularization": 0.10,
}
VALIDATION_ENTRY = {"kind": "validation", "iteration": 20, "psnr": 16.1, "ssim": 0.094}


def request(tmp_path: Path, **changes) -> TrainingRequest:
    (tmp_path / "data").mkdir(exist_ok=True)
    return dataclasses.replace(TrainingRequest(tmp_path / "data", tmp_path / "run", SOURCES, Sequence.T1CE), **changes)


def test_trainingCommand_is_the_cones_train_command(tmp_path: Path) -> None:
    options = {"preset": "paper", "iterations": 50, "batchSize": 2, "cropSize": (64, 48), "validationInterval": 10}
    command = trainingCommand("python", request(tmp_path, **options, seed=3, device=Device.CPU, resume=True))
    assert command == [
        "python", "-m", "cones.cli", "train",
        "--data", str(tmp_path / "data"),
        "--sources", "t1", "t2", "flair",
        "--target", "t1ce",
        "--preset", "paper",
        "--iterations", "50",
        "--batch-size", "2",
        "--crop-size", "64", "48",
        "--validation-interval", "10",
        "--seed", "3",
        "--device", "cpu",
        "--output", str(tmp_path / "run"),
        "--resume",
    ]  # fmt: skip


def test_trainingCommand_passes_allowNewData_to_a_resume(tmp_path: Path) -> None:
    assert "--allow-new-data" not in trainingCommand("python", request(tmp_path, resume=True))
    assert trainingCommand("python", request(tmp_path, resume=True, allowNewData=True))[-2:] == [
        "--resume",
        "--allow-new-data",
    ]


def test_trainingCommand_fine_tunes_a_chosen_model(tmp_path: Path) -> None:
    model = tmp_path / "bundled.pt"
    model.write_bytes(b"")
    command = trainingCommand("python", request(tmp_path, initialModel=model))
    assert command[-2:] == ["--init-from", str(model)]
    assert "--init-from" not in trainingCommand("python", request(tmp_path))


def test_the_request_defaults_are_the_command_lines(tmp_path: Path) -> None:
    defaults = request(tmp_path)
    assert (defaults.preset, defaults.iterations, defaults.batchSize) == ("lite", 1000, 8)
    assert list(defaults.cropSize) == list(TRAIN_DEFAULTS.crop_size)
    assert defaults.validationInterval == TRAIN_DEFAULTS.validation_interval and not defaults.resume


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"sources": ()}, "choose at least one source"),
        ({"sources": (Sequence.T1, Sequence.T1CE)}, "T1ce cannot be both a source and the target"),
        ({"dataDirectory": Path("/no/such/folder")}, "the dataset folder '/no/such/folder' does not exist"),
        ({"preset": "huge"}, "argument --preset: invalid choice: 'huge'"),
        ({"initialModel": Path("/no/such/model.pt")}, "the initial model '/no/such/model.pt' does not exist"),
    ],
)
def test_trainingCommand_refuses_bad_requests(tmp_path: Path, changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        trainingCommand("python", request(tmp_path, **changes))


def test_the_names_match_the_core() -> None:
    from cones.model import Preset
    from cones.training import run

    assert set(PRESETS) == {preset.value for preset in Preset}
    assert (LOG_FILE_NAME, LAST_MODEL_NAME, BEST_MODEL_NAME) == (run.LOG, run.LAST, run.BEST)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("training:  56%|█████▋    | 1357/2400 [48:52<1:36:19,  5.54s/it, d=1.38, l1=0.064]", 1357),
        ("training:   0%|          | 0/20 [00:00<?, ?it/s]", 0),
        ("training: 100%|██████████| 2/2 [00:11<00:00,  5.65s/it]INFO iteration 2: validation PSNR 6.63 dB", 2),
        ("INFO iteration 2: validation PSNR 6.63 dB, SSIM 0.0181", None),
        ("model written to run/last.pt", None),
    ],
)
def test_parseTqdmIteration(line: str, expected: int | None) -> None:
    assert parseTqdmIteration(line) == expected


def test_progress_takes_losses_and_validation_from_log_entries() -> None:
    progress = TrainingProgress(iterations=100).withLogEntry(TRAIN_ENTRY).withLogEntry(VALIDATION_ENTRY)
    assert (progress.iteration, progress.reconstruction, progress.generator, progress.discriminator) == (
        20,
        0.21,
        34.7,
        0.40,
    )
    assert (progress.psnr, progress.ssim, progress.validationIteration) == (16.1, 0.094, 20)
    assert progress.fraction == 0.2
    assert progress.summary() == (
        "iteration 20 / 100 · L1 0.210 · G 34.70 · D 0.400 · PSNR 16.10 dB, SSIM 0.094 (iteration 20)"
    )
    assert progress.withLogEntry({"kind": "note", "text": "ignored"}) == progress


def test_progress_summary_before_any_log_line() -> None:
    assert TrainingProgress(iterations=10, iteration=3).summary() == "iteration 3 / 10"


def test_the_log_is_read_incrementally_and_a_partial_line_waits(tmp_path: Path) -> None:
    path = tmp_path / LOG_FILE_NAME
    log = TrainingLog(path)
    assert log.readNew() == [], "no log yet"
    half = json.dumps(VALIDATION_ENTRY)
    path.write_text(json.dumps(TRAIN_ENTRY) + "\n" + half[:10], encoding="utf-8")
    assert log.readNew() == [TRAIN_ENTRY]
    with path.open("a", encoding="utf-8") as handle:
        handle.write(half[10:] + "\nnot json\n")
    assert log.readNew() == [VALIDATION_ENTRY]
    assert log.readNew() == []


FAKE_TRAINING = """
for iteration in range(1, 41):
    print(f"training: {iteration * 100 // 40:3d}%|##  | {iteration}/40 [00:01<00:01, 9.1it/s, d=1.38]", flush=True)
print("training: 100%|#####| 40/40 [00:05<00:00,  7.9it/s]INFO iteration 40: validation PSNR 6.63 dB", flush=True)
print("model written to run/last.pt", flush=True)
"""


def test_the_progress_bar_is_parsed_and_logged_at_debug_only(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # a real bar redraws several times a second: at INFO it would flood Slicer's log
    lines = []
    job = TrainingJob(request(tmp_path, iterations=40), sys.executable, onLog=lines.append)
    caplog.set_level(logging.DEBUG, logger="CoNeSCommon.jobs")
    status = job.run(lambda args, environment: startPlainProcess([sys.executable, "-c", FAKE_TRAINING], environment))
    assert status is JobStatus.SUCCEEDED
    assert job.progress.iteration == 40
    info = [
        record.getMessage()
        for record in caplog.records
        if record.levelno == logging.INFO and "%|" in record.getMessage()
    ]
    debug = [record.getMessage() for record in caplog.records if record.levelno == logging.DEBUG]
    assert len(debug) == 40 and all(line.startswith("training:") for line in debug)
    assert len(info) == 1 and info[0].endswith("validation PSNR 6.63 dB"), "a bar with a message after it stays"
    assert lines == ["model written to run/last.pt"], "the panel's log gets the lines that are not the bar"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("training:  45%|####5     | 9/20 [00:01<00:01, 9.1it/s]", True),
        ("training: 100%|######| 2/2 [00:11<00:00,  5.65s/it]INFO iteration 2: validation PSNR 6.63 dB", False),
        ("model written to run/last.pt", False),
    ],
)
def test_isProgressBarLine(line: str, expected: bool) -> None:
    assert isProgressBarLine(line) is expected


def test_a_real_run_reports_progress_losses_and_psnr(tmp_path: Path) -> None:
    pytest.importorskip("slicer")
    from CoNeSSynthesisLib import testing

    testing.writeSyntheticDataset(tmp_path / "data", cases=2)
    options = {"preset": "lite", "iterations": 1, "batchSize": 1, "cropSize": (32, 32), "validationInterval": 1}
    reports, done = [], []
    job = TrainingJob(
        request(tmp_path, **options, device=Device.CPU), sys.executable, onProgress=reports.append, onDone=done.append
    )
    assert job.run() is JobStatus.SUCCEEDED, job.process.errorMessage
    assert done == [job] and job.lastModelPath.is_file() and job.bestModelPath.is_file()
    final = job.progress
    assert (final.iteration, final.iterations, final.fraction) == (1, 1, 1.0)
    assert final.reconstruction is not None and final.psnr is not None and final.validationIteration == 1
    assert reports[-1] == final
