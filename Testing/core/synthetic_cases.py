"""Tiny multi-sequence cases generated in the tests, so the core suite needs no data files.

Each case is an ellipsoidal "brain" with a few tissue classes whose contrast differs per sequence,
and an enhancing blob that only T1ce shows, written in BraTS 2018-2021 or 2023 naming.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence as SequenceOf
from pathlib import Path

import numpy as np
import SimpleITK as sitk

BRATS_2018 = {"t1": "_t1", "t1ce": "_t1ce", "t2": "_t2", "flair": "_flair", "seg": "_seg"}
BRATS_2023 = {"t1": "-t1n", "t1ce": "-t1c", "t2": "-t2w", "flair": "-t2f", "seg": "-seg"}

# intensity of (background, white matter, grey matter, CSF, lesion) per sequence
CONTRASTS = {
    "t1": (0, 800, 600, 200, 500),
    "t1ce": (0, 800, 600, 200, 1100),
    "t2": (0, 300, 450, 900, 700),
    "flair": (0, 400, 550, 100, 900),
}

_COS, _SIN = float(np.cos(np.radians(10))), float(np.sin(np.radians(10)))
# a 10 degree in-plane rotation with a mirrored third axis: orthonormal, determinant -1
OBLIQUE_LEFT_HANDED = (_COS, -_SIN, 0.0, _SIN, _COS, 0.0, 0.0, 0.0, -1.0)


def tissue_labels(shape: tuple[int, int, int], seed: int) -> np.ndarray:
    """(z, y, x) labels: 0 background, 1 white matter, 2 grey matter, 3 CSF, 4 lesion.

    The first and last slices stay empty, like the slices above and below a skull-stripped brain.
    """
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(*(np.linspace(-1, 1, n) for n in shape), indexing="ij")
    radius = np.sqrt((z / 0.75) ** 2 + (y / 0.9) ** 2 + (x / 0.8) ** 2)
    labels = np.zeros(shape, dtype=np.uint8)
    labels[radius < 1.0] = 2
    labels[radius < 0.75] = 1
    labels[(np.abs(x) < 0.12) & (np.abs(y) < 0.35) & (radius < 0.7)] = 3
    centre = rng.uniform(-0.35, 0.35, size=3)
    lesion = np.sqrt((z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2) < rng.uniform(0.2, 0.3)
    labels[lesion & (radius < 0.9)] = 4
    labels[0], labels[-1] = 0, 0
    return labels


def case_images(
    shape: tuple[int, int, int] = (12, 40, 36),
    seed: int = 0,
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.5),
    direction: tuple[float, ...] = (1, 0, 0, 0, 1, 0, 0, 0, 1),
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> dict[str, sitk.Image]:
    """SimpleITK images of one case (keys: t1, t1ce, t2, flair, seg) on one grid."""
    labels = tissue_labels(shape, seed)
    rng = np.random.default_rng(seed + 1000)
    images = {}
    for name, values in CONTRASTS.items():
        volume = np.asarray(values, dtype=np.float32)[labels]
        volume = np.where(labels > 0, volume * rng.uniform(0.9, 1.1) + rng.normal(0, 15, shape), 0.0)
        images[name] = sitk.GetImageFromArray(volume.astype(np.float32))
    images["seg"] = sitk.GetImageFromArray((labels == 4).astype(np.uint8) * 4)
    for image in images.values():
        image.SetSpacing(spacing)
        image.SetDirection(direction)
        image.SetOrigin(origin)
    return images


def write_case(root: Path, case_id: str, naming: dict[str, str] = BRATS_2018, **kwargs: object) -> Path:
    """Write one case folder and return it."""
    folder = root / case_id
    folder.mkdir(parents=True, exist_ok=True)
    for name, image in case_images(**kwargs).items():
        sitk.WriteImage(image, str(folder / f"{case_id}{naming[name]}.nii.gz"))
    return folder


def write_dataset(root: Path, cases: int = 3, **kwargs: object) -> Path:
    """A dataset folder of ``cases`` cases named CASE-000, CASE-001 ..."""
    for index in range(cases):
        write_case(root, f"CASE-{index:03d}", seed=index, **kwargs)
    return root


def synthesize_arguments(
    model: Path, inputs: SequenceOf[str] | Mapping[str, Path], output: Path | str, *extra: str
) -> list[str]:
    """``cones synthesize`` arguments on the CPU; ``inputs`` as ``name=path`` pairs or a mapping of names to paths."""
    pairs = [f"{name}={path}" for name, path in inputs.items()] if isinstance(inputs, Mapping) else list(inputs)
    return ["synthesize", "--model", str(model), "--input", *pairs, "--output", str(output), "--device", "cpu", *extra]


def train_arguments(data: Path, output: Path, iterations: int, batch_size: int = 2) -> list[str]:
    """``cones train`` arguments for a quick lite run on 32 x 32 crops of a generated dataset."""
    return [
        "train", "--data", str(data), "--sources", "t1", "t2", "flair", "--target", "t1ce", "--preset", "lite",
        "--iterations", str(iterations), "--batch-size", str(batch_size), "--crop-size", "32", "32",
        "--device", "cpu", "--output", str(output),
    ]  # fmt: skip
