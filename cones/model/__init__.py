"""CoNeS networks: positional encoding, hypernetwork, shift-modulated MLP, generator, discriminator."""

from __future__ import annotations

from cones.model.discriminator import PatchDiscriminator, SingleScalePatchDiscriminator
from cones.model.encoding import PositionalEncoding
from cones.model.generator import CoNeSGenerator, GeneratorOutput, initialize_weights
from cones.model.hypernetwork import Bottleneck, Hypernetwork
from cones.model.mlp import ShiftModulatedMLP
from cones.model.presets import (
    Preset,
    build_discriminator,
    build_generator,
    discriminator_config,
    generator_config,
)

__all__ = [
    "Bottleneck",
    "CoNeSGenerator",
    "GeneratorOutput",
    "Hypernetwork",
    "PatchDiscriminator",
    "PositionalEncoding",
    "Preset",
    "ShiftModulatedMLP",
    "SingleScalePatchDiscriminator",
    "build_discriminator",
    "build_generator",
    "discriminator_config",
    "generator_config",
    "initialize_weights",
]
