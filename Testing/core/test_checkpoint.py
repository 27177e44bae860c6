"""Tests of model files: round trips, atomic writes, provenance, and every refusal of a bad file."""

from __future__ import annotations

import json
import os
import pickle
import random
import re
import shutil
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import cones
from cones.checkpoint import (
    FORMAT_NAME,
    FORMAT_VERSION,
    CheckpointError,
    ModelCard,
    Provenance,
    describe_model,
    load_checkpoint,
    load_model,
    load_training_state,
    make_provenance,
    read_model_card,
    save_model,
    strip_training_state,
)
from cones.config import GeneratorConfig, NormalizationConfig
from cones.model import CoNeSGenerator
from cones.sequences import Sequence

SOURCES = ("t1", "t2", "flair")
TARGETS = ("t1ce",)
PROVENANCE = Provenance(
    iterations=12345,
    data_fingerprint="sha256:0123abcd",
    created="2024-05-01T12:00:00+00:00",
    cones_version="0.1.0",
    git_commit="0" * 40,
    command="cones train --config brats.json",
    data_description="BraTS 2021 training cases (CC BY 4.0)",
)


def tiny_config(in_channels: int = 3, out_channels: int = 1, **changes: Any) -> GeneratorConfig:
    fields: dict[str, Any] = {
        "stem_channels": 8,
        "stage_blocks": (1, 1, 1, 1),
        "stage_widths": (4, 4, 8, 8),
        "fpn_channels": 8,
        "mlp_width": 8,
        "coordinate_extent": (32, 32),
    }
    return GeneratorConfig(in_channels=in_channels, out_channels=out_channels, **(fields | changes))


def make_card(sources: tuple = SOURCES, targets: tuple = TARGETS, **changes: Any) -> ModelCard:
    fields: dict[str, Any] = {
        "architecture": "cones",
        "preset": "lite",
        "sources": sources,
        "targets": targets,
        "normalization": NormalizationConfig(),
        "provenance": PROVENANCE,
    }
    fields["generator"] = changes.pop("generator", None) or tiny_config(len(sources), len(targets))
    return ModelCard(**(fields | changes))


def make_generator(card: ModelCard, seed: int = 0) -> CoNeSGenerator:
    torch.manual_seed(seed)
    return CoNeSGenerator(card.generator).eval()


