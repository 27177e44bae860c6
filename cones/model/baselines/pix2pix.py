"""The pix2pix generator: a U-Net with skip connections (Isola et al., CVPR 2017), the paper's CNN baseline."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from cones.model.baselines.config import Pix2PixConfig
from cones.model.baselines.padding import checked_offsets, crop_to, pad_to_multiple
from cones.model.generator import GeneratorOutput, initialize_normal
from cones.model.hypernetwork import NormLayer, instance_norm

__all__ = ["Pix2PixGenerator"]

_DROPOUT_BLOCKS = 3
"""pix2pix applies dropout in the three decoder blocks after the bottleneck."""


def _down(in_channels: int, out_channels: int, norm_layer: NormLayer | None, first: bool) -> nn.Sequential:
    """LeakyReLU(0.2) -> 4x4 stride-2 convolution -> norm; the first block has neither activation nor norm."""
    layers: list[nn.Module] = [] if first else [nn.LeakyReLU(0.2)]
    layers.append(nn.Conv2d(in_channels, out_channels, kernel_size=4, stride=2, padding=1, bias=norm_layer is None))
    if norm_layer is not None:
        layers.append(norm_layer(out_channels))
    return nn.Sequential(*layers)


def _up(in_channels: int, out_channels: int, norm_layer: NormLayer | None, dropout: float) -> nn.Sequential:
    """ReLU -> 4x4 stride-2 transposed convolution -> norm -> dropout; the last block ends in tanh instead."""
    layers: list[nn.Module] = [nn.ReLU()]
    layers.append(
        nn.ConvTranspose2d(in_channels, out_channels, kernel_size=4, stride=2, padding=1, bias=norm_layer is None)
    )
    if norm_layer is None:
        layers.append(nn.Tanh())
        return nn.Sequential(*layers)
    layers.append(norm_layer(out_channels))
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class Pix2PixGenerator(nn.Module):
    """U-Net generator of pix2pix: ``depth`` 4x4 stride-2 convolutions down, as many transposed ones up.

    Every decoder block reads the previous block's output concatenated with the encoder features of
    the same resolution, so low-level structure passes straight to the output and the bottleneck
    only carries context. The upsampling path is made of transposed convolutions, which is why the
    paper uses it to show the spectral bias of CNN decoders. Differences from the original: instance
    norm instead of batch norm (batch-size independent, as in the rest of this package) and no norm
    at the bottleneck or the first layer, as in pix2pix; dropout acts in training only, so inference
    is deterministic. Inputs of any size are padded with background to a multiple of ``2 ** depth``.

    Args:
        config: see :class:`~cones.model.baselines.Pix2PixConfig`.
        norm_layer: normalisation factory of the inner blocks.

    Example:
        >>> generator = Pix2PixGenerator(Pix2PixConfig(base_channels=8, depth=4))
        >>> generator(torch.zeros(2, 3, 40, 36)).image.shape
        torch.Size([2, 1, 40, 36])
    """

    def __init__(self, config: Pix2PixConfig, norm_layer: NormLayer = instance_norm) -> None:
        super().__init__()
        self.config = config
        channels = config.encoder_channels
        last = config.depth - 1
        self.encoder = nn.ModuleList(
            _down(
                config.in_channels if level == 0 else channels[level - 1],
                channels[level],
                None if level in (0, last) else norm_layer,
                first=level == 0,
            )
            for level in range(config.depth)
        )
        decoder = [_up(channels[last], channels[last - 1], norm_layer, config.dropout)]
        for level in range(last - 1, 0, -1):
            dropout = config.dropout if len(decoder) < _DROPOUT_BLOCKS else 0.0
            decoder.append(_up(2 * channels[level], channels[level - 1], norm_layer, dropout))
        decoder.append(_up(2 * channels[0], config.out_channels, None, 0.0))
        self.decoder = nn.ModuleList(decoder)
        initialize_normal(self, config.init_std)

    def forward(self, sources: Tensor, offsets: Tensor | None = None) -> GeneratorOutput:
        """Translate a batch of source slices or crops.

        Args:
            sources: ``(B, N_s, H, W)`` normalized source intensities.
            offsets: checked, then ignored (a CNN has no notion of where a crop sits); accepted so that every
                generator is called alike.

        Returns:
            The ``(B, N_t, H, W)`` image in [-1, 1], and the bottleneck features as the latent code.
        """
        checked_offsets(sources, offsets, self.config.in_channels)
        height, width = sources.shape[-2:]
        features = pad_to_multiple(sources, 2**self.config.depth)
        skips = []
        for block in self.encoder:
            features = block(features)
            skips.append(features)
        latent = skips.pop()
        image = self.decoder[0](latent)
        for block, skip in zip(self.decoder[1:], reversed(skips), strict=True):
            image = block(torch.cat([image, skip], dim=1))
        return GeneratorOutput(image=crop_to(image, height, width), latent=latent)
