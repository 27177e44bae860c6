"""Named model sizes of every architecture, and the factories that build them."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType

from torch import nn

from cones.config import DiscriminatorConfig
from cones.model.architecture import Architecture, parse_architecture
from cones.model.baselines import ASAPNetGenerator, PGANGenerator, Pix2PixGenerator, ResViTGenerator
from cones.model.configs import GENERATOR_CONFIG_CLASSES, AnyGeneratorConfig
from cones.model.discriminator import PatchDiscriminator
from cones.model.generator import CoNeSGenerator
from cones.model.perceptual import PerceptualFeatures

__all__ = [
    "Preset",
    "build_discriminator",
    "build_generator",
    "build_perceptual_network",
    "discriminator_config",
    "generator_class",
    "generator_config",
]


class Preset(StrEnum):
    """Model sizes.

    ``paper``: the configuration of Chen et al. (2024), a ResNet-101-like FPN at full resolution
    (45.3 M parameters with 3 sources and 1 target; meant for GPUs). For the baselines: the
    original pix2pix ``unet_256`` and an ASAP-Net of the original's proportions.
    ``lite``: the same family (FPN hypernetwork + shift-modulated MLP at full resolution) sized
    for a 2-core CPU: a stride-2 stem, one or two narrow blocks per stage and a 64-channel
    top-down pathway. The neural field itself is unchanged, so fine detail still comes from the
    full-resolution MLP; only the latent code is computed at half resolution and upsampled. The
    baselines' ``lite`` configs have about as many parameters (~0.8 M with 3 sources and 1 target),
    so that a comparison at this size compares architectures, not capacities.
    """

    PAPER = "paper"
    LITE = "lite"


_GENERATOR_CLASSES: Mapping[Architecture, type[nn.Module]] = MappingProxyType(
    {
        Architecture.CONES: CoNeSGenerator,
        Architecture.PIX2PIX: Pix2PixGenerator,
        Architecture.ASAPNET: ASAPNetGenerator,
        Architecture.PGAN: PGANGenerator,
        Architecture.RESVIT: ResViTGenerator,
    }
)

_GENERATOR_PRESETS: Mapping[tuple[Architecture, Preset], dict[str, object]] = MappingProxyType(
    {
        (Architecture.CONES, Preset.PAPER): {},
        (Architecture.CONES, Preset.LITE): {
            "stem_channels": 32,
            "stem_stride": 2,
            "stage_blocks": (1, 1, 2, 1),
            "stage_widths": (16, 32, 64, 128),
            "fpn_channels": 64,
        },
        (Architecture.PIX2PIX, Preset.PAPER): {},
        # Six levels reach the receptive field of a 160 x 128 crop; dropout would only slow the
        # short CPU runs this preset is for.
        (Architecture.PIX2PIX, Preset.LITE): {"base_channels": 16, "depth": 6, "max_channels": 80, "dropout": 0.0},
        (Architecture.ASAPNET, Preset.PAPER): {},
        (Architecture.ASAPNET, Preset.LITE): {
            "patch_size": 8,
            "base_channels": 32,
            "depth": 3,
            "max_channels": 128,
            "mlp_width": 32,
            "mlp_hidden_layers": 3,
        },
        (Architecture.PGAN, Preset.PAPER): {},
        (Architecture.PGAN, Preset.LITE): {"base_channels": 16, "residual_blocks": 9},
        (Architecture.RESVIT, Preset.PAPER): {},
        # ViT-B's proportions shrunk to the lite budget (a 96-wide, 4-head, 2-layer transformer) and
        # 48 bottleneck channels, so that its parameters match the other lite generators'.
        (Architecture.RESVIT, Preset.LITE): {
            "base_channels": 12,
            "transformer_width": 96,
            "transformer_layers": 2,
            "transformer_heads": 4,
            "transformer_mlp": 192,
        },
    }
)

_DISCRIMINATOR_PRESETS: Mapping[Preset, dict[str, object]] = MappingProxyType(
    {Preset.PAPER: {}, Preset.LITE: {"channels": (32, 64, 128, 256, 1)}}
)


_PERCEPTUAL_WIDTHS: Mapping[Preset, tuple[int, int, int]] = MappingProxyType(
    {Preset.PAPER: (64, 128, 256), Preset.LITE: (16, 32, 64)}
)
"""Channels of the perceptual network's blocks: VGG16's for the paper preset, a quarter for the lite one."""


def _parse_preset(preset: Preset | str) -> Preset:
    try:
        return Preset(preset)
    except ValueError:
        raise ValueError(f"unknown preset {preset!r}; choose one of {[p.value for p in Preset]}") from None


def generator_class(arch: Architecture | str) -> type[nn.Module]:
    """The generator class of ``arch``; it is built from one config argument."""
    return _GENERATOR_CLASSES[parse_architecture(arch)]


def generator_config(
    preset: Preset | str, in_channels: int, out_channels: int, arch: Architecture | str = Architecture.CONES
) -> AnyGeneratorConfig:
    """The generator config of ``arch`` at ``preset`` for ``in_channels`` sources and ``out_channels`` targets."""
    arch = parse_architecture(arch)
    changes = _GENERATOR_PRESETS[arch, _parse_preset(preset)]
    return GENERATOR_CONFIG_CLASSES[arch](in_channels=in_channels, out_channels=out_channels, **changes)


def discriminator_config(preset: Preset | str, in_channels: int, out_channels: int) -> DiscriminatorConfig:
    """The :class:`DiscriminatorConfig` of ``preset``; it judges sources and targets together.

    Every architecture of a preset shares it, so a comparison between them changes the generator only.
    """
    return DiscriminatorConfig(in_channels=in_channels + out_channels, **_DISCRIMINATOR_PRESETS[_parse_preset(preset)])


def build_generator(
    preset: Preset | str, in_channels: int, out_channels: int, arch: Architecture | str = Architecture.CONES
) -> nn.Module:
    """Build a freshly initialised generator of the given architecture and preset.

    Example:
        >>> sum(p.numel() for p in build_generator("paper", 3, 1).parameters())
        45264706
    """
    return generator_class(arch)(generator_config(preset, in_channels, out_channels, arch))


def build_perceptual_network(preset: Preset | str, out_channels: int) -> PerceptualFeatures:
    """The frozen feature network of the perceptual loss for ``preset`` (identical in every run)."""
    return PerceptualFeatures(out_channels, _PERCEPTUAL_WIDTHS[_parse_preset(preset)])


def build_discriminator(preset: Preset | str, in_channels: int, out_channels: int) -> PatchDiscriminator:
    """Build the conditional discriminator that matches a generator of ``preset``."""
    return PatchDiscriminator(discriminator_config(preset, in_channels, out_channels))
