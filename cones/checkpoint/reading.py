"""Reading CoNeS model files without ever running code from them.

A pickle can execute anything while it is loaded, and model files travel: they are downloaded from
a paper's page or passed between sites. Every read here therefore goes through
``torch.load(map_location="cpu", weights_only=True)``, and a file that holds anything beyond tensors
and plain data is refused before any of it can run. Each refusal says which file and what is wrong
with it, because "invalid load key" is no help to someone who picked the wrong file in a dialog.
"""

from __future__ import annotations

import logging
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from cones.checkpoint.card import ModelCard
from cones.checkpoint.layout import FORMAT_NAME, FORMAT_VERSION, REQUIRED_KEYS, TRAINING_STATE_KEY, CheckpointError
from cones.model import generator_class

__all__ = [
    "LoadedModel",
    "load_checkpoint",
    "load_model",
    "load_resumable",
    "load_training_state",
    "read_model_card",
]

_LOG = logging.getLogger(__name__)
_KNOWN_KEYS = REQUIRED_KEYS | {TRAINING_STATE_KEY}
_ZIP_MAGIC = b"PK\x03\x04"


class LoadedModel(NamedTuple):
    """A generator rebuilt from a model file, with the card that says how to feed it."""

    generator: nn.Module
    """The generator in eval mode, on the requested device."""
    card: ModelCard
    path: Path


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate a model file without building its network.

    Args:
        path: a file written by :func:`~cones.checkpoint.save_model`.

    Returns:
        The raw file content (layout in :mod:`cones.checkpoint.layout`); its card passed validation.

    Raises:
        CheckpointError: the file does not exist, cannot be read, is truncated or corrupt, holds
            executable code or objects other than tensors and plain data, is not a CoNeS model file,
            comes from a newer format version, or has an invalid model card.
    """
    return _read(Path(path))[0]


def read_model_card(path: str | os.PathLike[str]) -> ModelCard:
    """The model card of a model file; the network is not built and its weights are not checked.

    Raises:
        CheckpointError: the file is refused (see :func:`load_checkpoint`).
    """
    return _read(Path(path))[1]


def load_training_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The training state stored for resuming (optimizer states, counters, RNG states).

    Raises:
        CheckpointError: the file is refused (see :func:`load_checkpoint`) or holds no training state.
    """
    return load_resumable(path)[0][TRAINING_STATE_KEY]


def load_resumable(path: str | os.PathLike[str]) -> tuple[dict[str, Any], ModelCard]:
    """A model file with its training state, read once: its payload and card, for a run to resume from.

    Raises:
        CheckpointError: the file is refused (see :func:`load_checkpoint`) or holds no training state.
    """
    path = Path(path)
    raw, card = _read(path)
    if TRAINING_STATE_KEY not in raw:
        raise _refusal(path, "it holds no training state (it was exported for inference only); cannot resume")
    return raw, card


def load_model(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> LoadedModel:
    """Rebuild the generator a model file describes and load its weights strictly.

    Args:
        path: a file written by :func:`~cones.checkpoint.save_model`.
        device: where the generator is placed.

    Returns:
        The generator in eval mode on ``device``, its card and the path.

    Raises:
        CheckpointError: the file is refused (see :func:`load_checkpoint`), or its weights do not fit the
            architecture its card describes.
    """
    path = Path(path)
    raw, card = _read(path)
    generator = generator_class(card.architecture)(card.generator)
    try:
        generator.load_state_dict(raw["generator_state"], strict=True)
    except RuntimeError as error:
        raise _refusal(path, f"its weights do not match the architecture in its model card: {error}") from error
    generator.to(device).eval()
    _LOG.info("loaded %s: %s -> %s", path, [s.value for s in card.sources], [s.value for s in card.targets])
    return LoadedModel(generator=generator, card=card, path=path)


def _refusal(path: Path, problem: str) -> CheckpointError:
    return CheckpointError(f"refusing to load {path}: {problem}")


def _read(path: Path) -> tuple[dict[str, Any], ModelCard]:
    raw = _unpickle(path)
    _check_layout(path, raw)
    try:
        card = ModelCard.from_dict(raw["card"])
    except ValueError as error:
        raise _refusal(path, f"its model card is invalid: {error}") from error
    return raw, card


def _unpickle(path: Path) -> Any:
    if not path.is_file():
        raise _refusal(path, "it is not a file" if path.exists() else "it does not exist")
    try:
        with path.open("rb") as stream:
            is_archive = zipfile.is_zipfile(stream)
            stream.seek(0)
            head = stream.read(len(_ZIP_MAGIC))
    except OSError as error:
        raise _refusal(path, f"it cannot be read ({error})") from error
    if not is_archive:
        # torch.save writes zip archives; a bare pickle is refused here, before anything is unpickled.
        truncated = head == _ZIP_MAGIC
        raise _refusal(path, "it is truncated or corrupt" if truncated else "it is not a PyTorch model file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise _refusal(path, "it contains executable code or objects other than tensors and plain data") from error
    except (RuntimeError, EOFError, KeyError, ValueError, OSError) as error:
        raise _refusal(path, f"it is truncated or corrupt ({str(error).splitlines()[0]})") from error


def _check_layout(path: Path, raw: Any) -> None:
    if not isinstance(raw, dict) or raw.get("format") != FORMAT_NAME:
        bare = isinstance(raw, dict) and raw and all(isinstance(value, torch.Tensor) for value in raw.values())
        kind = "a bare state_dict without a model card" if bare else f"no 'format': {FORMAT_NAME!r} entry"
        raise _refusal(path, f"it is not a CoNeS model file ({kind})")
    version = raw.get("format_version")
    if type(version) is not int or version < 1:
        raise _refusal(path, f"its format version {version!r} is not valid")
    if version > FORMAT_VERSION:
        raise _refusal(
            path, f"it was written by a newer CoNeS (format version {version} > {FORMAT_VERSION}); upgrade CoNeS"
        )
    missing, unknown = sorted(REQUIRED_KEYS - raw.keys()), sorted(raw.keys() - _KNOWN_KEYS)
    if missing or unknown:
        raise _refusal(path, f"it is malformed (missing entries {missing}, unknown entries {unknown})")
    state = raw["generator_state"]
    if not isinstance(state, dict) or not all(
        isinstance(name, str) and isinstance(tensor, torch.Tensor) for name, tensor in state.items()
    ):
        raise _refusal(path, "its generator_state is not a mapping of names to tensors")
    if not isinstance(raw.get(TRAINING_STATE_KEY, {}), dict):
        raise _refusal(path, f"its {TRAINING_STATE_KEY} is not a dict")
