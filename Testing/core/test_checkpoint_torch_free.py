"""The card reader for Slicer's GUI process: no torch imported, and the same answers as ``torch.load``."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from tiny_models import TINY_GENERATOR

from cones.checkpoint import (
    FORMAT_NAME,
    FORMAT_VERSION,
    CheckpointError,
    ModelCard,
    load_checkpoint,
    make_provenance,
    read_model_card,
    read_model_card_without_torch,
    save_model,
)
from cones.checkpoint.torch_free import TensorPlaceholder, TorchValue, unpickle_payload
from cones.config import NormalizationConfig
from cones.model import CoNeSGenerator

ROOT = Path(__file__).resolve().parents[2]
BUNDLED_MODEL = ROOT / "Resources" / "Models" / "cones-lite-t1ce.pt"


def tiny_card() -> ModelCard:
    return ModelCard(
        architecture="cones",
        preset=None,
        generator=TINY_GENERATOR,
        sources=("t1", "t2", "flair"),
        targets=("t1ce",),
        normalization=NormalizationConfig(),
        provenance=make_provenance(1, "sha256:00"),
    )


@pytest.fixture
def model_with_training_state(tmp_path: Path) -> Path:
    """A model file whose training state holds every kind of value ``save_model`` accepts."""
    card = tiny_card()
    generator = CoNeSGenerator(card.generator)
    optimizer = torch.optim.Adam(generator.parameters(), lr=1e-3)
    generator(torch.randn(1, 3, 32, 32)).image.mean().backward()
    optimizer.step()
    state = {
        "optimizer": optimizer.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "python_rng": random.getstate(),
        "plain": OrderedDict(number=1.5, flags={True, False}, impedance=1 + 2j, raw=b"\x00\xff", nothing=None),
        "torch_values": [torch.float16, torch.int64, torch.device("cpu"), torch.Size([2, 3])],
    }
    return save_model(tmp_path / "trained.pt", generator, card, training_state=state)


def plain(value: Any) -> Any:
    """A value read either way, as comparable plain data: tensors by shape, torch values by name."""
    if isinstance(value, torch.Tensor | TensorPlaceholder):
        return ("tensor", tuple(value.shape))
    if isinstance(value, torch.Size):
        return ("Size", tuple(value))
    if isinstance(value, torch.device):
        return ("device", str(value))
    if isinstance(value, torch.dtype):
        return ("dtype", str(value).removeprefix("torch."))
    if isinstance(value, TorchValue):
        if value.name == "Size":
            return ("Size", tuple(value.arguments[0]))
        if value.name == "device":
            return ("device", ":".join(map(str, value.arguments)))
        return ("dtype", value.name)
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(plain(item) for item in value)
    return value


@pytest.mark.parametrize("which", ["bundled", "with training state"])
def test_the_torch_free_reader_and_torch_load_agree(which: str, model_with_training_state: Path) -> None:
    path = BUNDLED_MODEL if which == "bundled" else model_with_training_state
    if not path.is_file():
        pytest.skip(f"{path} is not in this checkout")
    assert read_model_card_without_torch(path) == read_model_card(path)
    with path.open("rb") as stream:
        without_torch = unpickle_payload(stream)
    with_torch = torch.load(path, map_location="cpu", weights_only=True)
    assert plain(without_torch) == plain(with_torch)
    assert len(without_torch["generator_state"]) == len(with_torch["generator_state"]) > 0


def test_reading_the_bundled_card_imports_no_torch() -> None:
    if not BUNDLED_MODEL.is_file():
        pytest.skip(f"{BUNDLED_MODEL} is not in this checkout")
    script = (
        "import sys\n"
        "from cones.checkpoint import read_model_card_without_torch\n"
        f"card = read_model_card_without_torch({str(BUNDLED_MODEL)!r})\n"
        "print(card.targets[0].value, 'torch' in sys.modules)\n"
    )
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=environment, check=True)
    assert result.stdout.split() == ["t1ce", "False"]


class _RunsCode:
    """Pickles as a call to ``os.mkdir``: loading it unsafely creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[[str], None], tuple[str]]:
        return os.mkdir, (str(self.marker),)


def test_code_in_the_card_is_refused_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    archive = tmp_path / "archive.pt"
    torch.save({"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "card": _RunsCode(marker)}, archive)
    with pytest.raises(CheckpointError, match=r"refusing to load .*archive\.pt: it contains executable code"):
        read_model_card_without_torch(archive)
    assert not marker.exists()


def _rewrite(path: Path, change: Callable[[dict], object]) -> Path:
    bad = path.with_name("bad.pt")
    torch.save(change(load_checkpoint(path)), bad)
    return bad


@pytest.mark.parametrize(
    "make_bad_file",
    [
        lambda path: path.with_name("missing.pt"),
        lambda path: path.parent,
        lambda path: _rewrite(path, lambda payload: payload["generator_state"]),
        lambda path: _rewrite(path, lambda payload: payload | {"format_version": FORMAT_VERSION + 1}),
        lambda path: _rewrite(path, lambda payload: payload | {"extra": 1}),
        lambda path: _rewrite(path, lambda payload: payload | {"generator_state": {"weight": 1.0}}),
        lambda path: _rewrite(path, lambda payload: payload | {"card": payload["card"] | {"sources": ["t1"]}}),
        lambda path: _rewrite(path, lambda payload: payload | {"numbers": torch.zeros(2).numpy()}),
    ],
    ids=["missing", "folder", "bare state_dict", "newer", "unknown entry", "no tensors", "bad card", "numpy"],
)
def test_bad_files_are_refused_with_the_same_message(
    model_with_training_state: Path, make_bad_file: Callable[[Path], Path]
) -> None:
    bad = make_bad_file(model_with_training_state)
    with pytest.raises(CheckpointError) as with_torch:
        read_model_card(bad)
    with pytest.raises(CheckpointError) as without_torch:
        read_model_card_without_torch(bad)
    assert str(without_torch.value) == str(with_torch.value)
    assert str(bad) in str(without_torch.value)


def test_a_truncated_file_is_refused_as_corrupt(model_with_training_state: Path, tmp_path: Path) -> None:
    data = model_with_training_state.read_bytes()
    for size in (len(data) // 2, len(data) - 30):
        truncated = tmp_path / f"truncated-{size}.pt"
        truncated.write_bytes(data[:size])
        with pytest.raises(CheckpointError, match=r"refusing to load .*: it is truncated or corrupt"):
            read_model_card_without_torch(truncated)


def test_a_damaged_pickle_is_refused_as_corrupt_whatever_it_raises(tmp_path: Path) -> None:
    """``OrderedDict(1)``: an allowed global called with arguments it refuses (a TypeError inside the unpickler)."""
    damaged = tmp_path / "damaged.pt"
    with zipfile.ZipFile(damaged, "w") as archive:
        archive.writestr("archive/data.pkl", b"\x80\x02ccollections\nOrderedDict\nK\x01\x85R.")
    with pytest.raises(CheckpointError, match=r"damaged\.pt: it is truncated or corrupt \(.*int.*\)"):
        read_model_card_without_torch(damaged)
