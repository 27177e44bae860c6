"""nnU-Net v2 trained-model folders as a segmentation backend (optional extra ``nnunetv2``).

A trained nnU-Net folder (``.../nnUNetTrainer__nnUNetPlans__3d_fullres`` with ``dataset.json``,
``plans.json`` and ``fold_*/checkpoint_final.pth``) normalises and resamples by itself, so it gets
raw intensities, through nnU-Net's own predictor. It also gets voxels in the order its training
images were read in: as stored for ``SimpleITKIO`` and ``NibabelIO`` (the defaults), reoriented
to RAS for the ``...WithReorient`` readers (``plans.json`` names the reader). Its ``dataset.json`` names
the input channels ("T1", "t1c", "FLAIR", ...), which are
mapped to our sequences through the alias table of :mod:`cones.sequences`, and its labels, which are
mapped to the BraTS names. BraTS models are usually trained on regions
(``"labels": {"background": 0, "whole tumor": [1, 2, 3], "tumor core": [2, 3], "enhancing tumor": [3]}``
with ``regions_class_order``); nnU-Net then writes ``regions_class_order[i]`` where region i is the
innermost region, so the WT value is oedema, the TC value necrosis and the ET value enhancing tumour.

nnU-Net reads its checkpoints with a full pickle: only use folders from a source you trust.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cones.segmentation.base import STORED_ORIENTATION, InputNormalization, NormalizationMethod, SegmentationModel
from cones.segmentation.labels import LabelSet
from cones.sequences import Sequence, parse_sequence

# torch is imported where a model is loaded: Slicer's GUI process reads dataset.json through this module.
if TYPE_CHECKING:
    import torch

__all__ = [
    "NnUNetSegmentation",
    "is_nnunet_folder",
    "load_nnunet_segmentation",
    "read_nnunet_dataset",
    "read_nnunet_orientation",
]

_LOG = logging.getLogger(__name__)
_CHECKPOINT = "checkpoint_final.pth"
# How nnU-Net's image readers order voxels: SimpleITK's array order as stored (NibabelIO transposes
# to match it), or nibabel's closest canonical orientation, RAS.
_READER_ORIENTATIONS = {
    "SimpleITKIO": STORED_ORIENTATION,
    "NibabelIO": STORED_ORIENTATION,
    "NibabelIOWithReorient": "RAS",
    "SimpleITKIOWithReorient": "RAS",
}
_TISSUE_NAMES = {
    "NCR": ("ncr", "necrosis", "necrotic", "net", "netc", "ncrnet", "nonenhancingtumor", "necrotictumorcore"),
    "ED": ("ed", "edema", "oedema", "peritumoraledema", "snfh"),
    "ET": ("et", "enhancing", "enhancingtumor", "enhancingtumour"),
}
# In a region-based model, the value written for a region is the tissue that is in it and in no
# region nested inside it.
_REGION_TISSUE = {
    "ED": ("wt", "wholetumor", "wholetumour"),
    "NCR": ("tc", "tumorcore", "tumourcore"),
    "ET": ("et", "enhancingtumor", "enhancingtumour"),
}


def _key(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def is_nnunet_folder(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a folder with nnU-Net's ``dataset.json`` and ``plans.json``."""
    path = Path(path)
    return path.is_dir() and (path / "dataset.json").is_file() and (path / "plans.json").is_file()


