"""Baseline generators of the paper's comparison, written from their papers for the same trainer.

Every one follows the :class:`~cones.model.CoNeSGenerator` contract, ``generator(sources, offsets)`` ->
``GeneratorOutput(image, latent)``, so training, validation, inference and benchmarks treat every
architecture alike.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ASAPNetConfig": "config",
    "PGANConfig": "config",
    "Pix2PixConfig": "config",
    "ResViTConfig": "config",
    "ASAPNetGenerator": "asapnet",
    "PGANGenerator": "pgan",
    "Pix2PixGenerator": "pix2pix",
    "ResViTGenerator": "resvit",
}
"""Where each public name lives, imported on first use: the configs (read with every model card) need no torch."""


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)


__all__ = [
    "ASAPNetConfig",
    "ASAPNetGenerator",
    "PGANConfig",
    "PGANGenerator",
    "Pix2PixConfig",
    "Pix2PixGenerator",
    "ResViTConfig",
    "ResViTGenerator",
]
