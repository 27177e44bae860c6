"""The CoNeS generator: hypernetwork + shift-modulated neural field."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from cones.config import GeneratorConfig
from cones.model.encoding import PositionalEncoding
from cones.model.hypernetwork import Hypernetwork
from cones.model.mlp import ShiftModulatedMLP
from cones.model.pixels import foreground_pixels, gather_pixels, sample_bilinear

__all__ = ["CoNeSGenerator", "GeneratorOutput", "initialize_normal", "initialize_weights"]


class GeneratorOutput(NamedTuple):
    """What one forward pass yields: the image, and the latent code the regulariser needs."""

    image: Tensor
    """``(B, N_t, H, W)`` in [-1, 1]."""
    latent: Tensor
    """``(B, latent_channels, H, W)``: z(x), the per-pixel shifts."""


def initialize_weights(module: nn.Module, gain: float) -> None:
    """Xavier-normal convolution weights with a small ``gain`` and zero biases, as in the reference code.

    The small gain starts the MLP close to a constant field, so early training is driven by the
    shifts and the source intensities rather than by random high-frequency structure.
    """
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            nn.init.xavier_normal_(layer.weight, gain=gain)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


def initialize_normal(module: nn.Module, std: float) -> None:
    """Normal(0, std) convolution weights and zero biases: the initialisation of pix2pix and the CNNs built on it."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.normal_(layer.weight, std=std)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


class CoNeSGenerator(nn.Module):
    """Conditional neural field with shift modulation (paper eq. 10).

    ``t_x = Phi(gamma(x), s_x; H_x(I_s))``: the MLP reads the positional encoding of each pixel
    and the source intensities there, and every layer is shifted by the latent code that the
    hypernetwork computed for that pixel.

    Args:
        config: the architecture; see :class:`~cones.config.GeneratorConfig`.

    Example:
        >>> from cones.model import build_generator
        >>> generator = build_generator("lite", in_channels=3, out_channels=1)
        >>> generator(torch.zeros(2, 3, 64, 48)).image.shape
        torch.Size([2, 1, 64, 48])
    """

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        self.config = config
        self.encoding = PositionalEncoding(config.frequency_parameter, config.coordinate_extent)
        self.mlp = ShiftModulatedMLP(
            in_features=self.encoding.out_channels + config.in_channels,
            width=config.mlp_width,
            hidden_layers=config.mlp_hidden_layers,
            out_features=config.out_channels,
            negative_slope=config.negative_slope,
        )
        self.hypernetwork = Hypernetwork(
            in_channels=config.in_channels,
            latent_channels=self.mlp.shift_channels,
            stem_channels=config.stem_channels,
            stem_stride=config.stem_stride,
            stage_blocks=config.stage_blocks,
            stage_widths=config.stage_widths,
            expansion=config.expansion,
            fpn_channels=config.fpn_channels,
        )
        initialize_weights(self, config.init_gain)

    def forward(self, sources: Tensor, offsets: Tensor | None = None) -> GeneratorOutput:
        """Synthesize the targets of a batch of source slices or crops.

        Args:
            sources: ``(B, N_s, H, W)`` normalized source intensities.
            offsets: ``(B, 2)`` (row, column) of each crop's top-left pixel in its whole slice;
                ``None`` for whole slices.
        """
        if sources.ndim != 4 or sources.shape[1] != self.config.in_channels:
            raise ValueError(
                f"sources must have shape (B, {self.config.in_channels}, H, W), got {tuple(sources.shape)}"
            )
        batch, _, height, width = sources.shape
        if offsets is None:
            offsets = torch.zeros(batch, 2, dtype=torch.long, device=sources.device)
        elif offsets.shape != (batch, 2):
            raise ValueError(f"offsets must have shape ({batch}, 2), got {tuple(offsets.shape)}")
        latent = self.hypernetwork(sources)
        encoding = self.encoding(height, width, offsets, device=sources.device, dtype=sources.dtype)
        image = self.mlp(torch.cat([encoding, sources], dim=1), latent)
        return GeneratorOutput(image=image, latent=latent)

    def forward_foreground(self, sources: Tensor, foreground: Tensor) -> Tensor:
        """:meth:`forward`'s image at the ``foreground`` pixels only, -1 (the normalized background) elsewhere.

        The hypernetwork is a CNN and sees the whole slices (its instance norms and receptive fields
        span them); the neural field, its encoding and the upsampling of the latent code are per
        pixel, so they run on the foreground pixels alone, which on a BraTS slice is half or less
        of the work. Synthesis uses it; training, which needs the latent code for its regulariser,
        uses :meth:`forward`.

        Args:
            sources: ``(B, N_s, H, W)`` normalized source intensities of whole slices.
            foreground: ``(B, H, W)`` boolean, the pixels to synthesize.

        Returns:
            ``(B, N_t, H, W)``.
        """
        batch, _, height, width = sources.shape
        if foreground.shape != (batch, height, width):
            raise ValueError(f"foreground must have shape {(batch, height, width)}, got {tuple(foreground.shape)}")
        indices, real = foreground_pixels(foreground)
        shifts = sample_bilinear(self.hypernetwork.native_latent(sources), indices, (height, width))
        encoding = self.encoding.at_pixels(indices // width, indices % width, dtype=sources.dtype)
        values = self.mlp(torch.cat([encoding, gather_pixels(sources, indices)], dim=1), shifts).squeeze(2)
        image = sources.new_full((batch, self.config.out_channels, height * width), -1.0)
        values = torch.where(real[:, None, :], values.to(image.dtype), -1.0)
        image.scatter_(2, indices[:, None, :].expand_as(values), values)
        return image.view(batch, self.config.out_channels, height, width)
