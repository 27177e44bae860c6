"""The one interface every segmentation backend implements, and the input handling they share.

Backends differ only in how a stack of input channels becomes a label map (a MONAI network, a
TorchScript or ONNX file, an nnU-Net folder). Everything around that is done once, here: checking
that the model's sequences are given and share one grid, turning volumes into the canonical
orientation, normalising, filling a missing sequence for the downstream experiment, and giving the
label map the exact geometry of the inputs so it overlays them in Slicer.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import SimpleITK as sitk

from cones.config import JsonConfig
from cones.data.geometry import CANONICAL_ORIENTATION, check_same_grid, reorient
from cones.data.io import array_to_image, image_to_array
from cones.segmentation.labels import LabelSet
from cones.sequences import Sequence, parse_sequence

# torch is imported where a network runs: Slicer's GUI process reads SegmentationInfo through this module.
if TYPE_CHECKING:
    import torch

__all__ = [
    "STORED_ORIENTATION",
    "Imputation",
    "InputNormalization",
    "NormalizationMethod",
    "SegmentationInfo",
    "SegmentationModel",
    "ValidationScores",
    "check_orientation",
    "describe_validation_scores",
    "foreground_window",
    "sliding_window_classes",
]

STORED_ORIENTATION = "stored"
"""Orientation value for networks that see voxels in the order the file stores them (nnU-Net's
``SimpleITKIO`` reads images that way), instead of a fixed anatomical orientation."""
_AXIS_LETTERS = ("RL", "AP", "SI")


def check_orientation(orientation: str, name: str = "orientation") -> str:
    """Validate an array orientation: a DICOM code such as ``"LPS"`` or ``"RAS"``, or ``"stored"``.

    A network sees anatomy the way round its training arrays were; a wrong orientation gives a
    mirrored or transposed input and a plausible but wrong label map, so the code is checked.

    Raises:
        ValueError: ``orientation`` is neither ``"stored"`` nor three letters naming each axis once.
    """
    if orientation == STORED_ORIENTATION:
        return orientation
    code = str(orientation).upper()
    axes = sorted(next((i for i, pair in enumerate(_AXIS_LETTERS) if letter in pair), -1) for letter in code)
    if len(code) != 3 or axes != [0, 1, 2]:
        raise ValueError(
            f"{name} must be '{STORED_ORIENTATION}' or a code naming each axis once (R/L, A/P, S/I), "
            f"e.g. 'LPS'; got {orientation!r}"
        )
    return code


class Imputation(StrEnum):
    """How a sequence that was not acquired is stood in for (the baselines of the paper's Table 5).

    ZEROS feeds an empty scan: every voxel gets the normalised background value. MEAN fills the
    foreground (taken from the sequences that are there) with the mean normalised foreground
    intensity of that sequence over the training set, and the background with the background value.
    """

    ZEROS = "zeros"
    MEAN = "mean"


class NormalizationMethod(StrEnum):
    """How scanner intensities become network inputs."""

    PERCENTILE = "percentile"
    """Foreground percentiles to [-1, 1], background -1 (the CoNeS normalization)."""
    ZSCORE = "zscore"
    """Foreground mean 0 and standard deviation 1, background 0 (nnU-Net's MRI scheme)."""
    NONE = "none"
    """Raw intensities (the model or its runtime normalises itself)."""


@dataclass(frozen=True)
class InputNormalization(JsonConfig):
    """How each input sequence is normalised before it reaches the network.

    Attributes:
        method: see :class:`NormalizationMethod`.
        lower_percentile: for ``percentile``: the foreground percentile mapped to -1.
        upper_percentile: for ``percentile``: the foreground percentile mapped to +1.
        foreground_threshold: voxels above this raw value in any given sequence are foreground.
    """

    method: NormalizationMethod = NormalizationMethod.PERCENTILE
    lower_percentile: float = 0.5
    upper_percentile: float = 99.5
    foreground_threshold: float = 0.0

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "method", NormalizationMethod(self.method))
        except ValueError:
            known = [method.value for method in NormalizationMethod]
            raise ValueError(f"InputNormalization.method must be one of {known}, got {self.method!r}") from None
        if not 0.0 <= self.lower_percentile < self.upper_percentile <= 100.0:
            raise ValueError(
                "InputNormalization percentiles must satisfy 0 <= lower < upper <= 100, "
                f"got lower={self.lower_percentile!r}, upper={self.upper_percentile!r}"
            )

    @property
    def background(self) -> float:
        """The value background voxels (and an empty scan) have after normalization."""
        return -1.0 if self.method is NormalizationMethod.PERCENTILE else 0.0

    def apply(self, volume: np.ndarray, mask: np.ndarray, name: str) -> np.ndarray:
        """Normalise one raw volume inside ``mask``; the background gets :attr:`background`.

        Raises:
            ValueError: the volume holds NaN or infinite values, or is constant inside the mask.
        """
        volume = np.asarray(volume, dtype=np.float32)
        if not np.isfinite(volume).all():
            raise ValueError(f"{name}: the volume contains NaN or infinite values")
        if self.method is NormalizationMethod.NONE:
            return volume.copy()
        values = volume[mask].astype(np.float64)
        if self.method is NormalizationMethod.ZSCORE:
            low, scale = values.mean(), values.std()
            if not scale > 0:
                raise ValueError(f"{name}: the volume is constant inside the foreground ({low:g})")
            normalized = ((volume - low) / scale).astype(np.float32)
        else:
            low, high = np.percentile(values, [self.lower_percentile, self.upper_percentile])
            if not high > low:
                raise ValueError(f"{name}: the volume is constant inside the foreground ({low:g})")
            normalized = np.clip((volume - low) * (2.0 / (high - low)) - 1.0, -1.0, 1.0).astype(np.float32)
        normalized[~mask] = self.background
        return normalized


@dataclass(frozen=True)
class ValidationScores(JsonConfig):
    """A segmentation model's mean scores on labelled validation cases, fed one way (a row of Table 5).

    A label map computed with a synthesized sequence is only as good as that row says; the command
    line and Slicer show it beside such a segmentation.

    Attributes:
        synthesized: the sequences that were synthesized; empty when all were real.
        synthesis_model: the file name of the model that synthesized them ("" when all were real).
        cases: how many validation cases the means are over.
        dice: mean Dice of the BraTS regions ET, TC and WT.
        hd95_mm: mean 95th-percentile Hausdorff distance of ET, TC and WT in mm, over the cases where it
            is defined (both masks non-empty); NaN where it is defined for none.
    """

    synthesized: tuple[Sequence, ...]
    synthesis_model: str
    cases: int
    dice: tuple[float, float, float]
    hd95_mm: tuple[float, float, float]

    def __post_init__(self) -> None:
        object.__setattr__(self, "synthesized", tuple(parse_sequence(seq) for seq in self.synthesized))
        object.__setattr__(self, "dice", tuple(float(value) for value in self.dice))
        object.__setattr__(self, "hd95_mm", tuple(float(value) for value in self.hd95_mm))
        if self.cases < 1:
            raise ValueError(f"ValidationScores.cases must be positive, got {self.cases!r}")
        if len(self.dice) != 3 or not all(0.0 <= value <= 1.0 for value in self.dice):
            raise ValueError(f"ValidationScores.dice must be 3 values in [0, 1] (ET, TC, WT), got {self.dice!r}")
        if len(self.hd95_mm) != 3 or any(value < 0.0 for value in self.hd95_mm):
            raise ValueError(f"ValidationScores.hd95_mm must be 3 values >= 0 or NaN, got {self.hd95_mm!r}")

    def describe(self) -> str:
        """``ET 0.52, TC 0.61, WT 0.80`` (Dice)."""
        return ", ".join(f"{region} {value:.2f}" for region, value in zip(("ET", "TC", "WT"), self.dice, strict=True))


def describe_validation_scores(measured: tuple[ValidationScores, ...], synthesized: tuple[Sequence, ...]) -> str | None:
    """What the model's card says to expect of a segmentation computed with ``synthesized`` sequences.

    Returns:
        One sentence with the measured Dice for those synthesized sequences and with all sequences
        real, or None when the card records no measurement for them.
    """
    wanted = set(synthesized)
    match = next((row for row in measured if set(row.synthesized) == wanted), None)
    real = next((row for row in measured if not row.synthesized), None)
    if match is None or not wanted:
        return None
    names = ", ".join(seq.display_name for seq in synthesized)
    sentence = (
        f"mean Dice measured on {match.cases} validation cases with {names} synthesized by {match.synthesis_model}: "
        f"{match.describe()}"
    )
    if real is not None:
        sentence += f"; with every sequence real: {real.describe()}"
    return sentence


@dataclass(frozen=True)
class SegmentationInfo:
    """What a segmentation model needs and makes, known without building its network.

    Enough to refuse a request before any work starts, and to name the segments of its label map
    (:func:`~cones.segmentation.loading.read_segmentation_info` reads it from any backend's files).

    Attributes:
        sequences: the input sequences in channel order.
        labels: the names and values of the label map it writes.
        source: the file or folder of the model.
        validation_scores: what its card records of its Dice on validation cases (built-in models only).
    """

    sequences: tuple[Sequence, ...]
    labels: LabelSet
    source: Path
    validation_scores: tuple[ValidationScores, ...] = ()


class SegmentationModel(ABC):
    """A tumour segmentation model that needs a fixed set of co-registered sequences.

    Attributes:
        sequences: the input sequences in channel order.
        labels: the names and values of the label map it produces (BraTS names NCR, ED, ET).
        normalization: how inputs are normalised before :meth:`_predict` sees them.
        training_means: mean normalised foreground intensity per sequence over the training set
            (for :attr:`Imputation.MEAN`), or None when the model does not record it.
        source: the file or folder the model was loaded from.
        orientation: the voxel orientation the network's arrays are in (see :func:`check_orientation`);
            CoNeS networks use :data:`~cones.data.geometry.CANONICAL_ORIENTATION`, as synthesis does.
    """

    def __init__(
        self,
        sequences: tuple[Sequence, ...],
        labels: LabelSet,
        normalization: InputNormalization,
        training_means: tuple[float, ...] | None,
        source: Path,
        orientation: str = CANONICAL_ORIENTATION,
    ) -> None:
        if not sequences or len(set(sequences)) != len(sequences):
            raise ValueError(f"sequences must be a non-empty list without repeats, got {sequences!r}")
        if training_means is not None and len(training_means) != len(sequences):
            raise ValueError(f"training_means must give one value per sequence, got {training_means!r}")
        self.sequences = sequences
        self.labels = labels
        self.normalization = normalization
        self.training_means = training_means
        self.source = source
        self.orientation = check_orientation(orientation)

    def segment(
        self,
        images: Mapping[Sequence | str, sitk.Image],
        impute: Mapping[Sequence | str, Imputation | str] | None = None,
    ) -> sitk.Image:
        """Segment one case; the label map has exactly the geometry of the inputs.

        Args:
            images: co-registered images keyed by sequence (any known spelling); sequences the model
                does not use are ignored, names that are no sequence are refused.
            impute: sequences the model needs that are not in ``images``, and how to stand in for them.

        Returns:
            A uint8 label map with the values of :attr:`labels`.

        Raises:
            ValueError: a needed sequence is neither given nor imputed, no sequence is given, the
                images are not on one grid, MEAN imputation is asked of a model without training
                means, or a volume is unusable (NaN, constant, no foreground).
        """
        given = {parse_sequence(name): image for name, image in images.items()}
        filled = {parse_sequence(name): Imputation(method) for name, method in (impute or {}).items()}
        missing = [seq.display_name for seq in self.sequences if seq not in given and seq not in filled]
        if missing:
            have = ", ".join(seq.display_name for seq in given) or "none"
            raise ValueError(f"the segmentation model {self.source} needs {', '.join(missing)}; given: {have}")
        present = {seq: given[seq] for seq in self.sequences if seq in given}
        if not present:
            raise ValueError("images must hold at least one of the segmentation model's sequences")
        check_same_grid(present, "segmentation input")
        reference = next(iter(present.values()))
        oriented_reference = self._oriented(reference)
        arrays = {seq: image_to_array(self._oriented(image)) for seq, image in present.items()}
        mask = np.zeros(oriented_reference.GetSize()[::-1], dtype=bool)
        for array in arrays.values():
            mask |= np.nan_to_num(array, nan=-np.inf) > self.normalization.foreground_threshold
        if not mask.any():
            raise ValueError(
                f"empty foreground: no voxel above {self.normalization.foreground_threshold:g} in any given sequence"
            )
        channels = np.stack(
            [self._channel(index, seq, arrays, filled, mask) for index, seq in enumerate(self.sequences)]
        )
        values = self._predict(channels, tuple(oriented_reference.GetSpacing()[::-1]))
        label_map = array_to_image(values.astype(np.uint8), oriented_reference)
        if self.orientation != STORED_ORIENTATION:
            original = sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(reference.GetDirection())
            label_map = reorient(label_map, original)
        label_map.CopyInformation(reference)
        return label_map

    def _oriented(self, image: sitk.Image) -> sitk.Image:
        """``image`` with its voxels permuted and flipped into :attr:`orientation` (lossless)."""
        return image if self.orientation == STORED_ORIENTATION else reorient(image, self.orientation)

    def _channel(
        self,
        index: int,
        sequence: Sequence,
        arrays: Mapping[Sequence, np.ndarray],
        filled: Mapping[Sequence, Imputation],
        mask: np.ndarray,
    ) -> np.ndarray:
        if sequence in arrays:
            return self.normalization.apply(arrays[sequence], mask, sequence.display_name)
        channel = np.full(mask.shape, self.normalization.background, dtype=np.float32)
        if filled[sequence] is Imputation.MEAN:
            if self.training_means is None:
                raise ValueError(
                    f"the segmentation model {self.source} records no training means; "
                    f"cannot impute {sequence.display_name} with the mean"
                )
            channel[mask] = self.training_means[index]
        return channel

    @abstractmethod
    def _predict(self, channels: np.ndarray, spacing: tuple[float, ...]) -> np.ndarray:
        """Label values (z, y, x) for normalised channels (C, z, y, x) of voxel size ``spacing`` (mm)."""


def foreground_window(foreground: np.ndarray, minimum: tuple[int, ...]) -> tuple[slice, ...]:
    """The bounding box of ``foreground``, grown about its centre (inside the volume) to ``minimum`` per axis.

    A skull-stripped BraTS brain fills about 40 % of its grid: training holds cases cropped to this
    window and the built-in network segments only inside it, as nnU-Net crops to the non-zero
    region. An axis shorter than ``minimum`` is taken whole; the caller pads it.

    Raises:
        ValueError: ``foreground`` is empty.
    """
    found = np.argwhere(foreground)
    if not len(found):
        raise ValueError("the foreground is empty: there is no window around it")
    window = []
    for low, high, size, side in zip(found.min(axis=0), found.max(axis=0) + 1, minimum, foreground.shape, strict=True):
        length = min(side, max(size, high - low))
        begin = int(np.clip(low - (length - (high - low)) // 2, 0, side - length))
        window.append(slice(begin, begin + length))
    return tuple(window)


def sliding_window_classes(
    network: Callable[[torch.Tensor], torch.Tensor],
    channels: np.ndarray,
    patch_size: tuple[int, int, int],
    device: torch.device,
) -> np.ndarray:
    """Class index per voxel from a patch-wise network, by MONAI's Gaussian-weighted sliding window.

    Patches overlap by a quarter so that each voxel is predicted away from a patch border, where a
    convolutional network sees the least context. Volumes smaller than a patch are padded.
    """
    import torch
    from monai.inferers import sliding_window_inference

    inputs = torch.from_numpy(np.ascontiguousarray(channels))[None].to(device)
    with torch.inference_mode():
        logits = sliding_window_inference(
            inputs, patch_size, sw_batch_size=1, predictor=network, overlap=0.25, mode="gaussian"
        )
    return logits[0].argmax(dim=0).cpu().numpy()
