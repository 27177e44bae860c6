"""Self-describing, safely loaded model files.

A CoNeS model file is a ``torch.save`` archive of tensors and plain data only. It carries a
:class:`ModelCard` next to the weights, so that the file alone says which sources it expects in which
channel order, which targets it synthesizes, how intensities are normalised, and where the weights
came from. Every read goes through ``torch.load(weights_only=True)``: model files are shared between
sites and downloaded from the web, and an ordinary pickle would run any code it carries the moment
it is opened. The card alone can also be read without torch (:func:`read_model_card_without_torch`,
for Slicer's GUI process), by an unpickler that is stricter still. Files are written atomically, so
a crash never leaves half a model behind.

Example:
    >>> save_model("t1ce.pt", generator, card)                          # doctest: +SKIP
    >>> loaded = load_model("t1ce.pt", device="cuda")                   # doctest: +SKIP
    >>> loaded.card.sources, loaded.card.targets                        # doctest: +SKIP
    ((<Sequence.T1: 't1'>, <Sequence.T2: 't2'>, <Sequence.FLAIR: 'flair'>), (<Sequence.T1CE: 't1ce'>,))
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Architecture": "card",
    "ModelCard": "card",
    "Provenance": "card",
    "make_provenance": "card",
    "describe_model": "describe",
    "FORMAT_NAME": "layout",
    "FORMAT_VERSION": "layout",
    "CheckpointError": "layout",
    "LoadedModel": "reading",
    "load_checkpoint": "reading",
    "load_model": "reading",
    "load_resumable": "reading",
    "load_training_state": "reading",
    "read_model_card": "reading",
    "read_model_card_without_torch": "torch_free",
    "save_model": "writing",
    "strip_training_state": "writing",
}
"""Where each public name lives. They are imported on first use, so that the card, the layout and
:func:`read_model_card_without_torch` serve Slicer's GUI process without importing torch."""


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)


__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "Architecture",
    "CheckpointError",
    "LoadedModel",
    "ModelCard",
    "Provenance",
    "describe_model",
    "load_checkpoint",
    "load_model",
    "load_resumable",
    "load_training_state",
    "make_provenance",
    "read_model_card",
    "read_model_card_without_torch",
    "save_model",
    "strip_training_state",
]
