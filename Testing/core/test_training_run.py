"""Training runs end to end: logs, checkpoints, exact resume, and DDP on two CPU processes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from synthetic_cases import train_arguments, write_dataset

from cones.checkpoint import load_checkpoint, load_model, load_training_state, strip_training_state
from cones.data import BrightTargetFocus
from cones.training import run
from cones.training.config import TrainConfig
from cones.training.run import train

SMALL = {"preset": "lite", "batch_size": 2, "crop_size": (32, 32), "log_interval": 1, "validation_interval": 3}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("data"), cases=3)


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["generator_state"]


def test_training_writes_checkpoints_log_and_validation(dataset: Path, tmp_path: Path) -> None:
    last = train(TrainConfig(iterations=4, **SMALL), dataset, tmp_path / "run", device="cpu", show_progress=False)
    entries = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [e["iteration"] for e in entries if e["kind"] == "train"] == [1, 2, 3, 4]
    validations = [e for e in entries if e["kind"] == "validation"]
    assert [e["iteration"] for e in validations] == [3, 4]
    assert all(0 < e["ssim"] <= 1 and e["psnr"] > 0 for e in validations)
    assert (tmp_path / "run" / "best.pt").is_file()
    model = load_model(last)
    assert model.card.provenance.iterations == 4
    assert [s.value for s in model.card.sources] == ["t1", "t2", "flair"]
    assert load_training_state(last)["iteration"] == 4


def test_resume_continues_exactly(dataset: Path, tmp_path: Path) -> None:
    constant_rate = {**SMALL, "decay_start": 1.0, "validation_interval": 100}
    straight = train(TrainConfig(iterations=8, **constant_rate), dataset, tmp_path / "a", "cpu", show_progress=False)
    described = "generated cases, seed 0"
    train(
        TrainConfig(iterations=4, **constant_rate), dataset, tmp_path / "b", "cpu", show_progress=False,
        data_description=described,
    )  # fmt: skip
    resumed = train(
        TrainConfig(iterations=8, **constant_rate), dataset, tmp_path / "b", "cpu", resume=True, show_progress=False
    )
    first, second = weights(straight), weights(resumed)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[key], second[key]) for key in first)
    assert load_training_state(resumed)["iteration"] == 8
    assert load_model(resumed).card.provenance.data_description == described  # the resume command did not repeat it


def test_resume_rewrites_the_log_after_the_last_checkpoint(dataset: Path, tmp_path: Path) -> None:
    """A run stopped between checkpoints logged iterations that the resumed run repeats; each stays once."""
    every_other = {**SMALL, "checkpoint_interval": 2, "validation_interval": 100}
    train(TrainConfig(iterations=4, **every_other), dataset, tmp_path / "run", "cpu", show_progress=False)
    log = tmp_path / "run" / "log.jsonl"
    with log.open("a") as handle:
        handle.write(json.dumps({"kind": "train", "iteration": 5, "generator": 99.0}) + "\n")
    train(TrainConfig(iterations=6, **every_other), dataset, tmp_path / "run", "cpu", resume=True, show_progress=False)
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["iteration"] for e in entries if e["kind"] == "train"] == [1, 2, 3, 4, 5, 6]
    assert all(e.get("generator") != 99.0 for e in entries)


def test_existing_run_is_not_overwritten_and_resume_checks_settings(dataset: Path, tmp_path: Path) -> None:
    train(TrainConfig(iterations=1, **SMALL), dataset, tmp_path / "run", "cpu", show_progress=False)
    before = (tmp_path / "run" / "last.pt").read_bytes()
    with pytest.raises(FileExistsError, match="already holds a training run"):
        train(TrainConfig(iterations=2, **SMALL), dataset, tmp_path / "run", "cpu", show_progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        train(TrainConfig(iterations=2, **{**SMALL, "batch_size": 3}), dataset, tmp_path / "run", "cpu", resume=True)
    assert (tmp_path / "run" / "last.pt").read_bytes() == before


def test_fine_tuning_starts_from_an_exported_model(dataset: Path, tmp_path: Path) -> None:
    """One step from a trained model stays next to it; one step from scratch lands far away."""
    trained = train(TrainConfig(iterations=2, **SMALL), dataset, tmp_path / "base", "cpu", show_progress=False)
    exported = strip_training_state(trained, tmp_path / "exported.pt")
    one_step = {**SMALL, "validation_interval": 100}
    tuned = train(
        TrainConfig(iterations=1, seed=1, **one_step),
        dataset,
        tmp_path / "ft",
        "cpu",
        show_progress=False,
        initial_model=exported,
    )
    fresh = train(
        TrainConfig(iterations=1, seed=1, **one_step), dataset, tmp_path / "fresh", "cpu", show_progress=False
    )
    start = weights(exported)

    def distance(path: Path) -> float:
        return max(float((weights(path)[key] - start[key]).abs().max()) for key in start)

    assert distance(tuned) < 1e-3 < 1e-2 < distance(fresh)


def test_fine_tuning_refuses_a_model_of_another_kind(dataset: Path, tmp_path: Path) -> None:
    trained = train(TrainConfig(iterations=1, **SMALL), dataset, tmp_path / "base", "cpu", show_progress=False)
    other_sources = TrainConfig(iterations=1, sources=("t1", "t2"), **SMALL)
    with pytest.raises(ValueError, match=r"cannot start from .*sources"):
        train(other_sources, dataset, tmp_path / "ft", "cpu", show_progress=False, initial_model=trained)
    assert not (tmp_path / "ft" / "last.pt").exists()
    with pytest.raises(ValueError, match="resumed run"):
        train(TrainConfig(iterations=2, **SMALL), dataset, tmp_path / "base", "cpu", resume=True, initial_model=trained)


def test_bright_crop_fraction_focuses_every_batch_of_the_run(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    focuses: list[BrightTargetFocus | None] = []
    sample_batch = run.sample_batch

    def recording_sample_batch(*args, **kwargs):
        focuses.append(args[6])
        return sample_batch(*args, **kwargs)

    monkeypatch.setattr(run, "sample_batch", recording_sample_batch)
    config = TrainConfig(iterations=2, bright_crop_fraction=0.5, bright_crop_threshold=0.4, **SMALL)
    train(config, dataset, tmp_path / "run", "cpu", show_progress=False)
    assert len(focuses) == 2 and all(focus is not None and focus.fraction == 0.5 for focus in focuses)
    assert all(focus.threshold == 0.4 and len(focus.rows) > 0 for focus in focuses)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["bright_crop_fraction"] == 0.5 and saved["bright_crop_threshold"] == 0.4


def test_training_refuses_datasets_without_the_sequences(dataset: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(dataset, data)
    next(data.glob("CASE-001/*_flair.nii.gz")).unlink()
    with pytest.raises(ValueError, match=r"CASE-001.*FLAIR"):
        train(TrainConfig(iterations=1, **SMALL), data, tmp_path / "run", "cpu", show_progress=False)


def test_validation_cases_can_be_named(dataset: Path, tmp_path: Path) -> None:
    config = TrainConfig(iterations=1, validation_case_ids=("CASE-000",), **SMALL)
    train(config, dataset, tmp_path / "run", "cpu", show_progress=False)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["validation_case_ids"] == ["CASE-000"]
    with pytest.raises(ValueError, match=r"validation case\(s\) \['CASE-999'\]"):
        train(TrainConfig(iterations=1, validation_case_ids=("CASE-999",), **SMALL), dataset, tmp_path / "b", "cpu")
    every = ("CASE-000", "CASE-001", "CASE-002")
    with pytest.raises(ValueError, match="leave none for training"):
        train(TrainConfig(iterations=1, validation_case_ids=every, **SMALL), dataset, tmp_path / "c", "cpu")


def test_distributed_training_on_two_cpu_processes(dataset: Path, tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "cones.cli",
        *train_arguments(dataset, tmp_path / "ddp", iterations=3, batch_size=1),
    ]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=environment)
    assert result.returncode == 0, result.stderr[-3000:]
    assert load_training_state(tmp_path / "ddp" / "last.pt")["iteration"] == 3
    train_lines = [json.loads(line) for line in (tmp_path / "ddp" / "log.jsonl").read_text().splitlines()]
    assert len([e for e in train_lines if e["kind"] == "train"]) == 1, "only rank 0 writes the log"
