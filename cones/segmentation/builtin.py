"""The built-in segmentation network: a MONAI 3D U-Net in a self-describing model file.

The file follows the CoNeS model file rules (:mod:`cones.checkpoint`): a ``torch.save`` archive of
tensors and plain data, read only with ``torch.load(weights_only=True)`` (the card alone, for Slicer's
GUI process, with the stricter torch-free reader of :mod:`cones.checkpoint.torch_free`) and written atomically,
with a card that says which sequences it needs in which order, how they are normalised, which
label values mean NCR, ED and ET, and where the weights came from. Its own format name keeps a
segmentation file from being mistaken for a synthesis model, and the other way round::

    {"format": "cones-segmentation-model", "format_version": 2, "card": SegmentationCard.to_dict(),
     "network_state": {name: tensor}}
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cones.checkpoint import CheckpointError, Provenance
from cones.checkpoint.layout import SEGMENTATION_FORMAT_NAME
from cones.checkpoint.torch_free import unpickle_without_torch
from cones.config import JsonConfig
from cones.segmentation.base import (
    InputNormalization,
    SegmentationModel,
    ValidationScores,
    foreground_window,
    sliding_window_classes,
)
from cones.segmentation.labels import LabelSet
from cones.sequences import Sequence, parse_sequences

# torch is imported where a network is built, loaded or saved: Slicer's GUI process reads the card through
# read_segmentation_card without it.
if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = [
    "SEGMENTATION_FORMAT",
    "SEGMENTATION_FORMAT_VERSION",
    "BuiltinSegmentation",
    "SegmentationCard",
    "UNetConfig",
    "build_unet",
    "describe_segmentation_model",
    "is_segmentation_model_file",
    "load_builtin_segmentation",
    "read_segmentation_card",
    "record_validation_scores",
    "save_segmentation_model",
]

SEGMENTATION_FORMAT = SEGMENTATION_FORMAT_NAME
SEGMENTATION_FORMAT_VERSION = 2
"""Version 2 added the card's ``validation_scores`` (which a version-1 reader would refuse as unknown); version-1
files still load, with none."""
_KEYS = frozenset({"format", "format_version", "card", "network_state"})


@dataclass(frozen=True)
class UNetConfig(JsonConfig):
    """Shape of the MONAI ``UNet`` (residual units, instance norm) and the patch it is trained on.

    Attributes:
        channels: feature channels per level; each level after the first halves the resolution.
        strides: downsampling stride per level transition (``len(channels) - 1`` of them).
        num_res_units: residual units per block.
        patch_size: (z, y, x) patch size for training and sliding-window inference; every side must
            be divisible by the product of ``strides``.
    """

    channels: tuple[int, ...] = (16, 32, 64, 128)
    strides: tuple[int, ...] = (2, 2, 2)
    num_res_units: int = 1
    patch_size: tuple[int, int, int] = (64, 64, 64)

    def __post_init__(self) -> None:
        if len(self.channels) < 2 or min(self.channels) < 1:
            raise ValueError(f"UNetConfig.channels must list >= 2 positive sizes, got {self.channels!r}")
        if len(self.strides) != len(self.channels) - 1 or min(self.strides) < 1:
            raise ValueError(
                f"UNetConfig.strides must give {len(self.channels) - 1} positive strides, got {self.strides!r}"
            )
        if self.num_res_units < 0:
            raise ValueError(f"UNetConfig.num_res_units must be >= 0, got {self.num_res_units!r}")
        divisor = int(np.prod(self.strides))
        if len(self.patch_size) != 3 or any(side < 1 or side % divisor for side in self.patch_size):
            raise ValueError(f"UNetConfig.patch_size must be 3 sides divisible by {divisor}, got {self.patch_size!r}")


def build_unet(config: UNetConfig, in_channels: int, out_channels: int) -> nn.Module:
    """The MONAI 3D ``UNet`` that ``config`` describes."""
    from monai.networks.nets import UNet

    return UNet(
        spatial_dims=3,
        in_channels=in_channels,
        out_channels=out_channels,
        channels=config.channels,
        strides=config.strides,
        num_res_units=config.num_res_units,
        norm="instance",
    )


@dataclass(frozen=True)
class SegmentationCard(JsonConfig):
    """Everything needed to rebuild, feed and cite a trained built-in segmentation network.

    Attributes:
        sequences: input sequences in channel order.
        label_names: class names, background first; output channel i is class i.
        label_values: the value written into the label map for each class.
        network: the U-Net's shape and patch size.
        normalization: how inputs are normalised.
        training_means: mean normalised foreground intensity per sequence over the training cases.
        provenance: where the weights came from.
        validation_scores: its mean Dice and HD95 on validation cases with all sequences real and with some
            synthesized (``cones evaluate-segmentation``), shown beside segmentations made that way.
    """

    sequences: tuple[Sequence, ...]
    label_names: tuple[str, ...]
    label_values: tuple[int, ...]
    network: UNetConfig
    normalization: InputNormalization
    training_means: tuple[float, ...]
    provenance: Provenance
    validation_scores: tuple[ValidationScores, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "sequences", parse_sequences(tuple(self.sequences)))
        object.__setattr__(
            self,
            "validation_scores",
            tuple(
                row if isinstance(row, ValidationScores) else ValidationScores.from_dict(row)
                for row in self.validation_scores
            ),
        )
        LabelSet(self.label_names, self.label_values)  # refuses a card whose labels lack NCR, ED or ET
        if len(self.training_means) != len(self.sequences):
            raise ValueError(
                f"SegmentationCard.training_means must give one value per sequence, got {self.training_means!r}"
            )
        object.__setattr__(self, "training_means", tuple(float(value) for value in self.training_means))

    @property
    def labels(self) -> LabelSet:
        """The label names and values as a :class:`LabelSet`."""
        return LabelSet(self.label_names, self.label_values)


class BuiltinSegmentation(SegmentationModel):
    """A built-in U-Net loaded from its model file, run patch-wise with a sliding window."""

    def __init__(self, network: nn.Module, card: SegmentationCard, source: Path, device: torch.device) -> None:
        super().__init__(card.sequences, card.labels, card.normalization, card.training_means, source)
        self.network = network.to(device).eval()
        self.card = card
        self.device = device

    def _predict(self, channels: np.ndarray, spacing: tuple[float, ...]) -> np.ndarray:
        """Labels inside the window of the inputs' foreground (as the network was trained), background outside.

        Skipping the air around a skull-stripped brain makes a BraTS volume about 2.5 times faster and
        leaves no false positive there.
        """
        classes = np.zeros(channels.shape[1:], dtype=np.int64)
        foreground = (channels > self.card.normalization.background).any(axis=0)
        if foreground.any():
            window = foreground_window(foreground, self.card.network.patch_size)
            inside = channels[(slice(None), *window)]
            classes[window] = sliding_window_classes(self.network, inside, self.card.network.patch_size, self.device)
        return np.asarray(self.labels.values, dtype=np.uint8)[classes]


def save_segmentation_model(
    path: str | os.PathLike[str], network: nn.Module, card: SegmentationCard, overwrite: bool = False
) -> Path:
    """Write a built-in segmentation model file atomically (the CoNeS checkpoint writer).

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is false.
    """
    from cones.checkpoint.writing import _write_atomically

    path = Path(path)
    payload: dict[str, Any] = {
        "format": SEGMENTATION_FORMAT,
        "format_version": SEGMENTATION_FORMAT_VERSION,
        "card": card.to_dict(),
        "network_state": {name: tensor.detach().cpu() for name, tensor in network.state_dict().items()},
    }
    _write_atomically(path, payload, overwrite)
    return path


def read_segmentation_card(path: str | os.PathLike[str]) -> SegmentationCard:
    """The card of a built-in segmentation model file, checked, without building its network or importing torch.

    The file is unpickled by the torch-free reader (:func:`cones.checkpoint.torch_free.unpickle_without_torch`),
    which refuses what ``torch.load(weights_only=True)`` refuses, so Slicer's GUI process can check a
    request before the worker process that loads the network starts.

    Raises:
        CheckpointError: see :func:`load_builtin_segmentation` (all but the weights check).
    """
    path = Path(path)
    return _checked_card(path, unpickle_without_torch(path))


def _checked_card(path: Path, raw: Any) -> SegmentationCard:
    if not isinstance(raw, dict) or raw.get("format") != SEGMENTATION_FORMAT:
        found = raw.get("format") if isinstance(raw, dict) else None
        hint = (
            "; it is a CoNeS synthesis model: give it as the synthesis model (--model of 'cones synthesize', "
            "--synthesis-model of 'cones evaluate-segmentation')"
            if found == "cones-model"
            else ""
        )
        raise CheckpointError(f"refusing to load {path}: it is not a CoNeS segmentation model file{hint}")
    version = raw.get("format_version")
    if type(version) is not int or not 1 <= version <= SEGMENTATION_FORMAT_VERSION:
        raise CheckpointError(f"refusing to load {path}: format version {version!r} is not supported; upgrade CoNeS")
    if set(raw) != _KEYS:
        raise CheckpointError(f"refusing to load {path}: it is malformed (entries {sorted(raw)})")
    try:
        card = SegmentationCard.from_dict(raw["card"])
    except ValueError as error:
        raise CheckpointError(f"refusing to load {path}: its card is invalid: {error}") from error
    return card


def load_builtin_segmentation(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> BuiltinSegmentation:
    """Rebuild the U-Net a segmentation model file describes and load its weights strictly.

    Raises:
        CheckpointError: the file does not exist, is corrupt, holds code, is not a CoNeS segmentation
            model (a synthesis model included), comes from a newer format, has an invalid card, or its
            weights do not fit the card's network.
    """
    from cones.checkpoint.reading import _unpickle
    from cones.device import resolve_device

    path = Path(path)
    raw = _unpickle(path)
    card = _checked_card(path, raw)
    network = build_unet(card.network, len(card.sequences), len(card.label_values))
    try:
        network.load_state_dict(raw["network_state"], strict=True)
    except (RuntimeError, TypeError, AttributeError) as error:
        raise CheckpointError(f"refusing to load {path}: its weights do not match its card's network") from error
    return BuiltinSegmentation(network, card, path, resolve_device(device))


def record_validation_scores(
    model: str | os.PathLike[str],
    output: str | os.PathLike[str],
    measured: tuple[ValidationScores, ...],
    overwrite: bool = False,
) -> Path:
    """Write a copy of a built-in segmentation model whose card records ``measured`` (its Table 5 rows).

    The weights are copied unchanged; ``output`` must not be ``model``, so the measured file is
    never lost to a failed write.

    Raises:
        ValueError: ``output`` is ``model``.
        CheckpointError: ``model`` is refused.
        FileExistsError: ``output`` exists and ``overwrite`` is false.
    """
    if Path(output).resolve() == Path(model).resolve():
        raise ValueError(f"{output} is the model itself; write the measured copy elsewhere")
    loaded = load_builtin_segmentation(model)
    return save_segmentation_model(output, loaded.network, replace(loaded.card, validation_scores=measured), overwrite)


def is_segmentation_model_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` holds a built-in segmentation model (read without torch; False for anything unreadable)."""
    try:
        raw = unpickle_without_torch(Path(path))
    except CheckpointError:
        return False
    return isinstance(raw, dict) and raw.get("format") == SEGMENTATION_FORMAT


