"""The checks every reader of a model file makes, with or without torch: file, layout, card.

:mod:`cones.checkpoint.reading` (``torch.load(weights_only=True)``) and
:mod:`cones.checkpoint.torch_free` (Slicer's GUI process) unpickle differently but must refuse the
same files with the same messages; they differ only in what a tensor is once unpickled.
"""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cones.checkpoint.card import ModelCard
from cones.checkpoint.layout import (
    FORMAT_NAME,
    FORMAT_VERSION,
    REQUIRED_KEYS,
    SEGMENTATION_FORMAT_NAME,
    TRAINING_STATE_KEY,
    CheckpointError,
)

__all__ = ["EXECUTABLE_CONTENT", "check_archive", "check_crcs", "check_layout", "parse_card", "refusal"]

EXECUTABLE_CONTENT = "it contains executable code or objects other than tensors and plain data"
"""The refusal of a file whose pickle names anything beyond tensors and plain data."""

_KNOWN_KEYS = REQUIRED_KEYS | {TRAINING_STATE_KEY}
_ZIP_MAGIC = b"PK\x03\x04"


def refusal(path: Path, problem: str) -> CheckpointError:
    """The error for a refused file: ``refusing to load <path>: <problem>``."""
    return CheckpointError(f"refusing to load {path}: {problem}")


def check_archive(path: Path) -> None:
    """Refuse a path that is no intact ``torch.save`` zip archive, before anything in it is unpickled.

    Raises:
        CheckpointError: the file does not exist, is not a file, cannot be read, is truncated, or
            is not a zip archive (a bare pickle would run its code in any reader but a restricted one), or an
            entry does not match its CRC-32 (``it is corrupt: CRC mismatch in <entry>``).
    """
    if not path.is_file():
        raise refusal(path, "it is not a file" if path.exists() else "it does not exist")
    try:
        with path.open("rb") as stream:
            is_archive = zipfile.is_zipfile(stream)
            stream.seek(0)
            head = stream.read(len(_ZIP_MAGIC))
    except OSError as error:
        raise refusal(path, f"it cannot be read ({error})") from error
    if not is_archive:
        truncated = head == _ZIP_MAGIC
        raise refusal(path, "it is truncated or corrupt" if truncated else "it is not a PyTorch model file")
    check_crcs(path)


def check_crcs(path: Path) -> None:
    """Refuse a zip archive whose entries do not match their CRC-32s.

    ``torch.load`` never checks them, so a byte changed in a tensor entry (a bad disk, an interrupted
    copy) loads as a different weight and synthesizes a different, plausible image. Reading every
    entry once costs about as much as the load itself (milliseconds for the bundled model).
    """
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError, ValueError) as error:
        raise refusal(path, f"it is truncated or corrupt ({error})") from error
    except OSError as error:
        raise refusal(path, f"it cannot be read ({error})") from error
    if damaged is not None:
        raise refusal(path, f"it is corrupt: CRC mismatch in {damaged}")


def check_layout(path: Path, raw: Any, is_tensor: Callable[[object], bool]) -> None:
    """Refuse an unpickled payload that is not a CoNeS model file of a version this reader knows.

    Args:
        path: the file, for the message.
        raw: what the file unpickled to.
        is_tensor: whether an unpickled value is a tensor (a real one, or the torch-free reader's placeholder).

    Raises:
        CheckpointError: no ``format`` entry (a bare state_dict is named as such), an invalid or newer
            format version, missing or unknown entries, or a generator state that is not names to tensors.
    """
    if not isinstance(raw, dict) or raw.get("format") != FORMAT_NAME:
        raise refusal(path, _not_a_model(raw, is_tensor))
    version = raw.get("format_version")
    if type(version) is not int or version < 1:
        raise refusal(path, f"its format version {version!r} is not valid")
    if version > FORMAT_VERSION:
        raise refusal(
            path, f"it was written by a newer CoNeS (format version {version} > {FORMAT_VERSION}); upgrade CoNeS"
        )
    missing, unknown = sorted(REQUIRED_KEYS - raw.keys()), sorted(raw.keys() - _KNOWN_KEYS)
    if missing or unknown:
        raise refusal(path, f"it is malformed (missing entries {missing}, unknown entries {unknown})")
    state = raw["generator_state"]
    if not isinstance(state, dict) or not all(
        isinstance(name, str) and is_tensor(tensor) for name, tensor in state.items()
    ):
        raise refusal(path, "its generator_state is not a mapping of names to tensors")
    if not isinstance(raw.get(TRAINING_STATE_KEY, {}), dict):
        raise refusal(path, f"its {TRAINING_STATE_KEY} is not a dict")


def _not_a_model(raw: Any, is_tensor: Callable[[object], bool]) -> str:
    """Why a payload is no CoNeS synthesis model; a segmentation model is pointed to the option that takes it."""
    if isinstance(raw, dict) and raw.get("format") == SEGMENTATION_FORMAT_NAME:
        return (
            "it is not a CoNeS synthesis model file; it is a CoNeS segmentation model: give it as the segmentation "
            "model (--segment of 'cones synthesize', --seg-model of 'cones evaluate-segmentation')"
        )
    bare = isinstance(raw, dict) and raw and all(is_tensor(value) for value in raw.values())
    kind = "a bare state_dict without a model card" if bare else f"no 'format': {FORMAT_NAME!r} entry"
    return f"it is not a CoNeS model file ({kind})"


def parse_card(path: Path, raw: dict[str, Any]) -> ModelCard:
    """The model card of a payload that passed :func:`check_layout`.

    Raises:
        CheckpointError: the card is invalid; the message gives the card's own error.
    """
    try:
        return ModelCard.from_dict(raw["card"])
    except ValueError as error:
        raise refusal(path, f"its model card is invalid: {error}") from error
