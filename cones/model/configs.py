"""Which config class describes the generators of each architecture, without importing torch.

A model card stores its generator's config; reading a card needs these classes but not the networks.
Keeping the mapping apart from :mod:`cones.model.presets` (which builds networks) lets Slicer's GUI
process read a model file's card with no torch imported (see :mod:`cones.checkpoint.torch_free`).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from cones.config import GeneratorConfig, JsonConfig
from cones.model.architecture import Architecture, parse_architecture
from cones.model.baselines.config import ASAPNetConfig, PGANConfig, Pix2PixConfig, ResViTConfig

__all__ = ["GENERATOR_CONFIG_CLASSES", "AnyGeneratorConfig", "generator_config_class"]

AnyGeneratorConfig = GeneratorConfig | Pix2PixConfig | ASAPNetConfig | PGANConfig | ResViTConfig
"""The config of a generator of any :class:`~cones.model.Architecture`."""

GENERATOR_CONFIG_CLASSES: Mapping[Architecture, type[JsonConfig]] = MappingProxyType(
    {
        Architecture.CONES: GeneratorConfig,
        Architecture.PIX2PIX: Pix2PixConfig,
        Architecture.ASAPNET: ASAPNetConfig,
        Architecture.PGAN: PGANConfig,
        Architecture.RESVIT: ResViTConfig,
    }
)


def generator_config_class(arch: Architecture | str) -> type[JsonConfig]:
    """The config class that describes generators of ``arch`` (what a model card stores).

    Raises:
        ValueError: ``arch`` is not a known architecture.
    """
    return GENERATOR_CONFIG_CLASSES[parse_architecture(arch)]
