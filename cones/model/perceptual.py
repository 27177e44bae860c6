"""A fixed feature network for pGAN's perceptual loss, built from a seed instead of downloaded weights.

pGAN compares the synthesized and the real target through the feature maps of VGG16 trained on
ImageNet. Those weights cannot be fetched here (no internet at run time, and none ship with torch),
and a feature network trained here, on the same few cases, would make the baseline depend on a
second model of this project's making. So the features come from VGG16's first three blocks with
*random* weights, drawn from a fixed seed: randomly weighted deep CNNs already make effective
perceptual losses, since their stacked local filters respond to the structure and texture a pixel
loss averages away (Liu et al., "Generic Perceptual Loss for Modeling Structured Output
Dependencies", CVPR 2021). The network is frozen and rebuilt identically from the preset whenever a
run starts or resumes, so nothing of it is stored.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["PERCEPTUAL_SEED", "PerceptualFeatures", "perceptual_loss"]

PERCEPTUAL_SEED = 2019
"""Seed of the fixed random weights (pGAN's year): the same network in every run and on every machine."""

VGG16_CONVOLUTIONS = (2, 2, 3)
"""3x3 convolutions in each of VGG16's first three blocks (up to ``relu3_3``)."""


class PerceptualFeatures(nn.Module):
    """VGG16's first blocks (3x3 convolutions with ReLU, 2x2 max-pooling between blocks), frozen.

    Args:
        in_channels: target sequences N_t (the images compared).
        widths: channels of each block (VGG16: 64, 128, 256).
        seed: seed of the Kaiming-normal weights; biases are zero.

    Shapes:
        ``(B, in_channels, H, W)`` -> one ``(B, widths[i], H / 2^i, W / 2^i)`` map per block.
    """

    def __init__(self, in_channels: int, widths: Sequence[int] = (64, 128, 256), seed: int = PERCEPTUAL_SEED) -> None:
        super().__init__()
        if len(widths) != len(VGG16_CONVOLUTIONS) or min(widths) < 1:
            raise ValueError(f"PerceptualFeatures needs {len(VGG16_CONVOLUTIONS)} positive widths, got {widths!r}")
        draw = torch.Generator().manual_seed(seed)
        blocks = []
        channels = in_channels
        for width, convolutions in zip(widths, VGG16_CONVOLUTIONS, strict=True):
            layers: list[nn.Module] = []
            for _ in range(convolutions):
                # skip_init: the default initialisation would draw from the global generator and shift
                # the crops and noise of the run that builds this network.
                conv = nn.utils.skip_init(nn.Conv2d, channels, width, kernel_size=3, padding=1)
                with torch.no_grad():
                    conv.weight.normal_(0.0, math.sqrt(2.0 / (channels * 9)), generator=draw)
                    conv.bias.zero_()
                layers += [conv, nn.ReLU()]
                channels = width
            blocks.append(nn.Sequential(*layers))
        self.blocks = nn.ModuleList(blocks)
        self.requires_grad_(False)
        self.eval()

    def forward(self, images: Tensor) -> list[Tensor]:
        features = []
        for index, block in enumerate(self.blocks):
            images = block(images if index == 0 else F.max_pool2d(images, 2))
            features.append(images)
        return features


def perceptual_loss(network: PerceptualFeatures, fake: Tensor, real: Tensor) -> Tensor:
    """Mean over the blocks of the L1 distance between the features of ``fake`` and of ``real``.

    The real image's features are computed without gradient: the term trains the generator only.
    """
    with torch.no_grad():
        real_features = network(real)
    terms = [F.l1_loss(f, r) for f, r in zip(network(fake), real_features, strict=True)]
    return torch.stack(terms).mean()
