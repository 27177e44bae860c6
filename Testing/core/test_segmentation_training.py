"""``cones train-seg`` across sessions: exact resume, fine-tuning from a model, cases held cropped.

A CPU run of the bundled segmentation model spans sessions, so a stopped run must continue to the
very weights an uninterrupted run reaches, and a resume or a start model that does not fit the run
must be refused before any step is taken.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from synthetic_cases import write_case

from cones.checkpoint import CheckpointError
from cones.cli import main
from cones.data.discovery import find_cases
from cones.segmentation import load_segmentation_model
from cones.segmentation.base import InputNormalization
from cones.segmentation.builtin import UNetConfig, save_segmentation_model
from cones.segmentation.training import (
    TRAINING_STATE_NAME,
    SegmentationTrainingConfig,
    TrainingCase,
    _prepared,
    load_training_case,
    train_segmentation,
)
from cones.sequences import Sequence

SHAPE = (16, 32, 32)
SEQUENCES = ("t1", "t1ce", "t2", "flair")
TINY_NETWORK = UNetConfig(channels=(4, 8), strides=(2,), patch_size=SHAPE)


def tiny_config(iterations: int, **changes: object) -> SegmentationTrainingConfig:
    settings: dict[str, object] = {"network": TINY_NETWORK, "checkpoint_interval": 2, **changes}
    return SegmentationTrainingConfig(iterations=iterations, **settings)  # type: ignore[arg-type]


class Stop(Exception):
    """Raised by a progress callback to stop a run the way a closed session does."""


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    for seed in range(2):
        write_case(root, f"case{seed}", shape=SHAPE, seed=seed)
    return root


@pytest.fixture(scope="module")
def uninterrupted(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("whole")
    return train_segmentation(dataset, SEQUENCES, run, tiny_config(5), device="cpu")


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_segmentation_model(path).network.state_dict()


def losses(run: Path) -> list[tuple[int, float]]:
    lines = (run / "log.jsonl").read_text().splitlines()
    return [(entry["iteration"], entry["loss"]) for entry in map(json.loads, lines)]


def test_a_stopped_run_resumes_to_the_weights_of_an_uninterrupted_one(
    dataset: Path, uninterrupted: Path, tmp_path: Path
) -> None:
    def stop_after_three(done: int, total: int, loss: float) -> None:
        if done == 3:
            raise Stop

    with pytest.raises(Stop):
        train_segmentation(dataset, SEQUENCES, tmp_path, tiny_config(5), device="cpu", progress=stop_after_three)
    assert len(losses(tmp_path)) == 3  # the third step ran after the checkpoint of step 2
    assert load_segmentation_model(tmp_path / "last.pt").card.provenance.iterations == 2

    resumed = train_segmentation(dataset, SEQUENCES, tmp_path, tiny_config(5), device="cpu", resume=True)

    assert losses(tmp_path) == losses(uninterrupted.parent)  # step 3 logged once, with the same loss
    expected, found = weights(uninterrupted), weights(resumed)
    assert expected.keys() == found.keys()
    assert all(torch.equal(expected[name], found[name]) for name in expected)
    assert load_segmentation_model(resumed).card.provenance.iterations == 5


def test_a_resume_may_ask_for_more_steps(dataset: Path, uninterrupted: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    train_segmentation(dataset, SEQUENCES, run, tiny_config(5), device="cpu")
    longer = train_segmentation(dataset, SEQUENCES, run, tiny_config(6), device="cpu", resume=True)
    assert [step for step, _ in losses(run)] == [1, 2, 3, 4, 5, 6]
    assert load_segmentation_model(longer).card.provenance.iterations == 6
    assert any(
        not torch.equal(a, b) for a, b in zip(weights(uninterrupted).values(), weights(longer).values(), strict=True)
    )


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (tiny_config(5, batch_size=1), "settings differ from the saved run: batch_size 2 (now 1)"),
        (tiny_config(5, seed=1), "settings differ from the saved run: seed 0 (now 1)"),
        (tiny_config(5), "it has finished 5 iterations, and --iterations 5 asks for no more"),
    ],
)
def test_a_resume_is_refused_when_it_would_not_continue_the_run(
    dataset: Path, uninterrupted: Path, config: SegmentationTrainingConfig, message: str
) -> None:
    before = (uninterrupted.parent / TRAINING_STATE_NAME).read_bytes()
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        train_segmentation(dataset, SEQUENCES, uninterrupted.parent, config, device="cpu", resume=True)
    assert (uninterrupted.parent / TRAINING_STATE_NAME).read_bytes() == before


def test_a_resume_on_other_cases_is_refused(uninterrupted: Path, tmp_path: Path) -> None:
    write_case(tmp_path / "other", "case9", shape=SHAPE, seed=9)
    with pytest.raises(ValueError, match="not the ones the run was trained on"):
        train_segmentation(tmp_path / "other", SEQUENCES, uninterrupted.parent, tiny_config(6), resume=True)


def test_a_resume_needs_a_checkpoint_and_a_training_state(dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=f"holds no {TRAINING_STATE_NAME}"):
        train_segmentation(dataset, SEQUENCES, tmp_path, tiny_config(5), device="cpu", resume=True)
    (tmp_path / TRAINING_STATE_NAME).write_bytes(b"not a state")
    with pytest.raises(CheckpointError):
        train_segmentation(dataset, SEQUENCES, tmp_path, tiny_config(5), device="cpu", resume=True)


def test_init_from_starts_from_the_model_and_records_the_data_it_saw(
    dataset: Path, uninterrupted: Path, tmp_path: Path
) -> None:
    trained = load_segmentation_model(uninterrupted)
    shifted = {
        name: value + 0.5 if value.is_floating_point() else value for name, value in weights(uninterrupted).items()
    }
    trained.network.load_state_dict(shifted)  # weights no fresh run comes near
    start = save_segmentation_model(tmp_path / "start.pt", trained.network, trained.card)

    tuned = train_segmentation(
        dataset, SEQUENCES, tmp_path / "tuned", tiny_config(1), device="cpu", initial_model=start
    )

    # one Adam step moves each weight by about the learning rate (1e-3) at most
    assert all((weights(tuned)[name] - value).abs().max() <= 2e-3 for name, value in shifted.items())
    provenance = load_segmentation_model(tuned).card.provenance
    assert provenance.earlier_data_fingerprints == (trained.card.provenance.data_fingerprint,)


def test_init_from_refuses_a_model_of_another_network(dataset: Path, uninterrupted: Path, tmp_path: Path) -> None:
    other = SegmentationTrainingConfig(
        iterations=1, network=UNetConfig(channels=(8, 16), strides=(2,), patch_size=SHAPE)
    )
    with pytest.raises(ValueError, match=r"cannot start from .* differs from this run in network"):
        train_segmentation(dataset, SEQUENCES, tmp_path, other, device="cpu", initial_model=uninterrupted)
    assert not (tmp_path / "last.pt").exists()


def test_train_seg_resume_and_init_from_on_the_command_line(
    dataset: Path, uninterrupted: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    tiny = ["--patch-size", *map(str, SHAPE), "--channels", "4", "8", "--device", "cpu", "--checkpoint-interval", "1"]
    run = tmp_path / "run"
    assert main(["train-seg", "--data", str(dataset), "--output", str(run), "--iterations", "1", *tiny]) == 0
    assert main(["train-seg", "--data", str(dataset), "--output", str(run), "--iterations", "2", *tiny]) == 2
    assert "--resume" in capsys.readouterr().err
    assert (
        main(["train-seg", "--data", str(dataset), "--output", str(run), "--iterations", "2", "--resume", *tiny]) == 0
    )
    assert load_segmentation_model(run / "last.pt").card.provenance.iterations == 2
    both = ["--resume", "--init-from", str(uninterrupted)]
    assert main(["train-seg", "--data", str(dataset), "--output", str(run), "--iterations", "3", *both, *tiny]) == 2
    assert "do not give an initial model as well" in capsys.readouterr().err


def test_cases_are_held_cropped_to_their_foreground(dataset: Path) -> None:
    sequences = tuple(Sequence(name) for name in SEQUENCES)
    case = load_training_case(find_cases(dataset)[0], sequences, InputNormalization())
    margin = [(0, 0), (3, 5), (10, 2), (7, 7)]
    padded = TrainingCase(
        np.pad(case.channels, margin, constant_values=-1.0),
        np.pad(case.classes, margin[1:]),
        np.pad(case.foreground, margin[1:]),
        case.tumour + np.array([3, 10, 7]),
    )
    small_patches = tiny_config(1, network=UNetConfig(channels=(4, 8), strides=(2,), patch_size=(4, 8, 8)))
    cropped = _prepared(padded, small_patches)
    found = np.argwhere(case.foreground | (case.classes > 0))
    box = tuple(int(n) for n in found.max(axis=0) - found.min(axis=0) + 1)
    assert cropped.classes.shape == box and cropped.channels.shape == (4, *box)
    assert cropped.foreground.sum() == case.foreground.sum()
    assert (cropped.classes > 0).sum() == (case.classes > 0).sum()
    assert np.all(cropped.classes[tuple(cropped.tumour.T)] > 0)  # the tumour list follows the crop

    large_patches = tiny_config(1, network=UNetConfig(channels=(4, 8), strides=(2,), patch_size=(16, 40, 40)))
    grown = _prepared(padded, large_patches)
    assert grown.classes.shape == (16, 40, 40)  # grown to one patch inside the volume (24 x 44 x 46), not padded
    assert (grown.classes > 0).sum() == (case.classes > 0).sum()
    assert np.all(grown.classes[tuple(grown.tumour.T)] > 0)
