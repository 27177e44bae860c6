"""Small generated cases and tiny random-init models, for the modules' self-tests and the pytest suite.

Both run the full path (MRML -> files -> process -> MRML) in seconds on a CPU, without any download:
a case is a few tissue ellipsoids whose contrast differs per sequence, on an oblique, left-handed
grid by default (the geometry that breaks naive RAS/LPS or flip handling), and the model is the
smallest generator the architecture allows.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import slicer.util
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLScene

from cones.sequences import Sequence
from CoNeSSynthesisLib import volumes

__all__ = [
    "CASE_SHAPE",
    "OBLIQUE_LEFT_HANDED_IJK_TO_RAS",
    "addSyntheticCase",
    "syntheticCaseImages",
    "writeSyntheticDataset",
    "writeTinyModel",
    "writeTinySegmentationModel",
]

CASE_SHAPE = (10, 36, 32)
"""(slices, rows, columns): a few foreground slices of a size the tiny model runs in milliseconds."""

_ANGLE = np.radians(20.0)
OBLIQUE_LEFT_HANDED_IJK_TO_RAS = np.array(
    [
        [1.1 * np.cos(_ANGLE), -0.9 * np.sin(_ANGLE), 0.0, -17.5],
        [1.1 * np.sin(_ANGLE), 0.9 * np.cos(_ANGLE), 0.0, 12.25],
        [0.0, 0.0, -2.5, 30.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
)
"""A 20 degree in-plane rotation, anisotropic spacing and a mirrored slice axis (determinant < 0)."""

# intensity of (background, white matter, grey matter, lesion) per sequence; only T1ce lights the lesion up
_CONTRASTS = {
    Sequence.T1: (0.0, 800.0, 600.0, 500.0),
    Sequence.T1CE: (0.0, 800.0, 600.0, 1200.0),
    Sequence.T2: (0.0, 300.0, 450.0, 700.0),
    Sequence.FLAIR: (0.0, 400.0, 550.0, 900.0),
}


def _labels(shape: tuple[int, int, int], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(*(np.linspace(-1.0, 1.0, n) for n in shape), indexing="ij")
    radius = np.sqrt((z / 0.8) ** 2 + (y / 0.85) ** 2 + (x / 0.75) ** 2)
    centre = rng.uniform(-0.3, 0.3, size=3)
    lesion = np.sqrt((z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2) < 0.25
    labels = np.zeros(shape, dtype=np.uint8)
    labels[radius < 1.0] = 2
    labels[radius < 0.7] = 1
    labels[lesion & (radius < 0.9)] = 3
    labels[0], labels[-1] = 0, 0
    return labels


def _caseArrays(shape: tuple[int, int, int], seed: int) -> dict[Sequence, np.ndarray]:
    labels = _labels(shape, seed)
    rng = np.random.default_rng(seed + 1)
    return {
        sequence: np.where(
            labels > 0, np.asarray(contrast, dtype=np.float32)[labels] + rng.normal(0.0, 20.0, shape), 0.0
        ).astype(np.float32)
        for sequence, contrast in _CONTRASTS.items()
    }


def addSyntheticCase(
    scene: vtkMRMLScene,
    caseName: str,
    shape: tuple[int, int, int] = CASE_SHAPE,
    ijkToRas: np.ndarray = OBLIQUE_LEFT_HANDED_IJK_TO_RAS,
    seed: int = 0,
) -> dict[Sequence, vtkMRMLScalarVolumeNode]:
    """Add one case's four sequences to ``scene`` as volumes named ``<caseName>_<sequence>``."""
    nodes = {}
    for sequence, array in _caseArrays(shape, seed).items():
        node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", f"{caseName}_{sequence.value}")
        node.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(ijkToRas))
        slicer.util.updateVolumeFromArray(node, array)
        node.CreateDefaultDisplayNodes()
        nodes[sequence] = node
    return nodes


