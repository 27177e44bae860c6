"""The hypernetwork H: an FPN that maps the source images to a per-pixel latent code z(x)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["Bottleneck", "Hypernetwork", "NormLayer", "instance_norm"]

NormLayer = Callable[[int], nn.Module]

instance_norm: NormLayer = partial(nn.InstanceNorm2d, affine=True)
"""Instance norm with learned affine parameters: per-slice statistics, as the paper's hypernetwork uses."""


def conv1x1(in_channels: int, out_channels: int, stride: int = 1, bias: bool = False) -> nn.Conv2d:
    """1x1 convolution: a per-pixel linear map."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=bias)


def conv3x3(in_channels: int, out_channels: int, stride: int = 1, bias: bool = False) -> nn.Conv2d:
    """3x3 convolution with padding 1, so stride 1 keeps the size and stride 2 gives ceil(size / 2)."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=bias)


class Bottleneck(nn.Module):
    """ResNet bottleneck block (1x1 -> 3x3 -> 1x1, ``expansion`` x wider output) with a projection shortcut.

    Args:
        in_channels: input channels.
        width: channels of the inner 3x3 convolution.
        stride: stride of the 3x3 convolution (2 halves the resolution).
        expansion: output channels are ``width * expansion``.
        norm_layer: normalisation factory; convolutions feeding a norm carry no bias.
    """

    def __init__(
        self, in_channels: int, width: int, stride: int, expansion: int, norm_layer: NormLayer = instance_norm
    ) -> None:
        super().__init__()
        out_channels = width * expansion
        self.conv1 = conv1x1(in_channels, width)
        self.norm1 = norm_layer(width)
        self.conv2 = conv3x3(width, width, stride)
        self.norm2 = norm_layer(width)
        self.conv3 = conv1x1(width, out_channels)
        self.norm3 = norm_layer(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(conv1x1(in_channels, out_channels, stride), norm_layer(out_channels))

    def forward(self, x: Tensor) -> Tensor:
        identity = self.shortcut(x)
        out = self.relu(self.norm1(self.conv1(x)))
        out = self.relu(self.norm2(self.conv2(out)))
        out = self.norm3(self.conv3(out))
        return self.relu(out + identity)


class Hypernetwork(nn.Module):
    """Feature pyramid network producing one latent code per input pixel (paper section 3.3.1).

    The bottom-up pathway is a ResNet of bottleneck stages (paper: [2, 4, 23, 3] blocks, strides
    1, 2, 2, 2 after a stride-1 7x7 stem). The top-down pathway follows the paper's description:
    every level is merged with the upsampled coarser level through a 1x1 lateral, then smoothed by
    a 3x3 convolution before it is upsampled again. A 1x1 head maps the finest level to the latent
    size. Upsampling goes to each lateral's *exact* size, so any H x W works without padding to a
    multiple of 32; with a strided stem (``lite``) the code is upsampled back to the input size.

    Args:
        in_channels: number of source images.
        latent_channels: size of z(x), the total number of MLP shifts.
        stem_channels: channels of the 7x7 stem.
        stem_stride: stride of the stem (1 in the paper).
        stage_blocks: bottleneck blocks per stage (four stages).
        stage_widths: inner width of each stage's bottlenecks.
        expansion: bottleneck expansion.
        fpn_channels: channels of the top-down pathway.
        norm_layer: normalisation factory (instance norm by default).

    Shapes:
        ``(B, in_channels, H, W) -> (B, latent_channels, H, W)``.
    """

    stage_strides = (1, 2, 2, 2)

    def __init__(
        self,
        in_channels: int,
        latent_channels: int,
        stem_channels: int = 64,
        stem_stride: int = 1,
        stage_blocks: tuple[int, ...] = (2, 4, 23, 3),
        stage_widths: tuple[int, ...] = (64, 128, 256, 512),
        expansion: int = 4,
        fpn_channels: int = 256,
        norm_layer: NormLayer = instance_norm,
    ) -> None:
        super().__init__()
        if len(stage_blocks) != len(self.stage_strides) or len(stage_widths) != len(self.stage_strides):
            raise ValueError(
                f"stage_blocks and stage_widths need {len(self.stage_strides)} entries, "
                f"got {stage_blocks!r} and {stage_widths!r}"
            )
        self.stem_stride = stem_stride
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, stem_channels, kernel_size=7, stride=stem_stride, padding=3, bias=False),
            norm_layer(stem_channels),
            nn.ReLU(inplace=True),
        )
        stages: list[nn.Module] = []
        channels = stem_channels
        for blocks, width, stride in zip(stage_blocks, stage_widths, self.stage_strides, strict=True):
            stages.append(self._make_stage(channels, width, blocks, stride, expansion, norm_layer))
            channels = width * expansion
        self.stages = nn.ModuleList(stages)
        self.laterals = nn.ModuleList(conv1x1(width * expansion, fpn_channels, bias=True) for width in stage_widths)
        self.smoothing = nn.ModuleList(conv3x3(fpn_channels, fpn_channels, bias=True) for _ in stage_widths[:-1])
        self.head = conv1x1(fpn_channels, latent_channels, bias=True)

    @staticmethod
    def _make_stage(
        in_channels: int, width: int, blocks: int, stride: int, expansion: int, norm_layer: NormLayer
    ) -> nn.Sequential:
        layers = [Bottleneck(in_channels, width, stride, expansion, norm_layer)]
        layers += [Bottleneck(width * expansion, width, 1, expansion, norm_layer) for _ in range(blocks - 1)]
        return nn.Sequential(*layers)

    @property
    def min_input_size(self) -> int:
        """Smallest H or W: instance norm needs more than one pixel at the coarsest level."""
        return 2 * self.stem_stride * 2 ** (len(self.stage_strides) - 1)

    def forward(self, sources: Tensor) -> Tensor:
        size = sources.shape[-2:]
        latent = self.native_latent(sources)
        if latent.shape[-2:] != size:
            latent = F.interpolate(latent, size=size, mode="bilinear", align_corners=False)
        return latent

    def native_latent(self, sources: Tensor) -> Tensor:
        """The latent code at the resolution the network computes it: the input's, divided by the stem's stride.

        :meth:`forward` upsamples it to every input pixel. Synthesis, which needs the code only at the
        brain's pixels, samples it there instead (:func:`sample_bilinear`): with the ``lite`` preset's
        257 channels, upsampling the whole slice costs as much as the rest of the hypernetwork.
        """
        size = sources.shape[-2:]
        if min(size) < self.min_input_size:
            raise ValueError(f"input must be at least {self.min_input_size} pixels per side, got {tuple(size)}")
        features = []
        x = self.stem(sources)
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        merged = self.laterals[-1](features[-1])
        for level in reversed(range(len(features) - 1)):
            lateral = self.laterals[level](features[level])
            upsampled = F.interpolate(merged, size=lateral.shape[-2:], mode="bilinear", align_corners=False)
            merged = self.smoothing[level](lateral + upsampled)
        return self.head(merged)