def synthesize(generator: torch.nn.Module, in_channels: int) -> torch.Tensor:
    sources = torch.randn(1, in_channels, 32, 32, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        return generator(sources).image


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    card = make_card()
    return save_model(tmp_path / "model.pt", make_generator(card), card)


class _RunsCode:
    """Pickles as a call to ``os.mkdir``: loading it unsafely creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[[str], None], tuple[str]]:
        return os.mkdir, (str(self.marker),)


@pytest.mark.parametrize(
    ("sources", "targets"),
    [(SOURCES, TARGETS), (("t1", "t2"), ("t1ce", "flair")), (("flair",), ("t2",))],
)
def test_save_model_round_trip_reproduces_outputs_and_card(tmp_path: Path, sources: tuple, targets: tuple) -> None:
    card = make_card(sources, targets)
    generator = make_generator(card)
    path = save_model(tmp_path / "model.pt", generator, card)
    loaded = load_model(path)
    assert loaded.card == card and loaded.path == path
    assert not loaded.generator.training
    expected = synthesize(generator, len(sources))
    assert expected.shape == (1, len(targets), 32, 32)
    torch.testing.assert_close(synthesize(loaded.generator, len(sources)), expected, rtol=0, atol=0)


def test_model_card_round_trips_through_json_with_plain_strings() -> None:
    card = make_card(("t1", "t2"), ("flair", "t1ce"))
    data = card.to_dict()
    assert ModelCard.from_dict(json.loads(json.dumps(data))) == card
    assert [type(value) for value in (data["architecture"], *data["sources"], *data["targets"])] == [str] * 5
    assert data["targets"] == ["flair", "t1ce"]


def test_model_card_accepts_sequence_aliases() -> None:
    card = make_card(("T1", "t2w", "t2f"), ("t1c",))
    assert card.sources == (Sequence.T1, Sequence.T2, Sequence.FLAIR)
    assert card.targets == (Sequence.T1CE,)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"sources": (), "generator": tiny_config()}, "sources must be a non-empty list"),
        (
            {"sources": ("t1", "t2"), "generator": tiny_config()},
            r"2 sources \['t1', 't2'\] but generator.in_channels is 3",
        ),
        (
            {"sources": ("t1", "t2"), "targets": ("t1ce", "flair"), "generator": tiny_config(2, 1)},
            r"2 targets .* generator.out_channels is 1",
        ),
        ({"targets": ("t2",)}, "t2 as both source and target"),
        ({"sources": ("t1", "t1", "t2")}, "more than once"),
        ({"sources": ("t1", "t2", "dwi")}, "unknown sequence name 'dwi'"),
        ({"architecture": "unet"}, "unknown architecture 'unet'"),
        ({"preset": ""}, "preset"),
        ({"normalization": {"lower_percentile": 1.0}}, "normalization must be a NormalizationConfig"),
    ],
)
def test_model_card_rejects_inconsistent_fields(changes: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make_card(**changes)


@pytest.mark.parametrize(
    ("changes", "match"),
    [({"iterations": -1}, "iterations"), ({"created": "yesterday"}, "ISO 8601"), ({"data_fingerprint": None}, "fing")],
)
def test_provenance_rejects_bad_fields(changes: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Provenance(**(PROVENANCE.to_dict() | changes))


def test_make_provenance_records_version_time_and_command() -> None:
    provenance = make_provenance(7, "sha256:ff", command="cones train", data_description="BraTS")
    created = datetime.fromisoformat(provenance.created)
    assert created.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - created) < timedelta(minutes=1)
    assert (provenance.iterations, provenance.cones_version) == (7, cones.__version__)
    assert (provenance.command, provenance.data_description) == ("cones train", "BraTS")


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_make_provenance_records_commit_only_of_a_tracked_source_tree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "cones"
    package.mkdir()
    (package / "__init__.py").write_text("")
    monkeypatch.setattr(cones, "__file__", str(package / "__init__.py"))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "README.md").write_text("")
    subprocess.run([*git, "add", "README.md"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "readme"], cwd=tmp_path, check=True)
    assert make_provenance(1, "fp").git_commit is None  # HEAD exists, but the package is not tracked
    subprocess.run([*git, "add", "cones"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "init"], cwd=tmp_path, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert make_provenance(1, "fp").git_commit == head.stdout.strip()
    monkeypatch.setenv("PATH", str(tmp_path / "no-git-here"))
    assert make_provenance(1, "fp").git_commit is None


def test_save_model_refuses_existing_file_unless_overwrite(model_file: Path) -> None:
    card = make_card()
    other = make_generator(card, seed=1)
    with pytest.raises(FileExistsError, match="already exists"):
        save_model(model_file, other, card)
    save_model(model_file, other, card, overwrite=True)
    torch.testing.assert_close(synthesize(load_model(model_file).generator, 3), synthesize(other, 3))


def test_save_model_leaves_only_the_model_file(tmp_path: Path) -> None:
    card = make_card()
    save_model(tmp_path / "nested" / "model.pt", make_generator(card), card)
    assert [path.name for path in (tmp_path / "nested").iterdir()] == ["model.pt"]


def test_save_model_failure_keeps_previous_file_intact(model_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = model_file.read_bytes()

    def disk_full(payload: object, stream: Any) -> None:
        stream.write(b"PK\x03\x04 half an archive")
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    card = make_card()
    with pytest.raises(OSError, match="No space left"):
        save_model(model_file, make_generator(card, seed=1), card, overwrite=True)
    assert model_file.read_bytes() == before
    assert [path.name for path in model_file.parent.iterdir()] == [model_file.name]


def test_save_model_refuses_state_that_cannot_be_loaded_safely(tmp_path: Path) -> None:
    card = make_card()
    with pytest.raises(CheckpointError, match=r"training_state'\]\['numpy_rng'\]\[1\] is a numpy.ndarray"):
        save_model(tmp_path / "model.pt", make_generator(card), card, {"numpy_rng": np.random.get_state()})
    assert not (tmp_path / "model.pt").exists()


def test_save_model_refuses_generator_built_from_another_config(tmp_path: Path) -> None:
    card = make_card()
    generator = CoNeSGenerator(tiny_config(mlp_width=16))
    with pytest.raises(CheckpointError, match="differing fields: mlp_width"):
        save_model(tmp_path / "model.pt", generator, card)


def test_training_state_round_trip_and_strip(tmp_path: Path) -> None:
    card = make_card()
    generator = make_generator(card)
    optimizer = torch.optim.Adam(generator.parameters(), lr=1e-3)
    generator(torch.randn(1, 3, 32, 32)).image.mean().backward()
    optimizer.step()
    state = {"optimizer": optimizer.state_dict(), "iteration": 1, "torch_rng": torch.get_rng_state()}
    full = save_model(tmp_path / "full.pt", generator, card, state | {"python_rng": random.getstate()})

    restored = load_training_state(full)
    assert restored["iteration"] == 1 and torch.equal(restored["torch_rng"], state["torch_rng"])
    resumed = torch.optim.Adam(make_generator(card, seed=3).parameters(), lr=1e-3)
    resumed.load_state_dict(restored["optimizer"])
    exp_avg = optimizer.state_dict()["state"][0]["exp_avg"]
    torch.testing.assert_close(resumed.state_dict()["state"][0]["exp_avg"], exp_avg)

    small = strip_training_state(full, tmp_path / "small.pt")
    assert small.stat().st_size < full.stat().st_size
    with pytest.raises(CheckpointError, match="no training state"):
        load_training_state(small)
    torch.testing.assert_close(synthesize(load_model(small).generator, 3), synthesize(generator, 3), rtol=0, atol=0)
    before = full.read_bytes()
    for destination in (full, tmp_path / "." / "full.pt"):
        with pytest.raises(CheckpointError, match="it is the model being exported"):
            strip_training_state(full, destination, overwrite=True)
    assert full.read_bytes() == before, "stripping a model onto itself would lose what a resumed run needs"


def test_read_model_card_does_not_build_the_model(tmp_path: Path) -> None:
    card = make_card()
    path = save_model(tmp_path / "model.pt", make_generator(card), card)
    payload = load_checkpoint(path) | {"generator_state": {"not.a.weight": torch.zeros(1)}}
    torch.save(payload, path)
    assert read_model_card(path) == card
    with pytest.raises(CheckpointError, match="do not match the architecture"):
        load_model(path)


def test_describe_model_lists_sequences_parameters_and_provenance(model_file: Path) -> None:
    text = describe_model(model_file)
    parameters = sum(p.numel() for p in make_generator(make_card()).parameters())
    assert re.search(rf"parameters: +{parameters:,}\n", text), text
    assert re.search(r"iterations: +12,345\n", text), text
    for expected in (
        "T1, T2, FLAIR -> T1ce",
        "32 x 32 pixels",
        "percentiles 0.5-99.5",
        "output scale 1000",
        "2024-05-01T12:00:00+00:00",
        "0" * 40,
        "sha256:0123abcd",
        "cones train --config brats.json",
        "BraTS 2021 training cases (CC BY 4.0)",
        "absent (inference only)",
        " MB",
    ):
        assert expected in text, f"{expected!r} missing from:\n{text}"


def _rewritten(path: Path, change: Callable[[dict], object]) -> Path:
    payload = load_checkpoint(path)
    bad = path.with_name("bad.pt")
    torch.save(change(payload), bad)
    return bad


def _with_card(**changes: Any) -> Callable[[dict], dict]:
    return lambda payload: payload | {"card": payload["card"] | changes}


def _written(data: bytes) -> Callable[[Path], Path]:
    def write(path: Path) -> Path:
        bad = path.with_name("bad.pt")
        bad.write_bytes(data)
        return bad

    return write


@pytest.mark.parametrize(
    ("make_bad_file", "match"),
    [
        (lambda path: path.with_name("missing.pt"), "it does not exist"),
        (lambda path: path.parent, "it is not a file"),
        (lambda path: _written(path.read_bytes()[: path.stat().st_size // 2])(path), "truncated or corrupt"),
        (_written(b"not a model, just some notes\n"), "not a PyTorch model file"),
        (_written(b""), "not a PyTorch model file"),
        (lambda path: _rewritten(path, lambda payload: payload["generator_state"]), "bare state_dict"),
        (lambda path: _rewritten(path, lambda payload: payload | {"format": "other"}), "no 'format'"),
        (lambda path: _rewritten(path, lambda payload: [payload]), "not a CoNeS model file"),
        (
            lambda path: _rewritten(path, lambda payload: payload | {"format_version": FORMAT_VERSION + 1}),
            rf"newer CoNeS \(format version {FORMAT_VERSION + 1} > {FORMAT_VERSION}\); upgrade",
        ),
        (lambda path: _rewritten(path, lambda payload: payload | {"format_version": "1"}), "format version '1'"),
        (lambda path: _rewritten(path, lambda payload: payload | {"extra": 1}), r"unknown entries \['extra'\]"),
        (
            lambda path: _rewritten(path, lambda payload: payload | {"generator_state": [1]}),
            "generator_state is not a mapping",
        ),
        (
            lambda path: _rewritten(path, _with_card(sources=["t1", "t2"])),
            "model card is invalid: .* generator.in_channels is 3",
        ),
        (lambda path: _rewritten(path, _with_card(architecture="unet")), "unknown architecture 'unet'"),
        (
            lambda path: _rewritten(path, _with_card(sources=["t1", "t2"], generator=tiny_config(2).to_dict())),
            "weights do not match the architecture in its model card",
        ),
    ],
)
def test_load_model_refuses_bad_files(model_file: Path, make_bad_file: Callable[[Path], Path], match: str) -> None:
    bad = make_bad_file(model_file)
    with pytest.raises(CheckpointError, match=match) as refusal:
        load_model(bad)
    assert str(bad) in str(refusal.value)


@pytest.mark.parametrize("loader", [load_checkpoint, load_model, read_model_card, load_training_state, describe_model])
def test_loaders_refuse_code_without_running_it(tmp_path: Path, loader: Callable[[Path], object]) -> None:
    marker = tmp_path / "code-ran"
    archive = tmp_path / "archive.pt"
    torch.save({"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "card": _RunsCode(marker)}, archive)
    with pytest.raises(CheckpointError, match=r"refusing to load .*archive\.pt: it contains executable code"):
        loader(archive)
    bare_pickle = tmp_path / "bare.pkl"
    bare_pickle.write_bytes(pickle.dumps(_RunsCode(marker)))
    with pytest.raises(CheckpointError, match="not a PyTorch model file"):
        loader(bare_pickle)
    assert not marker.exists()
    torch.load(archive, weights_only=False)  # the file is really malicious: an unsafe load runs its code
    assert marker.exists()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_save_model_stores_weights_of_a_gpu_model_on_the_cpu(tmp_path: Path) -> None:
    card = make_card()
    generator = make_generator(card).cuda()
    path = save_model(tmp_path / "model.pt", generator, card)
    assert {tensor.device.type for tensor in load_checkpoint(path)["generator_state"].values()} == {"cpu"}
    loaded = load_model(path, device="cuda")
    assert next(loaded.generator.parameters()).is_cuda
    torch.testing.assert_close(synthesize(loaded.generator.cpu(), 3), synthesize(generator.cpu(), 3), rtol=0, atol=0)
