"""Segmentation networks exported to TorchScript or ONNX, described by a JSON sidecar.

An exported network is a bare function from channels to logits: the file alone does not say which
sequence goes into which channel, which output channel is the enhancing tumour, or how intensities
were normalised, and a wrong guess gives a plausible but wrong map. The sidecar (``model.json`` next
to ``model.onnx`` or ``model.ts``) says all of that, and a network without one is refused::

    {"sequences": ["t1", "t1ce", "t2", "flair"],
     "label_names": ["background", "NCR", "ED", "ET"], "label_values": [0, 1, 2, 4],
     "normalization": {"method": "zscore"}, "patch_size": [128, 128, 128],
     "orientation": "LPS", "training_means": [0.0, 0.0, 0.0, 0.0]}

The network takes a float32 tensor (1, len(sequences), *patch_size) of (z, y, x) patches and
returns logits (1, len(label_names), *patch_size); output channel i is class i. ``orientation``
(default ``"LPS"``, the orientation CoNeS trains in) is the voxel orientation of the training
arrays: another DICOM code such as ``"RAS"`` (nibabel's canonical), or ``"stored"`` for networks
trained on arrays as the files stored them. ``normalization`` defaults to CoNeS' percentile scheme
and ``training_means`` is optional (without it, mean imputation is refused). TorchScript files run
only TorchScript's restricted code, never arbitrary Python, and ONNX files none at all.
"""

from __future__ import annotations

import json
import os
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cones.config import JsonConfig
from cones.data.geometry import CANONICAL_ORIENTATION
from cones.segmentation.base import InputNormalization, SegmentationModel, check_orientation, sliding_window_classes
from cones.segmentation.labels import LabelSet
from cones.sequences import Sequence, parse_sequences

# torch is imported where a network is loaded: Slicer's GUI process reads the sidecar through this module.
if TYPE_CHECKING:
    import torch

__all__ = [
    "EXPORTED_SUFFIXES",
    "ExportedSegmentation",
    "Sidecar",
    "load_exported_segmentation",
    "read_sidecar",
    "sidecar_path",
]

EXPORTED_SUFFIXES = (".onnx", ".ts", ".pt", ".pth")
"""Endings of exported networks: ONNX, and TorchScript under its usual names."""


@dataclass(frozen=True)
class Sidecar(JsonConfig):
    """What an exported segmentation network needs and produces (see the module docstring)."""

    sequences: tuple[Sequence, ...]
    label_names: tuple[str, ...]
    label_values: tuple[int, ...]
    patch_size: tuple[int, int, int]
    normalization: InputNormalization = field(default_factory=InputNormalization)
    orientation: str = CANONICAL_ORIENTATION
    training_means: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "sequences", parse_sequences(tuple(self.sequences)))
        object.__setattr__(self, "orientation", check_orientation(self.orientation, "Sidecar.orientation"))
        LabelSet(self.label_names, self.label_values)  # refuses labels without NCR, ED or ET
        if len(self.patch_size) != 3 or any(type(side) is not int or side < 1 for side in self.patch_size):
            raise ValueError(f"Sidecar.patch_size must be 3 positive integers, got {self.patch_size!r}")
        if self.training_means is not None:
            if len(self.training_means) != len(self.sequences):
                raise ValueError(
                    f"Sidecar.training_means must give one value per sequence, got {self.training_means!r}"
                )
            object.__setattr__(self, "training_means", tuple(float(value) for value in self.training_means))


def sidecar_path(path: str | os.PathLike[str]) -> Path:
    """The sidecar of an exported network: the same name with ``.json`` (``seg.onnx`` -> ``seg.json``)."""
    return Path(path).with_suffix(".json")


