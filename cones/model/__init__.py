"""Generators (CoNeS and the baselines pix2pix and ASAP-Net-style), the discriminator, and their presets."""

from __future__ import annotations

from cones.model.architecture import Architecture, parse_architecture
from cones.model.baselines import ASAPNetConfig, ASAPNetGenerator, Pix2PixConfig, Pix2PixGenerator
from cones.model.discriminator import PatchDiscriminator, SingleScalePatchDiscriminator
from cones.model.encoding import PositionalEncoding
from cones.model.generator import CoNeSGenerator, GeneratorOutput, initialize_weights
from cones.model.hypernetwork import Bottleneck, Hypernetwork
from cones.model.mlp import ShiftModulatedMLP
from cones.model.presets import (
    AnyGeneratorConfig,
    Preset,
    build_discriminator,
    build_generator,
    discriminator_config,
    generator_class,
    generator_config,
    generator_config_class,
)

__all__ = [
    "ASAPNetConfig",
    "ASAPNetGenerator",
    "AnyGeneratorConfig",
    "Architecture",
    "Bottleneck",
    "CoNeSGenerator",
    "GeneratorOutput",
    "Hypernetwork",
    "PatchDiscriminator",
    "Pix2PixConfig",
    "Pix2PixGenerator",
    "PositionalEncoding",
    "Preset",
    "ShiftModulatedMLP",
    "SingleScalePatchDiscriminator",
    "build_discriminator",
    "build_generator",
    "discriminator_config",
    "generator_class",
    "generator_config",
    "generator_config_class",
    "initialize_weights",
    "parse_architecture",
]
