"""Self-describing, safely loaded model files.

A CoNeS model file is a ``torch.save`` archive of tensors and plain data only. It carries a
:class:`ModelCard` next to the weights, so that the file alone says which sources it expects in which
channel order, which targets it synthesizes, how intensities are normalised, and where the weights
came from. Every read goes through ``torch.load(weights_only=True)``: model files are shared between
sites and downloaded from the web, and an ordinary pickle would run any code it carries the moment
it is opened. Files are written atomically, so a crash never leaves half a model behind.

Example:
    >>> save_model("t1ce.pt", generator, card)                          # doctest: +SKIP
    >>> loaded = load_model("t1ce.pt", device="cuda")                   # doctest: +SKIP
    >>> loaded.card.sources, loaded.card.targets                        # doctest: +SKIP
    ((<Sequence.T1: 't1'>, <Sequence.T2: 't2'>, <Sequence.FLAIR: 'flair'>), (<Sequence.T1CE: 't1ce'>,))
"""

from __future__ import annotations

from cones.checkpoint.card import Architecture, ModelCard, Provenance, make_provenance
from cones.checkpoint.describe import describe_model
from cones.checkpoint.layout import FORMAT_NAME, FORMAT_VERSION, CheckpointError
from cones.checkpoint.reading import (
    LoadedModel,
    load_checkpoint,
    load_model,
    load_resumable,
    load_training_state,
    read_model_card,
)
from cones.checkpoint.writing import save_model, strip_training_state

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
    "save_model",
    "strip_training_state",
]
