"""What every baseline does to its inputs: check them, pad whole slices to the size multiple a
fixed-stride network needs, and crop back."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["BACKGROUND", "checked_offsets", "crop_to", "pad_to_multiple"]

BACKGROUND = -1.0
"""The normalized intensity of the background: padding with it looks like more empty field of view."""


def pad_to_multiple(images: Tensor, multiple: int) -> Tensor:
    """Pad ``(B, C, H, W)`` at the bottom and right with background up to multiples of ``multiple``.

    A U-Net's skip connections, or a grid of fixed-size patches, need sizes divisible by a power of
    two, while slices come in any size (240 x 240 for BraTS); padding with the background value
    keeps every architecture usable on whole slices of any size, as CoNeS is.
    """
    height, width = images.shape[-2:]
    pad_rows, pad_cols = -height % multiple, -width % multiple
    if pad_rows == 0 and pad_cols == 0:
        return images
    return F.pad(images, (0, pad_cols, 0, pad_rows), value=BACKGROUND)


def crop_to(images: Tensor, height: int, width: int) -> Tensor:
    """The top-left ``height x width`` window: undoes :func:`pad_to_multiple`."""
    return images[..., :height, :width]


def checked_offsets(sources: Tensor, offsets: Tensor | None, in_channels: int) -> Tensor:
    """The crops' ``(B, 2)`` offsets (zeros for whole slices), after checking both inputs' shapes.

    Every generator is called as ``generator(sources, offsets)``; a CNN ignores the offsets, a
    model with a whole-slice frame reads where each crop sits from them.

    Raises:
        ValueError: ``sources`` is not ``(B, in_channels, H, W)`` or ``offsets`` not ``(B, 2)``.
    """
    if sources.ndim != 4 or sources.shape[1] != in_channels:
        raise ValueError(f"sources must have shape (B, {in_channels}, H, W), got {tuple(sources.shape)}")
    batch = sources.shape[0]
    if offsets is None:
        return torch.zeros(batch, 2, dtype=torch.long, device=sources.device)
    if offsets.shape != (batch, 2):
        raise ValueError(f"offsets must have shape ({batch}, 2), got {tuple(offsets.shape)}")
    return offsets
