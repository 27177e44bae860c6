"""The generator families a model file can hold."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Architecture", "parse_architecture"]


class Architecture(StrEnum):
    """The network family whose weights a model file holds; it decides which class rebuilds them.

    ``cones``: the paper's conditional neural field with shift modulation.
    ``pix2pix``: the U-Net generator of Isola et al. (2017), the paper's CNN baseline.
    ``asapnet``: spatially-adaptive pixelwise networks in the style of Shaham et al. (2021), the
    paper's neural-field baseline (per-patch MLPs predicted at low resolution).
    ``pgan``: the ResNet generator of Dar et al. (2019) with pixel and perceptual losses.
    ``resvit``: the residual CNN with transformer bottleneck of Dalmaz et al. (2022).
    """

    CONES = "cones"
    PIX2PIX = "pix2pix"
    ASAPNET = "asapnet"
    PGAN = "pgan"
    RESVIT = "resvit"


def parse_architecture(name: Architecture | str) -> Architecture:
    """The :class:`Architecture` called ``name``.

    Raises:
        ValueError: ``name`` is not a known architecture; the message lists the known ones.
    """
    try:
        return Architecture(name)
    except ValueError:
        known = [member.value for member in Architecture]
        raise ValueError(f"unknown architecture {name!r}; known: {known}") from None
