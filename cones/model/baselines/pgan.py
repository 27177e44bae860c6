"""The pGAN generator (Dar et al., IEEE TMI 2019): a ResNet image-to-image CNN trained with pixel and perceptual losses.

pGAN was the first conditional GAN for multi-contrast MRI synthesis and is one of the paper's CNN
baselines. Its generator is the ResNet of Johnson et al.: an encoder, residual blocks at a quarter
of the resolution, a decoder. What sets pGAN apart is its objective, an L1 term and a perceptual
term that compares feature maps of the synthesized and the real image (see
:func:`cones.training.config.default_loss_weights` and :mod:`cones.model.perceptual`).
"""

from __future__ import annotations

from torch import Tensor, nn

from cones.model.baselines.config import PGANConfig
from cones.model.baselines.padding import checked_offsets, crop_to, pad_to_multiple
from cones.model.baselines.resnet import (
    DOWNSAMPLING,
    ResidualBlock,
    resnet_decoder,
    resnet_encoder,
)
from cones.model.generator import GeneratorOutput, initialize_normal
from cones.model.hypernetwork import NormLayer, instance_norm

__all__ = ["PGANGenerator"]


class PGANGenerator(nn.Module):
    """ResNet generator of pGAN: encoder, ``residual_blocks`` residual blocks at 1/4 resolution, decoder.

    Differences from the original: instance norm instead of batch norm (batch-size independent, as
    in the rest of this package). Inputs of any size are padded with background to a multiple of 4.

    Args:
        config: see :class:`~cones.model.baselines.PGANConfig`.
        norm_layer: normalisation factory.

    Example:
        >>> generator = PGANGenerator(PGANConfig(base_channels=4, residual_blocks=2))
        >>> generator(torch.zeros(2, 3, 40, 36)).image.shape
        torch.Size([2, 1, 40, 36])
    """

    def __init__(self, config: PGANConfig, norm_layer: NormLayer = instance_norm) -> None:
        super().__init__()
        self.config = config
        bottleneck = DOWNSAMPLING * config.base_channels
        self.encoder = resnet_encoder(config.in_channels, config.base_channels, norm_layer)
        self.residual = nn.Sequential(*(ResidualBlock(bottleneck, norm_layer) for _ in range(config.residual_blocks)))
        self.decoder = resnet_decoder(config.base_channels, config.out_channels, norm_layer)
        initialize_normal(self, config.init_std)

    def forward(self, sources: Tensor, offsets: Tensor | None = None) -> GeneratorOutput:
        """Translate a batch of source slices or crops.

        Args:
            sources: ``(B, N_s, H, W)`` normalized source intensities.
            offsets: checked, then ignored (a CNN has no notion of where a crop sits); accepted so that every
                generator is called alike.

        Returns:
            The ``(B, N_t, H, W)`` image in [-1, 1], and the residual blocks' output as the latent code.
        """
        checked_offsets(sources, offsets, self.config.in_channels)
        height, width = sources.shape[-2:]
        latent = self.residual(self.encoder(pad_to_multiple(sources, DOWNSAMPLING)))
        return GeneratorOutput(image=crop_to(self.decoder(latent), height, width), latent=latent)
