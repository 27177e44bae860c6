"""The ResNet image-to-image generator's parts (Johnson et al. 2016, as in CycleGAN): pGAN and ResViT share them.

Both papers build on the same encoder (a 7x7 convolution and two stride-2 convolutions), residual
blocks at a quarter of the resolution, and the mirrored decoder (two stride-2 transposed
convolutions and a 7x7 convolution to the target). Reflection padding keeps the borders of
crops free of the zero-padding seams a CNN would otherwise learn.
"""

from __future__ import annotations

from torch import Tensor, nn

from cones.model.hypernetwork import NormLayer

__all__ = ["DOWNSAMPLING", "ResidualBlock", "resnet_decoder", "resnet_encoder"]

DOWNSAMPLING = 4
"""The encoder's two stride-2 convolutions: the residual blocks run at 1/4 of the resolution."""


def resnet_encoder(in_channels: int, base_channels: int, norm_layer: NormLayer) -> nn.Sequential:
    """c7s1-b, d2b, d4b: ``(B, N_s, H, W)`` -> ``(B, 4 b, H / 4, W / 4)``."""
    layers: list[nn.Module] = [
        nn.ReflectionPad2d(3),
        nn.Conv2d(in_channels, base_channels, kernel_size=7),
        norm_layer(base_channels),
        nn.ReLU(),
    ]
    for factor in (1, 2):
        channels = base_channels * factor
        layers += [nn.Conv2d(channels, 2 * channels, kernel_size=3, stride=2, padding=1), norm_layer(2 * channels)]
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def resnet_decoder(base_channels: int, out_channels: int, norm_layer: NormLayer) -> nn.Sequential:
    """u2b, ub, c7s1-N_t with tanh: ``(B, 4 b, H / 4, W / 4)`` -> ``(B, N_t, H, W)`` in [-1, 1]."""
    layers: list[nn.Module] = []
    for factor in (4, 2):
        channels = base_channels * factor
        layers += [
            nn.ConvTranspose2d(channels, channels // 2, kernel_size=3, stride=2, padding=1, output_padding=1),
            norm_layer(channels // 2),
            nn.ReLU(),
        ]
    layers += [nn.ReflectionPad2d(3), nn.Conv2d(base_channels, out_channels, kernel_size=7), nn.Tanh()]
    return nn.Sequential(*layers)


class ResidualBlock(nn.Module):
    """Two reflection-padded 3x3 convolutions with norms and a ReLU between, added to the input."""

    def __init__(self, channels: int, norm_layer: NormLayer) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, kernel_size=3),
            norm_layer(channels),
            nn.ReLU(),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, kernel_size=3),
            norm_layer(channels),
        )

    def forward(self, features: Tensor) -> Tensor:
        return features + self.body(features)
