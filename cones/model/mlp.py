"""The coordinate-based network: one global MLP whose neurons are shifted per pixel (paper eq. 9)."""

from __future__ import annotations

from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ShiftModulatedMLP"]


class ShiftModulatedMLP(nn.Module):
    """A pixel-wise MLP shared by all pixels, conditioned by shift modulation.

    Each linear layer computes ``w_i l_i + b_i + beta_i(x)`` (eq. 9): the weights and biases are
    global, the shift ``beta_i(x)`` is the i-th slice of the latent code at that pixel. Shifts
    alone condition the field with 257 generated numbers per pixel instead of the ~14.5k of a
    full hypernetwork, which the paper found both as accurate and more stable (Table 7).

    The layers are 1x1 convolutions, so a whole slice is decoded in one call with weights shared
    across pixels by construction (a list of ``P`` pixels is decoded as a ``1 x P`` image).

    Args:
        in_features: positional encoding channels + source intensities.
        width: neurons per hidden layer (paper: 64).
        hidden_layers: hidden layers (paper: 4, hence five linear layers in total).
        out_features: target sequences; the output goes through tanh into [-1, 1].
        negative_slope: LeakyReLU slope of the hidden layers (paper: 0.2).

    Shapes:
        features ``(B, in_features, H, W)``, shifts ``(B, shift_channels, H, W)`` -> ``(B, out_features, H, W)``.
    """

    def __init__(
        self, in_features: int, width: int, hidden_layers: int, out_features: int, negative_slope: float = 0.2
    ) -> None:
        super().__init__()
        if min(in_features, width, hidden_layers, out_features) < 1:
            raise ValueError(
                "in_features, width, hidden_layers and out_features must be positive, got "
                f"{in_features!r}, {width!r}, {hidden_layers!r}, {out_features!r}"
            )
        sizes = [in_features] + [width] * hidden_layers + [out_features]
        self.layers = nn.ModuleList(nn.Conv2d(fan_in, fan_out, kernel_size=1) for fan_in, fan_out in pairwise(sizes))
        self.negative_slope = negative_slope

    @property
    def shift_sizes(self) -> list[int]:
        """Neurons of each layer, i.e. how the latent code is split into per-layer shifts."""
        return [layer.out_channels for layer in self.layers]

    @property
    def shift_channels(self) -> int:
        """Total shifts per pixel (paper: 4 * 64 + 1 = 257)."""
        return sum(self.shift_sizes)

    def forward(self, features: Tensor, shifts: Tensor) -> Tensor:
        if shifts.shape[1] != self.shift_channels:
            raise ValueError(f"shifts must have {self.shift_channels} channels, got {shifts.shape[1]}")
        hidden = features
        last = len(self.layers) - 1
        for index, (layer, shift) in enumerate(zip(self.layers, shifts.split(self.shift_sizes, dim=1), strict=True)):
            hidden = layer(hidden) + shift
            hidden = torch.tanh(hidden) if index == last else F.leaky_relu(hidden, self.negative_slope)
        return hidden
