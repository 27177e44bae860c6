"""A briefly trained generator for the precision accuracy guard, shared by its test and its benchmark.

bfloat16 rounding matters through a trained network's activations: a freshly initialised
generator outputs a near-constant field (about 1e-5 in the [-1, 1] scale), which any precision
reproduces. A few Adam steps of the paper's reconstruction term (L1), taken over the target's
foreground only (a whole-crop L1 first teaches a deep generator to output background everywhere),
move it away from that field; the adversarial terms would only add time. The fit is reported so
that a caller can check the network is no longer the random one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from cones.config import NormalizationConfig
from cones.data.normalization import foreground_mask, normalize_volume
from cones.model import CoNeSGenerator
from cones.sequences import Sequence

__all__ = ["BriefFit", "normalized_case", "train_briefly"]


@dataclass(frozen=True)
class BriefFit:
    """L1 errors (normalized scale) over the target's foreground.

    Attributes:
        initial_l1: of the generator before training.
        final_l1: after training.
        constant_l1: of the best constant (the foreground median): a generator below it has
            learned something of the anatomy.
    """

    initial_l1: float
    final_l1: float
    constant_l1: float


def normalized_case(
    volumes: Mapping[Sequence, np.ndarray], sources: tuple[Sequence, ...], target: Sequence
) -> tuple[torch.Tensor, torch.Tensor]:
    """Foreground slices ``(S, N_s, H, W)`` of the sources and ``(S, 1, H, W)`` of the target, normalized
    as synthesis normalizes them (:class:`NormalizationConfig` defaults)."""
    config = NormalizationConfig()
    mask = foreground_mask([volumes[seq] for seq in sources], config)
    stacked = np.stack([normalize_volume(volumes[seq], mask, config) for seq in (*sources, target)], axis=1)
    kept = stacked[mask.any(axis=(1, 2))]
    return torch.from_numpy(kept[:, : len(sources)].copy()), torch.from_numpy(kept[:, len(sources) :].copy())


def _foreground_l1(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    foreground = target > -1
    return F.l1_loss(output[foreground], target[foreground])


def _l1(generator: CoNeSGenerator, sources: torch.Tensor, target: torch.Tensor) -> float:
    with torch.inference_mode():
        return _foreground_l1(torch.cat([generator(s[None]).image for s in sources]), target).item()


def train_briefly(
    generator: CoNeSGenerator,
    sources: torch.Tensor,
    target: torch.Tensor,
    iterations: int,
    crop: int,
    seed: int = 0,
    learning_rate: float = 4e-4,
) -> BriefFit:
    """Fit ``generator`` to map ``sources`` to ``target``: foreground L1 on a random ``crop`` x ``crop`` crop per step.

    Args:
        generator: trained in place (left in eval mode).
        sources: ``(S, N_s, H, W)`` normalized source slices.
        target: ``(S, 1, H, W)`` normalized target slices.
        iterations: Adam steps.
        crop: side of the square crops (the positional encoding gets their offsets, as in training).
        seed: seeds the crop positions.
        learning_rate: Adam's; twice the paper's 2e-4 so that tens of steps suffice (1e-3 saturated the
            paper preset's tanh output at -1 within ten steps).
    """
    rng = np.random.default_rng(seed)
    initial = _l1(generator.eval(), sources, target)
    optimizer = torch.optim.Adam(generator.parameters(), lr=learning_rate)
    generator.train()
    for _ in range(iterations):
        index = int(rng.integers(len(sources)))
        row, column = (int(rng.integers(size - crop + 1)) for size in sources.shape[-2:])
        window = (slice(index, index + 1), slice(None), slice(row, row + crop), slice(column, column + crop))
        output = generator(sources[window], torch.tensor([[row, column]])).image
        loss = _foreground_l1(output, target[window])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    foreground = target[target > -1]
    constant = F.l1_loss(foreground, foreground.median().expand_as(foreground)).item()
    return BriefFit(initial_l1=initial, final_l1=_l1(generator.eval(), sources, target), constant_l1=constant)