def syntheticCaseImages(
    shape: tuple[int, int, int] = CASE_SHAPE, ijkToRas: np.ndarray = OBLIQUE_LEFT_HANDED_IJK_TO_RAS, seed: int = 0
) -> dict[Sequence, sitk.Image]:
    """One case's four sequences as SimpleITK images (the geometry of :func:`addSyntheticCase`'s volumes)."""
    scene = vtkMRMLScene()
    return {
        sequence: volumes.imageFromVolume(node)
        for sequence, node in addSyntheticCase(scene, "case", shape, ijkToRas, seed).items()
    }


def writeSyntheticDataset(folder: Path, cases: int, shape: tuple[int, int, int] = CASE_SHAPE) -> Path:
    """Write ``cases`` cases in BraTS 2018 naming (``CASE-000/CASE-000_t1.nii.gz`` ...) for a training run."""
    for index in range(cases):
        caseId = f"CASE-{index:03d}"
        (folder / caseId).mkdir(parents=True, exist_ok=True)
        for sequence, image in syntheticCaseImages(shape, seed=index).items():
            sitk.WriteImage(image, str(folder / caseId / f"{caseId}_{sequence.value}.nii.gz"))
    return folder


def writeTinyModel(
    path: Path, sources: Iterable[Sequence] = (Sequence.T1, Sequence.T2, Sequence.FLAIR), seed: int = 0
) -> Path:
    """Save a random-init generator of a few thousand weights that synthesizes T1ce from ``sources``.

    A larger initial gain than training uses keeps the untrained output from being flat, so a test
    can tell a synthesized volume from an empty one. Imports torch, so call it after the dependency
    step.
    """
    import torch

    from cones.checkpoint import ModelCard, make_provenance, save_model
    from cones.config import GeneratorConfig, NormalizationConfig
    from cones.model import CoNeSGenerator

    sources = tuple(sources)
    config = GeneratorConfig(
        in_channels=len(sources),
        out_channels=1,
        stem_channels=8,
        stage_blocks=(1, 1, 1, 1),
        stage_widths=(4, 4, 8, 8),
        fpn_channels=8,
        mlp_width=8,
        coordinate_extent=(64, 64),
        init_gain=1.0,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        generator = CoNeSGenerator(config)
    card = ModelCard(
        architecture="cones",
        preset=None,
        generator=config,
        sources=sources,
        targets=(Sequence.T1CE,),
        normalization=NormalizationConfig(),
        provenance=make_provenance(0, "random-init test model"),
    )
    return save_model(path, generator, card, overwrite=True)


def writeTinySegmentationModel(path: Path, seed: int = 0) -> Path:
    """Save a random-init built-in segmentation model (a two-level MONAI U-Net) that needs all four sequences.

    Its label map is arbitrary but deterministic, which is all a test of the plumbing needs: the
    same images give the same map in the ``cones`` process and in the test. Imports torch and MONAI,
    so call it after the dependency step.
    """
    import torch

    from cones.checkpoint import make_provenance
    from cones.segmentation.base import InputNormalization
    from cones.segmentation.builtin import SegmentationCard, UNetConfig, build_unet, save_segmentation_model
    from cones.segmentation.labels import BRATS_2018_LABELS

    network = UNetConfig(channels=(4, 8), strides=(2,), num_res_units=1, patch_size=(8, 16, 16))
    sequences = (Sequence.T1, Sequence.T1CE, Sequence.T2, Sequence.FLAIR)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = build_unet(network, len(sequences), len(BRATS_2018_LABELS.values))
    card = SegmentationCard(
        sequences=sequences,
        label_names=BRATS_2018_LABELS.names,
        label_values=BRATS_2018_LABELS.values,
        network=network,
        normalization=InputNormalization(),
        training_means=(0.0,) * len(sequences),
        provenance=make_provenance(0, "random-init test model"),
    )
    return save_segmentation_model(path, unet, card, overwrite=True)
