"""Training the built-in segmentation network (``cones train-seg``).

A small patch-based 3D U-Net, trained the way nnU-Net trains BraTS models, only much shorter:
random patches, half of them centred on tumour so the rare enhancing voxels are seen often enough,
random flips, and Dice + cross-entropy on the classes background, NCR, ED and ET. Reference label
maps in either BraTS convention (ET = 4 or 3) are accepted, case by case. The result is a
self-describing model file (:mod:`cones.segmentation.builtin`) that also records the mean
normalised intensity of each sequence, which the downstream experiment uses for mean imputation.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from monai.losses import DiceCELoss

from cones.checkpoint import make_provenance
from cones.data.discovery import CaseFiles, find_cases, require_sequences
from cones.data.geometry import check_same_grid, to_canonical
from cones.data.io import image_to_array, read_image
from cones.device import resolve_device
from cones.segmentation.base import InputNormalization
from cones.segmentation.builtin import SegmentationCard, UNetConfig, build_unet, save_segmentation_model
from cones.segmentation.labels import BRATS_2018_LABELS, LabelSet, detect_labels
from cones.sequences import Sequence, parse_sequences

__all__ = ["SegmentationTrainingConfig", "TrainingCase", "load_training_case", "train_segmentation"]

_LOG = logging.getLogger(__name__)
_TUMOUR_CENTRED_FRACTION = 0.5

ProgressCallback = Callable[[int, int, float], None]
"""Called with (iterations done, iterations to do, loss of the last batch)."""


@dataclass(frozen=True)
class SegmentationTrainingConfig:
    """How the built-in segmentation network is trained.

    Attributes:
        iterations: optimizer steps.
        batch_size: patches per step.
        learning_rate: Adam's learning rate.
        network: the U-Net's shape and patch size.
        normalization: how inputs are normalised (recorded in the model file).
        output_labels: the label values written by the trained model (BraTS 2018: ET = 4).
        seed: seeds patch sampling and weight initialisation.
    """

    iterations: int = 2000
    batch_size: int = 2
    learning_rate: float = 1e-3
    network: UNetConfig = field(default_factory=UNetConfig)
    normalization: InputNormalization = field(default_factory=InputNormalization)
    output_labels: LabelSet = BRATS_2018_LABELS
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("iterations", "batch_size"):
            if type(getattr(self, name)) is not int or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive int, got {getattr(self, name)!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate!r}")


class TrainingCase(NamedTuple):
    """One case as the network is trained on it."""

    channels: np.ndarray
    """Normalised sequences (C, z, y, x)."""
    classes: np.ndarray
    """Class indices (z, y, x): 0 background, 1 NCR, 2 ED, 3 ET."""
    foreground: np.ndarray
    """Voxels above the foreground threshold in any sequence."""
    tumour: np.ndarray
    """(N, 3) indices of the tumour voxels, found once: patches are centred on them half of the time."""


def load_training_case(
    case: CaseFiles, sequences: tuple[Sequence, ...], normalization: InputNormalization
) -> TrainingCase:
    """Read, normalise and relabel one case for training.

    Volumes are turned into the canonical orientation, as at inference, so patches see anatomy the
    same way round in both.

    Raises:
        ValueError: the case has no label map, its images are not on one grid, or a volume is unusable.
    """
    if case.label is None:
        raise ValueError(f"case {case.case_id} has no label map (<case>_seg.nii.gz); train-seg needs one per case")
    images = {seq: read_image(case.sequences[seq]) for seq in sequences}
    label_image = read_image(case.label)
    check_same_grid({**images, "label map": label_image}, f"case {case.case_id}")
    arrays = [image_to_array(to_canonical(image)[0]) for image in images.values()]
    labels = np.rint(image_to_array(to_canonical(label_image)[0])).astype(np.int64)
    mask = np.zeros(labels.shape, dtype=bool)
    for array in arrays:
        mask |= array > normalization.foreground_threshold
    channels = np.stack(
        [
            normalization.apply(array, mask, f"case {case.case_id} {seq.display_name}")
            for seq, array in zip(sequences, arrays, strict=True)
        ]
    )
    convention = detect_labels(labels)
    classes = np.zeros(labels.shape, dtype=np.uint8)  # a quarter of the memory of int64 for a whole dataset
    for index, name in enumerate(("NCR", "ED", "ET"), start=1):
        classes[labels == convention.value_of(name)] = index
    return TrainingCase(channels, classes, mask, np.argwhere(classes > 0))


def train_segmentation(
    data: str | os.PathLike[str],
    sequences: Iterable[Sequence | str],
    output: str | os.PathLike[str],
    config: SegmentationTrainingConfig | None = None,
    device: str | torch.device = "auto",
    command: str | None = None,
    data_description: str | None = None,
    progress: ProgressCallback | None = None,
) -> Path:
    """Train the built-in network on every labelled case of a dataset folder and write ``OUTPUT/last.pt``.

    Args:
        data: a folder of case folders (BraTS naming) with a ``seg`` label map per case.
        sequences: the input sequences, in channel order.
        output: the run folder; ``last.pt`` and ``log.jsonl`` (one line per step: iteration,
            seconds since training started, loss) are written into it.
        config: iterations, patch size, network; defaults when None.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        command: the command line, recorded in the model file.
        data_description: which data, with its attribution, recorded in the model file.
        progress: called after every step.

    Returns:
        The path of the written model file.

    Raises:
        ValueError: no case, a case lacks a sequence or label map, or a volume is unusable.
        FileExistsError: ``OUTPUT/last.pt`` exists (this command does not resume).
    """
    config = config or SegmentationTrainingConfig()
    sequences = parse_sequences(tuple(sequences))
    output = Path(output)
    last = output / "last.pt"
    if last.exists():
        raise FileExistsError(f"{last} already exists; choose another --output")
    cases = require_sequences(find_cases(data), sequences)
    loaded = [_padded(load_training_case(case, sequences, config.normalization), config) for case in cases]
    means = tuple(
        float(np.mean([case.channels[index][case.foreground].mean() for case in loaded]))
        for index in range(len(sequences))
    )
    rng = np.random.default_rng(config.seed)
    device = resolve_device(device)
    with torch.random.fork_rng(devices=[]):  # MONAI initialises from the global RNG; leave the caller's untouched
        torch.manual_seed(config.seed)
        network = build_unet(config.network, len(sequences), len(config.output_labels.values)).to(device)
    optimizer = torch.optim.Adam(network.parameters(), lr=config.learning_rate, weight_decay=1e-5)
    loss_function = DiceCELoss(to_onehot_y=True, softmax=True)
    output.mkdir(parents=True, exist_ok=True)
    network.train()
    start = time.perf_counter()
    with (output / "log.jsonl").open("a", encoding="utf-8") as log:
        for iteration in range(1, config.iterations + 1):
            patches = [_sample_patch(loaded[rng.integers(len(loaded))], config, rng) for _ in range(config.batch_size)]
            inputs = torch.from_numpy(np.stack([patch for patch, _ in patches])).to(device)
            targets = torch.from_numpy(np.stack([target[None] for _, target in patches])).to(device).long()
            optimizer.zero_grad(set_to_none=True)
            loss = loss_function(network(inputs), targets)
            loss.backward()
            optimizer.step()
            seconds = round(time.perf_counter() - start, 3)
            log.write(json.dumps({"iteration": iteration, "seconds": seconds, "loss": round(loss.item(), 6)}) + "\n")
            if progress is not None:
                progress(iteration, config.iterations, loss.item())
    card = SegmentationCard(
        sequences=sequences,
        label_names=config.output_labels.names,
        label_values=config.output_labels.values,
        network=config.network,
        normalization=config.normalization,
        training_means=means,
        provenance=make_provenance(config.iterations, _fingerprint(cases, sequences), command, data_description),
    )
    _LOG.info("trained on %d cases; writing %s", len(cases), last)
    return save_segmentation_model(last, network, card)


def _padded(case: TrainingCase, config: SegmentationTrainingConfig) -> TrainingCase:
    """The case padded with background to at least one patch per axis (once, not per sampled patch)."""
    patch_size = config.network.patch_size
    padding = [(0, max(0, size - side)) for size, side in zip(patch_size, case.classes.shape, strict=True)]
    if not any(after for _, after in padding):
        return case
    return TrainingCase(
        np.pad(case.channels, [(0, 0), *padding], constant_values=config.normalization.background),
        np.pad(case.classes, padding, constant_values=0),
        np.pad(case.foreground, padding, constant_values=False),
        case.tumour,  # padding is added after the last voxel of each axis, so indices stay valid
    )


def _sample_patch(
    case: TrainingCase, config: SegmentationTrainingConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    patch_size, channels, classes, tumour = config.network.patch_size, case.channels, case.classes, case.tumour
    if len(tumour) and rng.random() < _TUMOUR_CENTRED_FRACTION:
        centre = tumour[rng.integers(len(tumour))]
        start = [
            int(np.clip(c - size // 2, 0, side - size))
            for c, size, side in zip(centre, patch_size, classes.shape, strict=True)
        ]
    else:
        start = [int(rng.integers(side - size + 1)) for size, side in zip(patch_size, classes.shape, strict=True)]
    window = tuple(slice(begin, begin + size) for begin, size in zip(start, patch_size, strict=True))
    patch, target = channels[(slice(None), *window)], classes[window]
    for axis in range(3):
        if rng.random() < 0.5:
            patch, target = np.flip(patch, axis + 1), np.flip(target, axis)
    return np.ascontiguousarray(patch, dtype=np.float32), np.ascontiguousarray(target)


def _fingerprint(cases: list[CaseFiles], sequences: tuple[Sequence, ...]) -> str:
    description = [
        [case.case_id, seq.value, case.sequences[seq].name, case.sequences[seq].stat().st_size]
        for case in cases
        for seq in sequences
    ]
    return hashlib.sha256(json.dumps(description).encode()).hexdigest()
