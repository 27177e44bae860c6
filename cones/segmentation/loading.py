"""Opening any segmentation model from its path, whichever backend it needs.

Users pass one ``--seg-model`` (or pick one file in Slicer), so the backend is told apart by what
the path is: a folder with nnU-Net's descriptions, a CoNeS segmentation model file, or an exported
TorchScript/ONNX network with its JSON sidecar.
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from cones.segmentation.base import SegmentationInfo, SegmentationModel
from cones.segmentation.builtin import load_builtin_segmentation, read_segmentation_card
from cones.segmentation.exported import EXPORTED_SUFFIXES, load_exported_segmentation, read_sidecar, sidecar_path
from cones.segmentation.labels import LabelSet
from cones.segmentation.nnunet import is_nnunet_folder, load_nnunet_segmentation, read_nnunet_dataset

# The loaders import torch when they load; reading a model's descriptions (Slicer's GUI process) needs none.
if TYPE_CHECKING:
    import torch

__all__ = [
    "BUNDLED_SEGMENTATION_MODEL",
    "SegmentationBackend",
    "load_segmentation_model",
    "read_segmentation_info",
    "segmentation_backend",
]

BUNDLED_SEGMENTATION_MODEL = Path(__file__).resolve().parents[2] / "Resources" / "Models" / "cones-seg-brats.pt"
"""The tumour segmentation shipped with CoNeS (T1, T1ce, T2, FLAIR -> BraTS labels, trained on real BraTS
cases): what ``cones synthesize --segment`` uses when no model is named."""

_TORCHSCRIPT_ONLY = (".ts",)


class SegmentationBackend(StrEnum):
    """What runs a segmentation model; ONNX and nnU-Net models need a package CoNeS does not require."""

    BUILTIN = "builtin"
    """A ``cones train-seg`` model file (MONAI, a requirement of CoNeS)."""
    TORCHSCRIPT = "torchscript"
    """A TorchScript network with its sidecar (torch alone)."""
    ONNX = "onnx"
    """An ONNX network with its sidecar (onnxruntime, ``pip install cones[onnx]``)."""
    NNUNET = "nnunet"
    """A trained nnU-Net v2 folder (nnunetv2, ``pip install cones[nnunet]``)."""


def segmentation_backend(path: str | os.PathLike[str]) -> SegmentationBackend:
    """Which backend runs the segmentation model at ``path``, told from the path alone (no package is imported).

    Raises:
        ValueError: the path does not exist, or is a folder that is no trained nnU-Net folder.
    """
    path = Path(path)
    if path.is_dir():
        if is_nnunet_folder(path):
            return SegmentationBackend.NNUNET
        raise ValueError(f"segmentation model folder {str(path)!r} is not a trained nnU-Net folder")
    if not path.is_file():
        raise ValueError(f"segmentation model {str(path)!r} does not exist")
    # .onnx and .ts are always exported networks (their loader explains a missing sidecar); a .pt file is
    # one only with a sidecar, since the built-in model file is a .pt too.
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return SegmentationBackend.ONNX
    if suffix in _TORCHSCRIPT_ONLY or (suffix in EXPORTED_SUFFIXES and sidecar_path(path).is_file()):
        return SegmentationBackend.TORCHSCRIPT
    return SegmentationBackend.BUILTIN  # its reader refuses, with the reason, anything but a CoNeS segmentation file


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
    backend = segmentation_backend(path)
    if backend is SegmentationBackend.NNUNET:
        return load_nnunet_segmentation(path, device)
    if backend in (SegmentationBackend.ONNX, SegmentationBackend.TORCHSCRIPT):
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
    backend = segmentation_backend(path)
    if backend is SegmentationBackend.NNUNET:
        sequences, labels = read_nnunet_dataset(path)
        return SegmentationInfo(sequences, labels, path)
    if backend in (SegmentationBackend.ONNX, SegmentationBackend.TORCHSCRIPT):
        sidecar = read_sidecar(path)
        return SegmentationInfo(sidecar.sequences, LabelSet(sidecar.label_names, sidecar.label_values), path)
    card = read_segmentation_card(path)
    return SegmentationInfo(card.sequences, card.labels, path, card.validation_scores)
