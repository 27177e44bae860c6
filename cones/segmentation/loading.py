"""Opening any segmentation model from its path, whichever backend it needs.

Users pass one ``--seg-model`` (or pick one file in Slicer), so the backend is told apart by what
the path is: a folder with nnU-Net's descriptions, a CoNeS segmentation model file, or an exported
TorchScript/ONNX network with its JSON sidecar.
"""

from __future__ import annotations

import os
from enum import Enum, auto
from pathlib import Path

import torch

from cones.segmentation.base import SegmentationInfo, SegmentationModel
from cones.segmentation.builtin import load_builtin_segmentation, read_segmentation_card
from cones.segmentation.exported import EXPORTED_SUFFIXES, load_exported_segmentation, read_sidecar, sidecar_path
from cones.segmentation.labels import LabelSet
from cones.segmentation.nnunet import is_nnunet_folder, load_nnunet_segmentation, read_nnunet_dataset

__all__ = ["load_segmentation_model", "read_segmentation_info"]

_ALWAYS_EXPORTED = (".onnx", ".ts")


class _Backend(Enum):
    NNUNET = auto()
    EXPORTED = auto()
    BUILTIN = auto()


def _backend(path: Path) -> _Backend:
    if path.is_dir():
        if is_nnunet_folder(path):
            return _Backend.NNUNET
        raise ValueError(f"segmentation model folder {str(path)!r} is not a trained nnU-Net folder")
    if not path.is_file():
        raise ValueError(f"segmentation model {str(path)!r} does not exist")
    # .onnx and .ts are always exported networks (their loader explains a missing sidecar); a .pt file is
    # one only with a sidecar, since the built-in model file is a .pt too.
    suffix = path.suffix.lower()
    if suffix in _ALWAYS_EXPORTED or (suffix in EXPORTED_SUFFIXES and sidecar_path(path).is_file()):
        return _Backend.EXPORTED
    return _Backend.BUILTIN  # its reader refuses, with the reason, anything but a CoNeS segmentation file


def load_segmentation_model(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> SegmentationModel:
    """Load a segmentation model of any backend.

    Args:
        path: a trained nnU-Net v2 folder, a built-in model file (``SEGRUN/last.pt``), or a TorchScript
            or ONNX file with a ``.json`` sidecar of the same name.
        device: where the model runs.

    Raises:
        ValueError: the path does not exist or is none of these (the message says which were tried);
            :class:`~cones.checkpoint.CheckpointError` (a ValueError) for a refused model file.
    """
    path = Path(path)
    backend = _backend(path)
    if backend is _Backend.NNUNET:
        return load_nnunet_segmentation(path, device)
    if backend is _Backend.EXPORTED:
        return load_exported_segmentation(path, device)
    return load_builtin_segmentation(path, device)


def read_segmentation_info(path: str | os.PathLike[str]) -> SegmentationInfo:
    """The sequences and labels of a segmentation model of any backend, from its descriptions only.

    Reading a card, a sidecar or a ``dataset.json`` takes milliseconds and needs neither MONAI,
    onnxruntime nor nnU-Net, so a request can be checked before a process that loads the network starts.

    Raises:
        ValueError: as :func:`load_segmentation_model`, for the descriptions.
    """
    path = Path(path)
    backend = _backend(path)
    if backend is _Backend.NNUNET:
        sequences, labels = read_nnunet_dataset(path)
        return SegmentationInfo(sequences, labels, path)
    if backend is _Backend.EXPORTED:
        sidecar = read_sidecar(path)
        return SegmentationInfo(sidecar.sequences, LabelSet(sidecar.label_names, sidecar.label_values), path)
    card = read_segmentation_card(path)
    return SegmentationInfo(card.sequences, card.labels, path)
