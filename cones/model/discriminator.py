"""Conditional multi-scale PatchGAN discriminator."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from cones.config import DiscriminatorConfig

__all__ = ["PatchDiscriminator", "SingleScalePatchDiscriminator"]


class SingleScalePatchDiscriminator(nn.Module):
    """PatchGAN of 4x4 convolutions that scores overlapping patches of a (source, target) pair.

    As in pix2pix, the score map has ~1/8 of the input resolution, so the discriminator judges
    texture at the scale of patches and leaves global fidelity to the L1 term. Spectral norm on
    every convolution but the last keeps the hinge objective Lipschitz; instance norm on the middle
    layers follows the reference code. Padding 2 (as in pix2pixHD) keeps small crops valid.

    Args:
        config: channels, strides and slope; ``config.in_channels`` counts sources + targets.
    """

    def __init__(self, config: DiscriminatorConfig) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        in_channels = config.in_channels
        last = len(config.channels) - 1
        for index, (channels, stride) in enumerate(zip(config.channels, config.strides, strict=True)):
            conv = nn.Conv2d(in_channels, channels, kernel_size=4, stride=stride, padding=2)
            if index == last:
                blocks.append(conv)
                break
            layers: list[nn.Module] = [spectral_norm(conv)]
            if index > 0:
                layers.append(nn.InstanceNorm2d(channels))
            layers.append(nn.LeakyReLU(config.negative_slope, inplace=True))
            blocks.append(nn.Sequential(*layers))
            in_channels = channels
        self.blocks = nn.ModuleList(blocks)

    def forward(self, pair: Tensor) -> list[Tensor]:
        """Return every block's output; the last is the ``(B, 1, h, w)`` patch score map."""
        features = []
        x = pair
        for block in self.blocks:
            x = block(x)
            features.append(x)
        return features


class PatchDiscriminator(nn.Module):
    """Several PatchGANs applied to the pair at resolutions 1, 1/2, 1/4 ... (reference: two scales).

    The coarser scale sees larger structures with the same receptive field, which the feature
    matching loss then compares between real and synthesized images.

    Args:
        config: see :class:`~cones.config.DiscriminatorConfig`.

    Shapes:
        sources ``(B, N_s, H, W)`` and target ``(B, N_t, H, W)`` -> one list of features per scale.
    """

    def __init__(self, config: DiscriminatorConfig) -> None:
        super().__init__()
        self.config = config
        self.scales = nn.ModuleList(SingleScalePatchDiscriminator(config) for _ in range(config.num_scales))

    def forward(self, sources: Tensor, target: Tensor) -> list[list[Tensor]]:
        pair = torch.cat([sources, target], dim=1)
        if pair.shape[1] != self.config.in_channels:
            raise ValueError(f"sources + target must have {self.config.in_channels} channels, got {pair.shape[1]}")
        outputs = []
        for index, scale in enumerate(self.scales):
            if index > 0:
                pair = F.avg_pool2d(pair, kernel_size=3, stride=2, padding=1, count_include_pad=False)
            outputs.append(scale(pair))
        return outputs