class ExportedSegmentation(SegmentationModel):
    """An exported network run patch-wise with a sliding window."""

    def __init__(
        self, network: Callable[[torch.Tensor], torch.Tensor], sidecar: Sidecar, source: Path, device: torch.device
    ) -> None:
        labels = LabelSet(sidecar.label_names, sidecar.label_values)
        super().__init__(
            sidecar.sequences, labels, sidecar.normalization, sidecar.training_means, source, sidecar.orientation
        )
        self.network = network
        self.sidecar = sidecar
        self.device = device

    def _predict(self, channels: np.ndarray, spacing: tuple[float, ...]) -> np.ndarray:
        classes = sliding_window_classes(self.network, channels, self.sidecar.patch_size, self.device)
        return np.asarray(self.labels.values, dtype=np.uint8)[classes]


def load_exported_segmentation(
    path: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> ExportedSegmentation:
    """Load a TorchScript or ONNX segmentation network with its JSON sidecar.

    Args:
        path: the ``.onnx`` or TorchScript (``.ts``, ``.pt``, ``.pth``) file.
        device: where the network runs (ONNX: CUDA when onnxruntime has it, otherwise the CPU).

    Raises:
        ValueError: the file or its sidecar is missing, the sidecar is not valid JSON or misses
            fields, the file is not a TorchScript or ONNX network, or a TorchScript archive fails its CRCs.
        ImportError: an ONNX file is given and onnxruntime is not installed (``pip install cones[onnx]``).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"segmentation model {str(path)!r} does not exist")
    if path.suffix.lower() not in EXPORTED_SUFFIXES:
        raise ValueError(f"segmentation model {str(path)!r} must end with one of {', '.join(EXPORTED_SUFFIXES)}")
    import torch

    from cones.device import resolve_device

    sidecar = read_sidecar(path)
    device = resolve_device(device)
    if path.suffix.lower() == ".onnx":
        network = _onnx_network(path, device)
    else:
        from cones.checkpoint.validation import check_crcs

        if zipfile.is_zipfile(path):  # torch.jit.load, like torch.load, never checks the archive's CRCs
            check_crcs(path)
        try:
            with warnings.catch_warnings():
                # torch deprecates TorchScript in favour of torch.export, but it is still the format that
                # segmentation tools ship; the warning would only tell the user something they cannot act on.
                warnings.simplefilter("ignore", DeprecationWarning)
                module = torch.jit.load(str(path), map_location=device)
        except RuntimeError as error:
            raise ValueError(f"{str(path)!r} is not a TorchScript network: {str(error).splitlines()[0]}") from None
        network = module.eval()
    return ExportedSegmentation(network, sidecar, path, device)


def read_sidecar(path: str | os.PathLike[str]) -> Sidecar:
    """The checked sidecar of an exported network (``seg.json`` for ``seg.onnx``).

    Raises:
        ValueError: the sidecar is missing, not valid JSON, or invalid (the message says which field).
    """
    location = sidecar_path(path)
    if not location.is_file():
        raise ValueError(
            f"{str(path)!r} has no sidecar {str(location)!r}: an exported network needs one to say its input "
            "sequences, label values and normalization"
        )
    try:
        content = json.loads(location.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"sidecar {str(location)!r} is not valid JSON: {error}") from None
    if not isinstance(content, dict):
        raise ValueError(f"sidecar {str(location)!r} must hold a JSON object")
    try:
        return Sidecar.from_dict(content)
    except ValueError as error:
        raise ValueError(f"sidecar {str(location)!r} is invalid: {error}") from None


def _onnx_network(path: Path, device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    import onnxruntime

    available = onnxruntime.get_available_providers()
    wanted = ["CUDAExecutionProvider"] if device.type == "cuda" else []
    providers = [provider for provider in wanted if provider in available] + ["CPUExecutionProvider"]
    try:
        session = onnxruntime.InferenceSession(str(path), providers=providers)
    except Exception as error:  # onnxruntime raises its own untyped errors for unreadable models
        raise ValueError(f"{str(path)!r} is not an ONNX network: {str(error).splitlines()[0]}") from None
    input_name = session.get_inputs()[0].name

    import torch

    def run(batch: torch.Tensor) -> torch.Tensor:
        (logits, *_) = session.run(None, {input_name: batch.detach().cpu().numpy().astype(np.float32)})
        return torch.from_numpy(logits).to(batch.device)

    return run