def read_nnunet_dataset(folder: str | os.PathLike[str]) -> tuple[tuple[Sequence, ...], LabelSet]:
    """The input sequences (in channel order) and BraTS labels a trained nnU-Net folder describes.

    Raises:
        ValueError: ``dataset.json`` is missing or invalid, a channel name is no known sequence, or
            the labels cannot be mapped to NCR, ED and ET.
    """
    location = Path(folder) / "dataset.json"
    try:
        dataset = json.loads(location.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot read nnU-Net dataset description {str(location)!r}: {error}") from None
    channels = dataset.get("channel_names") or dataset.get("modality")
    if not isinstance(channels, dict) or not channels:
        raise ValueError(f"{str(location)!r} has no channel_names")
    try:
        sequences = tuple(parse_sequence(channels[key]) for key in sorted(channels, key=int))
    except ValueError as error:
        raise ValueError(f"{str(location)!r}: a channel is no MRI sequence CoNeS knows ({error})") from None
    labels = dataset.get("labels")
    if not isinstance(labels, dict):
        raise ValueError(f"{str(location)!r} has no labels")
    return sequences, _brats_labels(labels, dataset.get("regions_class_order"), location)


def read_nnunet_orientation(folder: str | os.PathLike[str]) -> str:
    """The voxel orientation the folder's network was trained in, from the reader ``plans.json`` names.

    Raises:
        ValueError: ``plans.json`` is missing or invalid, or names a reader for other than 3D volumes.
    """
    location = Path(folder) / "plans.json"
    try:
        plans = json.loads(location.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot read nnU-Net plans {str(location)!r}: {error}") from None
    reader = plans.get("image_reader_writer", "SimpleITKIO") if isinstance(plans, dict) else None
    if reader not in _READER_ORIENTATIONS:
        raise ValueError(
            f"{str(location)!r}: image_reader_writer {reader!r} is not one of {sorted(_READER_ORIENTATIONS)}, "
            "the readers of 3D MRI volumes"
        )
    return _READER_ORIENTATIONS[reader]


def _brats_labels(labels: Mapping[str, Any], regions_class_order: Any, location: Path) -> LabelSet:
    region_based = any(isinstance(value, list) for value in labels.values())
    table = _REGION_TISSUE if region_based else _TISSUE_NAMES
    foreground = [(name, value) for name, value in labels.items() if _key(name) != "background"]
    if region_based:
        if not isinstance(regions_class_order, list) or len(regions_class_order) != len(foreground):
            raise ValueError(f"{str(location)!r}: region-based labels need a matching regions_class_order")
        foreground = [(name, value) for (name, _), value in zip(foreground, regions_class_order, strict=True)]
    values = {}
    for tissue, aliases in table.items():
        match = [int(value) for name, value in foreground if _key(name) in aliases]
        if len(match) != 1:
            known = [name for name, _ in foreground]
            raise ValueError(f"{str(location)!r}: cannot tell which of the labels {known} is {tissue}")
        values[tissue] = match[0]
    return LabelSet(("background", "NCR", "ED", "ET"), (0, values["NCR"], values["ED"], values["ET"]))


class NnUNetSegmentation(SegmentationModel):
    """A trained nnU-Net v2 folder, run by nnU-Net's own predictor on raw intensities."""

    def __init__(
        self,
        predictor: Any,
        sequences: tuple[Sequence, ...],
        labels: LabelSet,
        source: Path,
        orientation: str = STORED_ORIENTATION,
    ) -> None:
        # Raw inputs: nnU-Net normalises per its plans; an empty scan (zero imputation) stays 0.
        # No training means are recorded in nnU-Net folders, so mean imputation is refused.
        normalization = InputNormalization(method=NormalizationMethod.NONE)
        super().__init__(sequences, labels, normalization, None, source, orientation)
        self.predictor = predictor

    def _predict(self, channels: np.ndarray, spacing: tuple[float, ...]) -> np.ndarray:
        with _quiet():
            labels = self.predictor.predict_single_npy_array(channels, {"spacing": list(spacing)}, None, None, False)
        return np.asarray(labels).astype(np.uint8)


@contextlib.contextmanager
def _quiet() -> Any:
    """Send nnU-Net's prints to the log: the CLI's stdout carries only its own protocol lines."""
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        yield
    for line in printed.getvalue().splitlines():
        _LOG.debug("nnU-Net: %s", line)


def load_nnunet_segmentation(
    folder: str | os.PathLike[str], device: str | torch.device = "cpu", folds: tuple[int, ...] | None = None
) -> NnUNetSegmentation:
    """Load a trained nnU-Net v2 model folder.

    Args:
        folder: the trainer folder holding ``dataset.json``, ``plans.json`` and ``fold_*``.
        device: where nnU-Net predicts.
        folds: folds to ensemble; default: every ``fold_*`` with a ``checkpoint_final.pth``.

    Raises:
        ValueError: the folder is no trained nnU-Net folder, has no trained fold, or its dataset
            description cannot be mapped (see :func:`read_nnunet_dataset`).
        ImportError: nnunetv2 is not installed (``pip install cones[nnunet]``).
    """
    folder = Path(folder)
    if not is_nnunet_folder(folder):
        raise ValueError(f"{str(folder)!r} is not a trained nnU-Net folder (no dataset.json and plans.json)")
    sequences, labels = read_nnunet_dataset(folder)
    orientation = read_nnunet_orientation(folder)
    if folds is None:
        folds = tuple(sorted(int(path.parent.name.split("_")[1]) for path in folder.glob(f"fold_[0-9]*/{_CHECKPOINT}")))
    if not folds:
        raise ValueError(f"{str(folder)!r} has no fold_*/{_CHECKPOINT}")
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    from cones.device import resolve_device

    device = resolve_device(device)
    with _quiet():
        predictor = nnUNetPredictor(
            device=device, perform_everything_on_device=device.type == "cuda", verbose=False, allow_tqdm=False
        )
        predictor.initialize_from_trained_model_folder(str(folder), use_folds=folds, checkpoint_name=_CHECKPOINT)
    return NnUNetSegmentation(predictor, sequences, labels, folder, orientation)