def describe_segmentation_model(path: str | os.PathLike[str]) -> str:
    """What ``cones info`` prints of a segmentation model file: inputs, labels, network, origin, validation scores.

    Raises:
        CheckpointError: the file is refused (see :func:`load_builtin_segmentation`).
    """
    from cones.checkpoint.reading import _unpickle

    path = Path(path)
    raw = _unpickle(path)
    card = _checked_card(path, raw)
    provenance, network = card.provenance, card.network
    parameters = sum(tensor.numel() for tensor in raw["network_state"].values())
    shape = "x".join(map(str, network.patch_size))
    labels = ", ".join(f"{name} {value}" for name, value in zip(card.label_names, card.label_values, strict=True))
    rows = [
        ("segments", f"{', '.join(seq.display_name for seq in card.sequences)} -> {labels}"),
        ("network", f"3D U-Net, channels {'-'.join(map(str, network.channels))}, patch {shape}"),
        ("parameters", f"{parameters:,}"),
        ("normalization", card.normalization.method.value),
        ("iterations", f"{provenance.iterations:,}"),
        ("created", provenance.created),
        ("git commit", provenance.git_commit or "not recorded"),
        ("data fingerprint", provenance.data_fingerprint),
        *[("earlier data", fingerprint) for fingerprint in provenance.earlier_data_fingerprints],
        ("data", provenance.data_description or "not recorded"),
        ("command", provenance.command or "not recorded"),
        *[("validation", _describe_scores(scores)) for scores in card.validation_scores],
        ("file size", f"{path.stat().st_size / 1e6:.1f} MB"),
    ]
    width = max(len(label) for label, _ in rows) + 2
    return "\n".join(
        [f"CoNeS segmentation model {path}", *(f"  {label + ':':<{width}}{value}" for label, value in rows)]
    )


def _describe_scores(scores: ValidationScores) -> str:
    inputs = (
        f"{', '.join(seq.display_name for seq in scores.synthesized)} synthesized by {scores.synthesis_model}"
        if scores.synthesized
        else "every sequence real"
    )
    regions = zip(("ET", "TC", "WT"), scores.hd95_mm, strict=True)
    distances = ", ".join(f"{region} {value:.1f} mm" for region, value in regions)
    return f"{scores.cases} cases, {inputs}: Dice {scores.describe()}; HD95 {distances}"
