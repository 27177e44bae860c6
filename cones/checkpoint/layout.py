"""The identity of a CoNeS model file: its format name and version, and the error for a refused file.

Layout of format version 2, a ``torch.save`` zip archive of plain data only::

    {"format": "cones-model", "format_version": 2, "card": ModelCard.to_dict(),
     "generator_state": {name: tensor}, "training_state": {...}}   # training_state is optional

Version 2 added the card's ``training_domain`` (which a version-1 reader would refuse as an unknown
field); version-1 files still load, with the domain every model of that version was trained in.

A change that an older reader would misread raises :data:`FORMAT_VERSION`, so that reader refuses
the file and asks for an upgrade instead of guessing.
"""

from __future__ import annotations

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "REQUIRED_KEYS",
    "SEGMENTATION_FORMAT_NAME",
    "TRAINING_STATE_KEY",
    "CheckpointError",
]

FORMAT_NAME = "cones-model"
SEGMENTATION_FORMAT_NAME = "cones-segmentation-model"
"""The format of a built-in segmentation model file (:mod:`cones.segmentation.builtin`); named here, below
both readers, so that the synthesis-model reader can point such a file to the option that takes it."""
FORMAT_VERSION = 2
TRAINING_STATE_KEY = "training_state"
REQUIRED_KEYS = frozenset({"format", "format_version", "card", "generator_state"})


class CheckpointError(ValueError):
    """A model file was refused (or could not be written); the message names the file and the reason."""
