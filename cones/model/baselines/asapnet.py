"""An ASAP-Net-style generator (Shaham et al., CVPR 2021): per-patch MLPs predicted at low resolution.

ASAP-Net is the paper's neural-field baseline. Where CoNeS shares one MLP between all pixels and
only shifts its neurons per pixel, ASAP-Net predicts *every* weight of a small MLP for each patch of
the image: a convolutional hypernetwork reads the sources at low resolution and outputs one full
parameter set per low-resolution pixel, and that MLP then maps each full-resolution pixel of its
patch (positional encoding and source intensities) to the target.
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cones.model.baselines.config import ASAPNetConfig
from cones.model.baselines.padding import checked_offsets, crop_to, pad_to_multiple
from cones.model.encoding import PositionalEncoding
from cones.model.generator import GeneratorOutput

__all__ = ["ASAPNetGenerator", "LowResolutionHypernetwork"]


def _conv_block(in_channels: int, out_channels: int, stride: int, negative_slope: float) -> nn.Sequential:
    """3x3 convolution and LeakyReLU. No normalisation: the coarsest levels of a training crop are
    one pixel wide, where instance norm is undefined."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1),
        nn.LeakyReLU(negative_slope),
    )


class LowResolutionHypernetwork(nn.Module):
    """U-Net-shaped CNN from downsampled sources to a parameter map, one MLP per low-resolution pixel.

    Args:
        config: see :class:`~cones.model.baselines.ASAPNetConfig`.

    Shapes:
        ``(B, N_s, h, w)`` -> ``(B, config.parameters_per_patch, h, w)``; any ``h x w`` works,
        since each decoder level is upsampled to its skip's exact size.
    """

    def __init__(self, config: ASAPNetConfig) -> None:
        super().__init__()
        slope = config.negative_slope
        widths = [min(config.base_channels * 2**level, config.max_channels) for level in range(config.depth + 1)]
        self.stem = _conv_block(config.in_channels, widths[0], 1, slope)
        self.encoder = nn.ModuleList(_conv_block(widths[i], widths[i + 1], 2, slope) for i in range(config.depth))
        self.decoder = nn.ModuleList(
            _conv_block(widths[i + 1] + widths[i], widths[i], 1, slope) for i in reversed(range(config.depth))
        )
        self.head = nn.Conv2d(widths[0], config.parameters_per_patch, kernel_size=1)
        for module in self.modules():
            if isinstance(module, nn.Conv2d) and module is not self.head:
                nn.init.kaiming_normal_(module.weight, a=slope, nonlinearity="leaky_relu")
                nn.init.zeros_(module.bias)
        # Every patch starts from one well-scaled MLP (the head's bias); the small head weights let
        # the hypernetwork learn per-patch departures instead of starting from random, tiny MLPs.
        nn.init.xavier_normal_(self.head.weight, gain=config.init_gain)
        with torch.no_grad():
            self.head.bias.copy_(_initial_mlp_parameters(config.mlp_sizes, slope))

    def forward(self, sources: Tensor) -> Tensor:
        features = self.stem(sources)
        skips = [features]
        for block in self.encoder:
            features = block(features)
            skips.append(features)
        skips.pop()
        for block in self.decoder:
            skip = skips.pop()
            upsampled = F.interpolate(features, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            features = block(torch.cat([upsampled, skip], dim=1))
        return self.head(features)


def _initial_mlp_parameters(sizes: tuple[int, ...], negative_slope: float) -> Tensor:
    """Flattened MLP parameters, layer by layer: weights stored ``(fan_in, fan_out)``, then biases.

    Hidden layers get Kaiming-uniform weights, so activations keep their scale through the
    LeakyReLUs; the output layer starts at zero, so the field starts constant (tanh(0) = 0) instead
    of saturated, like CoNeS with its small initial gain. Biases start at zero.
    """
    parts = []
    gain = math.sqrt(2.0 / (1.0 + negative_slope**2))
    last = len(sizes) - 2
    for index, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
        bound = 0.0 if index == last else gain * math.sqrt(3.0 / fan_in)
        parts.extend([torch.empty(fan_in * fan_out).uniform_(-bound, bound), torch.zeros(fan_out)])
    return torch.cat(parts)


class ASAPNetGenerator(nn.Module):
    """Spatially-adaptive pixelwise networks: the MLP of each ``patch_size``-square patch is predicted.

    The hypernetwork runs on sources average-pooled by ``patch_size``, so it costs about
    ``1 / patch_size^2`` of a full-resolution CNN; the MLPs then run at full resolution on the
    positional encoding (the same whole-slice frame as CoNeS) and the source intensities, so fine
    detail is produced by the pixelwise networks, not by upsampling layers. Inputs of any size are
    padded with background to a multiple of ``patch_size``.

    Args:
        config: see :class:`~cones.model.baselines.ASAPNetConfig`.

    Example:
        >>> generator = ASAPNetGenerator(ASAPNetConfig(patch_size=8, base_channels=8, depth=2, mlp_width=8))
        >>> generator(torch.zeros(2, 3, 40, 36)).image.shape
        torch.Size([2, 1, 40, 36])
    """

    def __init__(self, config: ASAPNetConfig) -> None:
        super().__init__()
        self.config = config
        self.encoding = PositionalEncoding(config.frequency_parameter, config.coordinate_extent)
        self.hypernetwork = LowResolutionHypernetwork(config)

    def forward(self, sources: Tensor, offsets: Tensor | None = None) -> GeneratorOutput:
        """Synthesize the targets of a batch of source slices or crops.

        Args:
            sources: ``(B, N_s, H, W)`` normalized source intensities.
            offsets: ``(B, 2)`` (row, column) of each crop's top-left pixel in its whole slice;
                ``None`` for whole slices.

        Returns:
            The ``(B, N_t, H, W)`` image in [-1, 1], and the ``(B, parameters_per_patch, H / p, W / p)``
            predicted MLP parameters as the latent code.
        """
        config = self.config
        offsets = checked_offsets(sources, offsets, config.in_channels)
        height, width = sources.shape[-2:]
        padded = pad_to_multiple(sources, config.patch_size)
        parameters = self.hypernetwork(F.avg_pool2d(padded, config.patch_size))
        encoding = self.encoding(*padded.shape[-2:], offsets, device=sources.device, dtype=sources.dtype)
        image = self._pixelwise(torch.cat([encoding, padded], dim=1), parameters)
        return GeneratorOutput(image=crop_to(image, height, width), latent=parameters)

    def _pixelwise(self, features: Tensor, parameters: Tensor) -> Tensor:
        """Run each patch's MLP on its pixels as one batched matrix product per layer.

        Args:
            features: ``(B, C, h p, w p)`` per-pixel MLP inputs.
            parameters: ``(B, P, h, w)`` flattened MLP parameters per patch.

        Returns:
            ``(B, N_t, h p, w p)`` after tanh.
        """
        size, sizes = self.config.patch_size, self.config.mlp_sizes
        batch, channels, rows, cols = features.shape
        grid_rows, grid_cols = rows // size, cols // size
        hidden = features.reshape(batch, channels, grid_rows, size, grid_cols, size)
        hidden = hidden.permute(0, 2, 4, 3, 5, 1).reshape(batch, grid_rows, grid_cols, size * size, channels)
        per_patch = parameters.permute(0, 2, 3, 1)
        start, last = 0, len(sizes) - 2
        for index, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
            weight = per_patch[..., start : start + fan_in * fan_out].reshape(*per_patch.shape[:3], fan_in, fan_out)
            start += fan_in * fan_out
            bias = per_patch[..., start : start + fan_out].unsqueeze(-2)
            start += fan_out
            hidden = hidden @ weight + bias
            hidden = torch.tanh(hidden) if index == last else F.leaky_relu(hidden, self.config.negative_slope)
        out = hidden.reshape(batch, grid_rows, grid_cols, size, size, sizes[-1])
        return out.permute(0, 5, 1, 3, 2, 4).reshape(batch, sizes[-1], rows, cols)
