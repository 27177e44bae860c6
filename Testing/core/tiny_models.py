"""The smallest generator configuration the architecture allows, shared by the model, step and inference tests.

A few thousand parameters keep every forward pass in the milliseconds while exercising every
part of the real network (stem, four stages, FPN merges, shift-modulated MLP).
"""

from __future__ import annotations

from cones.config import GeneratorConfig

TINY_GENERATOR = GeneratorConfig(
    stem_channels=8,
    stage_blocks=(1, 1, 1, 1),
    stage_widths=(4, 4, 8, 8),
    fpn_channels=8,
    mlp_width=8,
    coordinate_extent=(64, 64),
)
