"""Sinusoidal positional encoding of pixel coordinates (paper eq. 2-4)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["PositionalEncoding"]


class PositionalEncoding(nn.Module):
    """Fourier features of 2D pixel coordinates in the frame of the whole slice.

    The paper (eq. 3-4) sets ``gamma_2i = sin(2^(i-1) pi x)`` and ``gamma_2i+1 = cos(2^(i-1) pi x)``
    for ``i = 0 .. m``: ``m + 1`` frequencies from ``pi / 2`` to ``2^(m-1) pi``. The lowest one is
    what makes the encoding unambiguous: ``sin(pi x / 2)`` is monotonic over the whole coordinate
    range [-1, 1], so no two pixels of a slice share an encoding.

    Coordinates are derived from integer pixel indices of the *whole* slice: row ``r`` maps to
    ``2 (r + 0.5) / extent_rows - 1`` with a fixed ``extent`` stored in the model config. A
    training crop passes its offset, so a pixel gets bit-for-bit the same encoding in a crop and
    in the whole slice, and inference is not tied to the training tile size (the reference code's
    encoding was relative to the tile and cached with the first batch's shape).

    Args:
        frequency_parameter: ``m`` in the paper (6); yields ``m + 1`` frequencies.
        extent: (rows, columns) of pixels that span the coordinate range [-1, 1].

    Example:
        >>> encoding = PositionalEncoding(6, (256, 256))
        >>> encoding(240, 240).shape
        torch.Size([1, 28, 240, 240])
    """

    def __init__(self, frequency_parameter: int, extent: tuple[int, int]) -> None:
        super().__init__()
        if frequency_parameter < 0:
            raise ValueError(f"frequency_parameter must be >= 0, got {frequency_parameter!r}")
        if len(extent) != 2 or min(extent) < 1:
            raise ValueError(f"extent must be two positive sizes, got {extent!r}")
        self.frequency_parameter = int(frequency_parameter)
        self.extent = (int(extent[0]), int(extent[1]))

    @property
    def out_channels(self) -> int:
        """sin and cos of every frequency for both coordinates."""
        return 4 * (self.frequency_parameter + 1)

    def forward(
        self,
        height: int,
        width: int,
        offsets: Tensor | None = None,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        """Encode an ``height x width`` window whose top-left pixel sits at ``offsets`` in the slice.

        Args:
            height: rows of the window.
            width: columns of the window.
            offsets: ``(B, 2)`` integer (row, column) of each window's top-left pixel in the whole
                slice; ``None`` means one window at (0, 0), i.e. the whole slice.
            device: where to build the encoding (default: the offsets' device, else CPU).
            dtype: dtype of the result; phases are always computed in float64 so that high
                frequencies stay exact whatever precision the network runs in.

        Returns:
            ``(B, 4 (m + 1), height, width)``: per frequency, sin(row), sin(col), cos(row), cos(col).
        """
        if device is None:
            device = offsets.device if offsets is not None else torch.device("cpu")
        if offsets is None:
            offsets = torch.zeros(1, 2, dtype=torch.long, device=device)
        if offsets.ndim != 2 or offsets.shape[1] != 2:
            raise ValueError(f"offsets must have shape (B, 2), got {tuple(offsets.shape)}")
        offsets = offsets.to(device=device, dtype=torch.long)
        frequencies = self._frequencies(device)
        rows = self._normalized(offsets[:, :1] + torch.arange(height, device=device), self.extent[0])
        cols = self._normalized(offsets[:, 1:] + torch.arange(width, device=device), self.extent[1])
        row_phase = rows[:, None, :, None] * frequencies[None, :, None, None]  # (B, F, H, 1)
        col_phase = cols[:, None, None, :] * frequencies[None, :, None, None]  # (B, F, 1, W)
        batch = offsets.shape[0]
        size = (batch, frequencies.numel(), height, width)
        features = torch.stack(
            [
                torch.sin(row_phase).expand(size),
                torch.sin(col_phase).expand(size),
                torch.cos(row_phase).expand(size),
                torch.cos(col_phase).expand(size),
            ],
            dim=2,
        )
        return features.reshape(batch, self.out_channels, height, width).to(dtype)

    def at_pixels(self, rows: Tensor, cols: Tensor, *, dtype: torch.dtype = torch.float32) -> Tensor:
        """The encoding of the whole slice at chosen pixels: ``(B, P)`` rows and columns -> ``(B, 4 (m + 1), 1, P)``.

        Sines and cosines are computed once per row and column in float64, as :meth:`forward` does,
        and looked up per pixel, so each pixel gets bit for bit the value it has in the whole slice.
        """
        frequencies = self._frequencies(rows.device)
        row_phase = self._normalized(torch.arange(int(rows.max()) + 1, device=rows.device), self.extent[0])
        col_phase = self._normalized(torch.arange(int(cols.max()) + 1, device=cols.device), self.extent[1])
        row_phase, col_phase = row_phase[:, None] * frequencies, col_phase[:, None] * frequencies  # (rows, F)
        features = torch.stack(
            [
                torch.sin(row_phase)[rows],
                torch.sin(col_phase)[cols],
                torch.cos(row_phase)[rows],
                torch.cos(col_phase)[cols],
            ],
            dim=-1,
        )  # (B, P, F, 4)
        batch, pixels = rows.shape
        return features.to(dtype).reshape(batch, pixels, self.out_channels).permute(0, 2, 1).unsqueeze(2)

    def _frequencies(self, device: torch.device | str) -> Tensor:
        """``2^i pi`` for ``i = -1 .. m - 1`` in float64."""
        return 2.0 ** torch.arange(-1, self.frequency_parameter, dtype=torch.float64, device=device) * math.pi

    @staticmethod
    def _normalized(indices: Tensor, extent: int) -> Tensor:
        return (2.0 * indices.double() + 1.0) / extent - 1.0
