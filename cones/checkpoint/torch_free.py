"""Reading a model file's card without importing torch, for Slicer's GUI process.

The Slicer panel shows which sources a model needs as soon as a model file is chosen. Importing
torch there would break the design that torch runs only in the worker process (and on Windows it
locks torch's DLLs, so the PyTorch extension could no longer update them). A ``torch.save`` file is
a zip archive whose ``data.pkl`` holds the structure and whose tensors' bytes lie in separate
entries; this module unpickles ``data.pkl`` alone, with an unpickler stricter than
``torch.load(weights_only=True)``:

- plain containers (``OrderedDict``, ``set``, ``complex``, ``bytes``) are rebuilt as themselves;
- tensors, their storages, ``torch.Size``, devices and dtypes become inert placeholders, so no
  torch code runs and no tensor bytes are read;
- any other global is refused, as ``weights_only`` refuses it, so a file that would run code when
  loaded is refused before any of it can run.

The file then passes the same checks, with the same messages, as :func:`cones.checkpoint.read_model_card`.
"""

from __future__ import annotations

import codecs
import os
import pickle
import re
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from cones.checkpoint.card import ModelCard
from cones.checkpoint.validation import EXECUTABLE_CONTENT, check_archive, check_layout, parse_card, refusal

__all__ = [
    "StoragePlaceholder",
    "TensorPlaceholder",
    "TorchValue",
    "read_model_card_without_torch",
    "unpickle_payload",
    "unpickle_without_torch",
]

_PICKLE_NAME = "data.pkl"

_PLAIN_GLOBALS: dict[tuple[str, str], Callable[..., object]] = {
    ("collections", "OrderedDict"): OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "complex"): complex,
    ("builtins", "bytearray"): bytearray,
    # Pickle protocol 2 (torch.save's default) writes bytes as _codecs.encode(text, "latin1").
    ("_codecs", "encode"): codecs.encode,
}
"""Globals rebuilt as themselves: plain data that ``weights_only`` accepts and that runs no code of the file."""

_TENSOR_REBUILDERS = frozenset({("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_parameter")})

_STORAGE_NAME = re.compile(r"[A-Z][A-Za-z0-9]*Storage")

_TORCH_VALUES = frozenset(
    {
        *("Size", "device", "bool", "float16", "bfloat16", "float32", "float64"),
        *("complex32", "complex64", "complex128", "int8", "int16", "int32", "int64"),
        *("uint8", "uint16", "uint32", "uint64"),
    }
)
"""Names in the ``torch`` namespace that ``weights_only`` accepts as values: ``torch.Size``, devices, dtypes."""


@dataclass(frozen=True)
class StoragePlaceholder:
    """A tensor storage of the file, not read: its type (``"FloatStorage"``), archive entry and element count."""

    kind: str
    key: str
    numel: int


@dataclass(frozen=True)
class TensorPlaceholder:
    """A tensor of the file, not rebuilt: its storage and its shape."""

    storage: StoragePlaceholder
    shape: tuple[int, ...]


@dataclass(frozen=True)
class TorchValue:
    """A ``torch.Size``, device or dtype of the file, by name and arguments (``TorchValue("device", ("cpu",))``)."""

    name: str
    arguments: tuple[Any, ...] = ()


@dataclass(frozen=True)
class _StorageType:
    name: str


@dataclass(frozen=True)
class _TorchCallable:
    name: str

    def __call__(self, *arguments: Any) -> TorchValue:
        return TorchValue(self.name, arguments)


def _rebuild_tensor(storage: object, _offset: int, size: tuple[int, ...], *_rest: object) -> TensorPlaceholder:
    if not isinstance(storage, StoragePlaceholder):
        raise pickle.UnpicklingError(f"a tensor without a storage: {storage!r}")
    return TensorPlaceholder(storage, tuple(size))


def _rebuild_parameter(data: object, *_rest: object) -> object:
    return data


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickles ``data.pkl`` into plain data and placeholders; any other global is refused."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "__builtin__":  # protocol 2 names builtins as Python 2 did
            module = "builtins"
        if (module, name) in _PLAIN_GLOBALS:
            return _PLAIN_GLOBALS[module, name]
        if (module, name) in _TENSOR_REBUILDERS:
            return _rebuild_tensor if name == "_rebuild_tensor_v2" else _rebuild_parameter
        if module == "torch" and _STORAGE_NAME.fullmatch(name):
            return _StorageType(name)
        if module == "torch" and name in _TORCH_VALUES:
            return _TorchCallable(name) if name in ("Size", "device") else TorchValue(name)
        raise pickle.UnpicklingError(f"refused global {module}.{name}")

    def persistent_load(self, pid: Any) -> StoragePlaceholder:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], _StorageType)):
            raise pickle.UnpicklingError(f"refused persistent id {pid!r}")
        return StoragePlaceholder(pid[1].name, str(pid[2]), int(pid[4]))


def unpickle_payload(stream: BinaryIO) -> Any:
    """What a ``torch.save`` archive holds, with tensors as :class:`TensorPlaceholder`; torch is not imported.

    Raises:
        pickle.UnpicklingError: the archive's pickle names anything beyond plain data and tensors.
        ValueError: the archive has no single ``<name>/data.pkl`` entry.
        zipfile.BadZipFile, EOFError: the archive or its pickle is corrupt.
    """
    with zipfile.ZipFile(stream) as archive:
        pickles = [name for name in archive.namelist() if name.count("/") == 1 and name.endswith(f"/{_PICKLE_NAME}")]
        if len(pickles) != 1:
            raise ValueError(f"expected one {_PICKLE_NAME} entry, found {len(pickles)}")
        with archive.open(pickles[0]) as data:
            return _RestrictedUnpickler(data).load()


def read_model_card_without_torch(path: str | os.PathLike[str]) -> ModelCard:
    """The model card of a model file, read without importing torch (see the module docstring).

    Refuses what :func:`cones.checkpoint.read_model_card` refuses, with the same messages.

    Raises:
        CheckpointError: the file does not exist, is not a model file, is truncated or corrupt, holds
            anything beyond tensors and plain data, comes from a newer format, or has an invalid card.
    """
    path = Path(path)
    raw = unpickle_without_torch(path)
    check_layout(path, raw, is_tensor=lambda value: isinstance(value, TensorPlaceholder))
    return parse_card(path, raw)


def unpickle_without_torch(path: str | os.PathLike[str]) -> Any:
    """What a ``torch.save`` file holds (tensors as placeholders), refused as ``torch.load(weights_only=True)`` refuses.

    The torch-free twin of the torch reader's unpickling step, for every model file Slicer's GUI
    process reads a card from (synthesis and segmentation models).

    Raises:
        CheckpointError: the file does not exist, is not a ``torch.save`` archive, is truncated or
            corrupt, or holds anything beyond tensors and plain data.
    """
    path = Path(path)
    check_archive(path)
    try:
        with path.open("rb") as stream:
            return unpickle_payload(stream)
    except pickle.UnpicklingError as error:
        raise refusal(path, EXECUTABLE_CONTENT) from error
    except Exception as error:  # a damaged pickle can fail in any way (TypeError from a call with bad arguments...)
        detail = next(iter(str(error).splitlines()), "") or type(error).__name__
        raise refusal(path, f"it is truncated or corrupt ({detail})") from error
