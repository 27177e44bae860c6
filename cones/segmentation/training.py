"""Training the built-in segmentation network (``cones train-seg``).

A small patch-based 3D U-Net, trained the way nnU-Net trains BraTS models, only much shorter:
random patches, half of them centred on tumour so the rare enhancing voxels are seen often enough,
random flips, and Dice + cross-entropy on the classes background, NCR, ED and ET. Reference label
maps in either BraTS convention (ET = 4 or 3) are accepted, case by case. The result is a
self-describing model file (:mod:`cones.segmentation.builtin`) that also records the mean
normalised intensity of each sequence, which the downstream experiment uses for mean imputation.

Every case is held in memory cropped to its foreground (as nnU-Net crops to the non-zero region):
a skull-stripped BraTS brain fills about 40 % of its 240 x 240 x 155 grid, and patches drawn from
empty air teach nothing. A run can span sessions on a CPU: every ``checkpoint_interval`` steps the
run folder gets ``last.pt`` and ``training_state.pt`` (network, optimizer, step, the settings and
the data), and the patches of step ``i`` are drawn from a generator seeded with ``(seed, i)``, so
``--resume`` continues exactly where a stopped run left off.
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
from typing import Any, NamedTuple

import numpy as np
import torch
from monai.losses import DiceCELoss

from cones.checkpoint import CheckpointError, make_provenance
from cones.checkpoint.reading import _unpickle
from cones.checkpoint.writing import _write_atomically
from cones.data.discovery import CaseFiles, find_cases, require_sequences
from cones.data.geometry import check_same_grid, to_canonical
from cones.data.io import image_to_array, read_image
from cones.device import resolve_device
from cones.outputs import forget_log_entries_after
from cones.segmentation.base import InputNormalization, foreground_window
from cones.segmentation.builtin import (
    SegmentationCard,
    UNetConfig,
    build_unet,
    load_builtin_segmentation,
    save_segmentation_model,
)
from cones.segmentation.labels import BRATS_2018_LABELS, LabelSet, detect_labels
from cones.sequences import Sequence, parse_sequences

__all__ = [
    "TRAINING_STATE_NAME",
    "SegmentationTrainingConfig",
    "TrainingCase",
    "load_training_case",
    "train_segmentation",
]

_LOG = logging.getLogger(__name__)
_TUMOUR_CENTRED_FRACTION = 0.5
LAST_NAME = "last.pt"
TRAINING_STATE_NAME = "training_state.pt"
"""What ``--resume`` continues from; ``last.pt`` alone is the model (the file to ship holds no optimizer)."""
_STATE_KEYS = frozenset(
    {
        "iteration",
        "seconds",
        "settings",
        "data_fingerprint",
        "earlier_data_fingerprints",
        "data_description",
        "network_state",
        "optimizer_state",
    }
)

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
        checkpoint_interval: steps between checkpoints (the last step is always saved).
    """

    iterations: int = 2000
    batch_size: int = 2
    learning_rate: float = 1e-3
    network: UNetConfig = field(default_factory=UNetConfig)
    normalization: InputNormalization = field(default_factory=InputNormalization)
    output_labels: LabelSet = BRATS_2018_LABELS
    seed: int = 0
    checkpoint_interval: int = 100

    def __post_init__(self) -> None:
        for name in ("iterations", "batch_size", "checkpoint_interval"):
            if type(getattr(self, name)) is not int or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive int, got {getattr(self, name)!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate!r}")

    def settings(self, sequences: tuple[Sequence, ...]) -> dict[str, object]:
        """What a resumed run must share with the run it continues: all but the step counts."""
        return {
            "sequences": [sequence.value for sequence in sequences],
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "network": self.network.to_dict(),
            "normalization": self.normalization.to_dict(),
            "output_labels": [list(self.output_labels.names), list(self.output_labels.values)],
            "seed": self.seed,
        }


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
    resume: bool = False,
    initial_model: str | os.PathLike[str] | None = None,
) -> Path:
    """Train the built-in network on every labelled case of a dataset folder and write ``OUTPUT/last.pt``.

    Args:
        data: a folder of case folders (BraTS naming) with a ``seg`` label map per case.
        sequences: the input sequences, in channel order.
        output: the run folder; ``last.pt``, ``training_state.pt`` and ``log.jsonl`` (one line per
            step: iteration, seconds since training started, loss) are written into it.
        config: iterations, patch size, network; defaults when None. A resumed run takes only
            ``iterations`` (the total, not the steps still to go) and ``checkpoint_interval`` from it.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        command: the command line, recorded in the model file.
        data_description: which data, with its attribution, recorded in the model file (a resumed
            run keeps its own when None).
        progress: called after every step.
        resume: continue the run in ``output`` from its ``training_state.pt``.
        initial_model: start the network from this segmentation model file (fine-tuning; the
            optimizer starts afresh). Its network, sequences, normalization and labels must be this run's.

    Returns:
        The path of the written model file.

    Raises:
        ValueError: no case, a case lacks a sequence or label map, a volume is unusable, or a resume
            whose settings or data differ from the run's, or that has nothing left to do.
        FileExistsError: ``output`` already holds a run and ``resume`` is false.
        CheckpointError: ``initial_model`` or the run's training state is refused.
    """
    config = config or SegmentationTrainingConfig()
    sequences = parse_sequences(tuple(sequences))
    output = Path(output)
    last, state_path = output / LAST_NAME, output / TRAINING_STATE_NAME
    if resume and initial_model is not None:
        raise ValueError("a resumed run continues from its own training state; do not give an initial model as well")
    if not resume and (last.exists() or state_path.exists()):
        raise FileExistsError(f"{last} already exists; resume the run (--resume) or choose another --output")
    cases = require_sequences(find_cases(data), sequences)
    fingerprint = _fingerprint(cases, sequences)
    saved = _resumable_state(output, config, sequences, fingerprint) if resume else None
    initial = _initial_network_state(Path(initial_model), config, sequences) if initial_model is not None else None
    loaded = [_prepared(load_training_case(case, sequences, config.normalization), config) for case in cases]
    means = tuple(
        float(np.mean([case.channels[index][case.foreground].mean() for case in loaded]))
        for index in range(len(sequences))
    )
    device = resolve_device(device)
    with torch.random.fork_rng(devices=[]):  # MONAI initialises from the global RNG; leave the caller's untouched
        torch.manual_seed(config.seed)
        network = build_unet(config.network, len(sequences), len(config.output_labels.values))
    done, seconds_before = 0, 0.0
    earlier_fingerprints: tuple[str, ...] = ()
    if saved is not None:
        network.load_state_dict(saved["network_state"])
        done, seconds_before = int(saved["iteration"]), float(saved["seconds"])
        earlier_fingerprints = tuple(saved["earlier_data_fingerprints"])
        data_description = data_description if data_description is not None else saved["data_description"]
    elif initial is not None:
        network.load_state_dict(initial[0])
        earlier_fingerprints = initial[1]
    network.to(device)
    optimizer = torch.optim.Adam(network.parameters(), lr=config.learning_rate, weight_decay=1e-5)
    if saved is not None:
        optimizer.load_state_dict(saved["optimizer_state"])
    loss_function = DiceCELoss(to_onehot_y=True, softmax=True)
    output.mkdir(parents=True, exist_ok=True)
    log_path = output / "log.jsonl"
    forget_log_entries_after(log_path, done)

    def save(iteration: int, seconds: float) -> Path:
        state = {
            "iteration": iteration,
            "seconds": seconds,
            "settings": json.dumps(config.settings(sequences), sort_keys=True),
            "data_fingerprint": fingerprint,
            "earlier_data_fingerprints": list(earlier_fingerprints),
            "data_description": data_description,
            "network_state": {name: tensor.detach().cpu() for name, tensor in network.state_dict().items()},
            "optimizer_state": optimizer.state_dict(),
        }
        _write_atomically(state_path, state, overwrite=True)
        card = SegmentationCard(
            sequences=sequences,
            label_names=config.output_labels.names,
            label_values=config.output_labels.values,
            network=config.network,
            normalization=config.normalization,
            training_means=means,
            provenance=make_provenance(iteration, fingerprint, command, data_description, earlier_fingerprints),
        )
        return save_segmentation_model(last, network, card, overwrite=True)

    network.train()
    start = time.perf_counter() - seconds_before
    with log_path.open("a", encoding="utf-8") as log:
        for iteration in range(done + 1, config.iterations + 1):
            rng = np.random.default_rng((config.seed, iteration))
            patches = [_sample_patch(loaded[rng.integers(len(loaded))], config, rng) for _ in range(config.batch_size)]
            inputs = torch.from_numpy(np.stack([patch for patch, _ in patches])).to(device)
            targets = torch.from_numpy(np.stack([target[None] for _, target in patches])).to(device).long()
            optimizer.zero_grad(set_to_none=True)
            loss = loss_function(network(inputs), targets)
            loss.backward()
            optimizer.step()
            seconds = round(time.perf_counter() - start, 3)
            log.write(json.dumps({"iteration": iteration, "seconds": seconds, "loss": round(loss.item(), 6)}) + "\n")
            log.flush()
            if iteration % config.checkpoint_interval == 0 or iteration == config.iterations:
                save(iteration, seconds)
            if progress is not None:
                progress(iteration, config.iterations, loss.item())
    _LOG.info("trained on %d cases for %d steps; wrote %s", len(cases), config.iterations, last)
    return last


