"""The smallest generator configuration the architecture allows, shared by the model, step and inference tests.

A few thousand parameters keep every forward pass in the milliseconds while exercising every
part of the real network (stem, four stages, FPN merges, shift-modulated MLP).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from cones.config import GeneratorConfig

TINY_GENERATOR = GeneratorConfig(
    stem_channels=8,
    stage_blocks=(1, 1, 1, 1),
    stage_widths=(4, 4, 8, 8),
    fpn_channels=8,
    mlp_width=8,
    coordinate_extent=(64, 64),
)


def write_tiny_model(path: Path, sources: tuple[str, ...] = ("t1", "t2", "flair"), target: str = "t1ce") -> Path:
    """Save a random-init model of :data:`TINY_GENERATOR` (tests of what wraps synthesis), T1 + T2 + FLAIR -> T1ce."""
    import torch

    from cones.checkpoint import ModelCard, make_provenance, save_model
    from cones.config import NormalizationConfig
    from cones.model import CoNeSGenerator
    from cones.sequences import Sequence

    config = replace(TINY_GENERATOR, in_channels=len(sources))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        generator = CoNeSGenerator(config)
    card = ModelCard(
        architecture="cones",
        preset=None,
        generator=config,
        sources=tuple(Sequence(source) for source in sources),
        targets=(Sequence(target),),
        normalization=NormalizationConfig(),
        provenance=make_provenance(0, "random-init test model"),
    )
    return save_model(path, generator, card)


def write_tiny_segmentation_model(path: Path, patch_size: tuple[int, int, int] = (16, 32, 32)) -> Path:
    """Save a random-init built-in segmentation model (the smallest U-Net): T1, T1ce, T2, FLAIR -> BraTS 2018 labels."""
    import torch

    from cones.checkpoint import make_provenance
    from cones.segmentation.base import InputNormalization
    from cones.segmentation.builtin import SegmentationCard, UNetConfig, build_unet, save_segmentation_model
    from cones.segmentation.labels import BRATS_2018_LABELS
    from cones.sequences import Sequence

    config = UNetConfig(channels=(4, 8), strides=(2,), num_res_units=1, patch_size=patch_size)
    sequences = (Sequence.T1, Sequence.T1CE, Sequence.T2, Sequence.FLAIR)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        network = build_unet(config, len(sequences), 4)
    card = SegmentationCard(
        sequences=sequences,
        label_names=BRATS_2018_LABELS.names,
        label_values=BRATS_2018_LABELS.values,
        network=config,
        normalization=InputNormalization(),
        training_means=(0.1, 0.2, 0.3, 0.4),
        provenance=make_provenance(0, "test"),
    )
    return save_segmentation_model(path, network, card)
