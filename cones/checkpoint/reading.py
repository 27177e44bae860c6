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
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from cones.checkpoint.card import ModelCard
from cones.checkpoint.layout import TRAINING_STATE_KEY
from cones.checkpoint.validation import EXECUTABLE_CONTENT, check_archive, check_layout, parse_card, refusal
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
        raise refusal(path, "it holds no training state (it was exported for inference only); cannot resume")
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
        raise refusal(path, f"its weights do not match the architecture in its model card: {error}") from error
    generator.to(device).eval()
    _LOG.info("loaded %s: %s -> %s", path, [s.value for s in card.sources], [s.value for s in card.targets])
    return LoadedModel(generator=generator, card=card, path=path)


def _read(path: Path) -> tuple[dict[str, Any], ModelCard]:
    raw = _unpickle(path)
    check_layout(path, raw, is_tensor=lambda value: isinstance(value, torch.Tensor))
    return raw, parse_card(path, raw)


def _unpickle(path: Path) -> Any:
    check_archive(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise refusal(path, EXECUTABLE_CONTENT) from error
    except (RuntimeError, EOFError, KeyError, ValueError, OSError) as error:
        raise refusal(path, f"it is truncated or corrupt ({str(error).splitlines()[0]})") from error
