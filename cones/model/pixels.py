"""Choosing the pixels the neural field runs on, and reading a per-pixel code at them.

The neural field is evaluated pixel by pixel, so synthesis needs it only where the brain is; half
or more of a BraTS slice is background. Pixels are handled as ``(B, C, 1, P)`` "images" of ``P``
pixels, so the field's 1x1 convolutions run the same kernels as on whole slices.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["PIXEL_BUCKET", "foreground_pixels", "gather_pixels", "sample_bilinear"]


PIXEL_BUCKET = 2048
"""Pixel lists are padded to a multiple of this many pixels. Each distinct shape makes oneDNN build and
keep kernels of its own; a BraTS volume's slices would give each its own shape (measured on a lite
volume, 2 cores: peak memory 0.90-1.03 GB with exact counts, 0.82-0.87 GB in buckets, 0.84 GB with
whole slices; the time the same within noise)."""


def foreground_pixels(foreground: Tensor, bucket: int = PIXEL_BUCKET) -> tuple[Tensor, Tensor]:
    """Flat indices of each slice's foreground pixels, padded to a common count, and which are real.

    Args:
        foreground: ``(B, H, W)`` boolean.
        bucket: the count is rounded up to a multiple of it (at most ``H * W``).

    Returns:
        ``(B, P)`` flat indices (``row * W + column``), P the largest foreground of the batch rounded
        up to ``bucket``: each slice's foreground first, then distinct background pixels as padding;
        and the ``(B, P)`` mask of the foreground ones.
    """
    flat = foreground.flatten(1)
    count = min(flat.shape[1], -(-int(flat.sum(1).max()) // bucket) * bucket)
    order = torch.argsort((~flat).to(torch.uint8), dim=1, stable=True)[:, :count]
    return order, flat.gather(1, order)


def gather_pixels(images: Tensor, indices: Tensor) -> Tensor:
    """``(B, C, H, W)`` at the ``(B, P)`` flat pixel indices: ``(B, C, 1, P)``."""
    batch, channels = images.shape[:2]
    flat = images.reshape(batch, channels, -1)
    return flat.gather(2, indices[:, None, :].expand(batch, channels, -1)).unsqueeze(2)


def sample_bilinear(code: Tensor, indices: Tensor, size: tuple[int, int]) -> Tensor:
    """``F.interpolate(code, size, mode="bilinear", align_corners=False)`` at the flat pixel indices of ``size``.

    ``grid_sample`` with ``align_corners=False`` and border padding maps the centre of output pixel
    ``i`` to the source coordinate ``(i + 0.5) * in / out - 0.5``, clamped to the first and last
    row or column: the coordinates, clamping and weights of the upsampling, without computing the
    pixels not asked for.

    Args:
        code: ``(B, C, h, w)`` at the resolution it was computed.
        indices: ``(B, P)`` flat indices into the ``size`` grid.
        size: (rows, columns) of that grid.

    Returns:
        ``(B, C, 1, P)``.
    """
    height, width = size
    if tuple(code.shape[-2:]) == (height, width):
        return gather_pixels(code, indices)
    rows = (indices // width).to(torch.float32)
    cols = (indices % width).to(torch.float32)
    grid = torch.stack([(2 * cols + 1) / width - 1, (2 * rows + 1) / height - 1], dim=-1).unsqueeze(1)
    return F.grid_sample(code, grid.to(code.dtype), mode="bilinear", padding_mode="border", align_corners=False)
