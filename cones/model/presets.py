"""Named model sizes and the factories that build them."""

from __future__ import annotations

from enum import StrEnum

from cones.config import DiscriminatorConfig, GeneratorConfig
from cones.model.discriminator import PatchDiscriminator
from cones.model.generator import CoNeSGenerator

__all__ = ["Preset", "build_discriminator", "build_generator", "discriminator_config", "generator_config"]


class Preset(StrEnum):
    """Model sizes.

    ``paper``: the configuration of Chen et al. (2024), a ResNet-101-like FPN at full resolution
    (45.3 M parameters with 3 sources and 1 target; meant for GPUs).
    ``lite``: the same family (FPN hypernetwork + shift-modulated MLP at full resolution) sized
    for a 2-core CPU: a stride-2 stem, one or two narrow blocks per stage and a 64-channel
    top-down pathway. The neural field itself is unchanged, so fine detail still comes from the
    full-resolution MLP; only the latent code is computed at half resolution and upsampled.
    """

    PAPER = "paper"
    LITE = "lite"


_GENERATOR_PRESETS: dict[Preset, dict[str, object]] = {
    Preset.PAPER: {},
    Preset.LITE: {
        "stem_channels": 32,
        "stem_stride": 2,
        "stage_blocks": (1, 1, 2, 1),
        "stage_widths": (16, 32, 64, 128),
        "fpn_channels": 64,
    },
}

_DISCRIMINATOR_PRESETS: dict[Preset, dict[str, object]] = {
    Preset.PAPER: {},
    Preset.LITE: {"channels": (32, 64, 128, 256, 1)},
}


def _parse_preset(preset: Preset | str) -> Preset:
    try:
        return Preset(preset)
    except ValueError:
        raise ValueError(f"unknown preset {preset!r}; choose one of {[p.value for p in Preset]}") from None


def generator_config(preset: Preset | str, in_channels: int, out_channels: int) -> GeneratorConfig:
    """The :class:`GeneratorConfig` of ``preset`` for ``in_channels`` sources and ``out_channels`` targets."""
    return GeneratorConfig(
        in_channels=in_channels, out_channels=out_channels, **_GENERATOR_PRESETS[_parse_preset(preset)]
    )


def discriminator_config(preset: Preset | str, in_channels: int, out_channels: int) -> DiscriminatorConfig:
    """The :class:`DiscriminatorConfig` of ``preset``; it judges sources and targets together."""
    return DiscriminatorConfig(in_channels=in_channels + out_channels, **_DISCRIMINATOR_PRESETS[_parse_preset(preset)])


def build_generator(preset: Preset | str, in_channels: int, out_channels: int) -> CoNeSGenerator:
    """Build a freshly initialised generator of the given preset.

    Example:
        >>> sum(p.numel() for p in build_generator("paper", 3, 1).parameters())
        45264706
    """
    return CoNeSGenerator(generator_config(preset, in_channels, out_channels))


def build_discriminator(preset: Preset | str, in_channels: int, out_channels: int) -> PatchDiscriminator:
    """Build the conditional discriminator that matches a generator of ``preset``."""
    return PatchDiscriminator(discriminator_config(preset, in_channels, out_channels))
