"""The adversarial step and the training configuration."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from tiny_models import TINY_GENERATOR

from cones.config import DiscriminatorConfig
from cones.model import CoNeSGenerator, PatchDiscriminator
from cones.training.config import TrainConfig
from cones.training.step import AdversarialStep

TINY_DISCRIMINATOR = DiscriminatorConfig(in_channels=4, channels=(8, 8, 16, 16, 1))


def make_step(seed: int = 0) -> AdversarialStep:
    torch.manual_seed(seed)
    config = TrainConfig(iterations=4, batch_size=2, crop_size=(32, 32))
    return AdversarialStep(config, CoNeSGenerator(TINY_GENERATOR), PatchDiscriminator(TINY_DISCRIMINATOR), False)


def batch(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    data = torch.Generator().manual_seed(seed)
    sources = torch.rand(2, 3, 32, 32, generator=data) * 2 - 1
    return sources, sources[:, :1].flip(-1), torch.tensor([[0, 0], [10, 20]])


def test_one_step_updates_both_networks_and_reports_finite_losses() -> None:
    step = make_step()
    generator_before = [p.detach().clone() for p in step.generator.parameters()]
    discriminator_before = [p.detach().clone() for p in step.discriminator.parameters()]
    losses = step(*batch(0), iteration=0, noise=torch.Generator().manual_seed(0))
    assert all(math.isfinite(value) for value in dataclasses.astuple(losses))
    assert any(not torch.equal(a, b) for a, b in zip(generator_before, step.generator.parameters(), strict=True))
    assert any(
        not torch.equal(a, b) for a, b in zip(discriminator_before, step.discriminator.parameters(), strict=True)
    )
    assert all(p.requires_grad for p in step.discriminator.parameters()), "D must be unfrozen after the G update"


def test_steps_are_deterministic_for_a_seed() -> None:
    results = []
    for _ in range(2):
        step = make_step(seed=3)
        for iteration in range(2):
            step(*batch(iteration), iteration=iteration, noise=torch.Generator().manual_seed(iteration))
        results.append([p.detach().clone() for p in step.generator.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*results, strict=True))


def test_reconstruction_improves_over_a_few_steps() -> None:
    step = make_step()
    first = step(*batch(0), iteration=0, noise=torch.Generator().manual_seed(0)).reconstruction
    for iteration in range(1, 30):
        last = step(*batch(0), iteration=0, noise=torch.Generator().manual_seed(iteration)).reconstruction
    assert last < first


def test_learning_rate_schedule_is_constant_then_linear_to_zero() -> None:
    config = TrainConfig(iterations=100, decay_start=0.5)
    assert config.learning_rate_factor(0) == 1.0
    assert config.learning_rate_factor(49) == 1.0
    assert config.learning_rate_factor(75) == pytest.approx(0.5)
    assert config.learning_rate_factor(100) == 0.0
    step = make_step()
    step(*batch(0), iteration=3, noise=torch.Generator().manual_seed(0))
    assert step.generator_optimizer.param_groups[0]["lr"] == pytest.approx(1e-4 * (1 - (3 - 2) / 2))


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"targets": ("t1",)}, "both source and target"),
        ({"sources": ("t1", "t1n")}, "more than once"),
        ({"sources": ("pd",)}, "unknown sequence"),
        ({"preset": "huge"}, "preset"),
        ({"iterations": 0}, "iterations"),
        ({"crop_size": (8, 8)}, "crop_size"),
        ({"betas": (0.5, 1.5)}, "betas"),
        ({"decay_start": 2.0}, "decay_start"),
        ({"slice_axis": 3}, "slice_axis"),
        ({"bright_crop_fraction": 1.5}, "bright_crop_fraction"),
        ({"bright_crop_threshold": 1.0}, "bright_crop_threshold"),
    ],
)
def test_train_config_validation(changes: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        TrainConfig(**changes)


def test_train_config_json_round_trip() -> None:
    config = TrainConfig(iterations=7, crop_size=(64, 48), sources=("t1", "t2"))
    assert TrainConfig.from_dict(config.to_dict()) == config