def _resumable_state(
    output: Path, config: SegmentationTrainingConfig, sequences: tuple[Sequence, ...], fingerprint: str
) -> dict[str, Any]:
    """The training state of the run in ``output``, refused unless this run may continue it.

    Raises:
        ValueError: no training state, settings or data that differ, or no steps left to train.
        CheckpointError: the state file is corrupt or holds code.
    """
    path = output / TRAINING_STATE_NAME
    if not path.is_file():
        raise ValueError(f"cannot resume {output}: it holds no {TRAINING_STATE_NAME} (no checkpoint was written)")
    state = _unpickle(path)
    if not isinstance(state, dict) or set(state) != _STATE_KEYS:
        raise CheckpointError(f"refusing to resume from {path}: it is not a train-seg training state")
    saved, requested = json.loads(state["settings"]), config.settings(sequences)
    requested = json.loads(json.dumps(requested, sort_keys=True))
    differing = [
        f"{key} {saved.get(key)!r} (now {value!r})" for key, value in requested.items() if saved.get(key) != value
    ]
    if differing:
        raise ValueError(f"cannot resume {output}: settings differ from the saved run: {'; '.join(differing)}")
    if state["data_fingerprint"] != fingerprint:
        raise ValueError(f"cannot resume {output}: the cases in --data are not the ones the run was trained on")
    if int(state["iteration"]) >= config.iterations:
        raise ValueError(
            f"cannot resume {output}: it has finished {state['iteration']} iterations, and --iterations "
            f"{config.iterations} asks for no more (--iterations is the total)"
        )
    return state


