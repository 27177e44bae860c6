"""Generators (CoNeS; the baselines pix2pix, ASAP-Net-style, pGAN and ResViT), the discriminator, their presets."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Architecture": "architecture",
    "parse_architecture": "architecture",
    "ASAPNetConfig": "baselines",
    "ASAPNetGenerator": "baselines",
    "PGANConfig": "baselines",
    "PGANGenerator": "baselines",
    "Pix2PixConfig": "baselines",
    "Pix2PixGenerator": "baselines",
    "ResViTConfig": "baselines",
    "ResViTGenerator": "baselines",
    "AnyGeneratorConfig": "configs",
    "generator_config_class": "configs",
    "PatchDiscriminator": "discriminator",
    "SingleScalePatchDiscriminator": "discriminator",
    "PositionalEncoding": "encoding",
    "CoNeSGenerator": "generator",
    "GeneratorOutput": "generator",
    "initialize_weights": "generator",
    "Bottleneck": "hypernetwork",
    "Hypernetwork": "hypernetwork",
    "ShiftModulatedMLP": "mlp",
    "Preset": "presets",
    "build_discriminator": "presets",
    "build_generator": "presets",
    "build_perceptual_network": "presets",
    "discriminator_config": "presets",
    "generator_class": "presets",
    "generator_config": "presets",
}
"""Where each public name lives. They are imported on first use, so that reading a model card
(:mod:`cones.checkpoint.card` needs the architectures and their config classes) does not import torch,
as in Slicer's GUI process."""


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)


__all__ = [
    "ASAPNetConfig",
    "ASAPNetGenerator",
    "AnyGeneratorConfig",
    "Architecture",
    "Bottleneck",
    "CoNeSGenerator",
    "GeneratorOutput",
    "Hypernetwork",
    "PGANConfig",
    "PGANGenerator",
    "PatchDiscriminator",
    "Pix2PixConfig",
    "Pix2PixGenerator",
    "PositionalEncoding",
    "Preset",
    "ResViTConfig",
    "ResViTGenerator",
    "ShiftModulatedMLP",
    "SingleScalePatchDiscriminator",
    "build_discriminator",
    "build_generator",
    "build_perceptual_network",
    "discriminator_config",
    "generator_class",
    "generator_config",
    "generator_config_class",
    "initialize_weights",
    "parse_architecture",
]