def _initial_network_state(
    path: Path, config: SegmentationTrainingConfig, sequences: tuple[Sequence, ...]
) -> tuple[dict[str, torch.Tensor], tuple[str, ...]]:
    """The weights of a segmentation model to fine-tune and the data it saw, refused unless it fits this run.

    Weights trained on another channel order, normalization or label set would load without error and
    silently mean something else.

    Raises:
        ValueError: the model's network, sequences, normalization or labels differ from this run's.
        CheckpointError: the file is refused.
    """
    model = load_builtin_segmentation(path)
    card = model.card
    wanted = {
        "network": (card.network, config.network),
        "sequences": (card.sequences, sequences),
        "normalization": (card.normalization, config.normalization),
        "labels": (card.labels, config.output_labels),
    }
    differing = [f"{key} {have!r} (run: {want!r})" for key, (have, want) in wanted.items() if have != want]
    if differing:
        raise ValueError(f"cannot start from {path}: it differs from this run in {'; '.join(differing)}")
    seen = (card.provenance.data_fingerprint, *card.provenance.earlier_data_fingerprints)
    return model.network.state_dict(), seen


def _prepared(case: TrainingCase, config: SegmentationTrainingConfig) -> TrainingCase:
    """The case cropped to its foreground's window (:func:`foreground_window`), padded if still under a patch."""
    foreground = case.foreground | (case.classes > 0)
    if not foreground.any():
        return _padded(case, config)
    window = foreground_window(foreground, config.network.patch_size)
    cropped = TrainingCase(
        np.ascontiguousarray(case.channels[(slice(None), *window)]),
        np.ascontiguousarray(case.classes[window]),
        np.ascontiguousarray(case.foreground[window]),
        case.tumour - np.array([part.start for part in window]),
    )
    return _padded(cropped, config)


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
