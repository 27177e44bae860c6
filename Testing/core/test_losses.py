"""Tests of the CoNeS objectives against hand-computed values."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from cones.config import LossWeights
from cones.losses import (
    discriminator_hinge_loss,
    feature_matching_loss,
    generator_adversarial_loss,
    generator_loss,
    latent_regularization,
)


def scores(*values: float) -> list[torch.Tensor]:
    """One scale whose only feature is a 1-pixel score map per value."""
    return [torch.tensor(values).view(-1, 1, 1, 1)]


def test_hinge_loss_matches_hand_computation() -> None:
    real = [scores(2.0, 0.5), scores(-1.0, 1.0)]
    fake = [scores(-3.0, 0.0), scores(0.5, -0.5)]
    # scale 1: relu(1-2)=0, relu(1-0.5)=0.5 -> 0.25; relu(1-3)=0, relu(1+0)=1 -> 0.5 ; sum 0.75
    # scale 2: relu(2)=2, relu(0)=0 -> 1.0; relu(1.5)=1.5, relu(0.5)=0.5 -> 1.0 ; sum 2.0
    assert discriminator_hinge_loss(real, fake).item() == pytest.approx((0.75 + 2.0) / 2)


def test_generator_adversarial_loss_is_negative_mean_score() -> None:
    assert generator_adversarial_loss([scores(1.0, 3.0), scores(-2.0, 0.0)]).item() == pytest.approx(-(2.0 - 1.0) / 2)


def test_feature_matching_ignores_scores_and_detaches_real() -> None:
    real_feature = torch.ones(1, 2, 3, 3, requires_grad=True)
    fake_feature = torch.zeros(1, 2, 3, 3, requires_grad=True)
    real = [[real_feature, torch.full((1, 1, 2, 2), 100.0)]]
    fake = [[fake_feature, torch.zeros(1, 1, 2, 2)]]
    loss = feature_matching_loss(real, fake)
    assert loss.item() == pytest.approx(1.0)
    loss.backward()
    assert real_feature.grad is None
    assert fake_feature.grad is not None


def test_feature_matching_is_zero_for_identical_features() -> None:
    features = [[torch.randn(2, 4, 5, 5), torch.randn(2, 1, 3, 3)]]
    assert feature_matching_loss(features, features).item() == 0.0


def test_latent_regularization_is_mean_square() -> None:
    assert latent_regularization(torch.tensor([[1.0, -2.0], [3.0, 0.0]])).item() == pytest.approx(14 / 4)


def test_generator_loss_weights_each_term() -> None:
    torch.manual_seed(0)
    fake_image, real_image = torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8)
    latent = torch.randn(2, 5, 8, 8)
    real = [[torch.randn(2, 3, 4, 4), torch.randn(2, 1, 2, 2)]]
    fake = [[torch.randn(2, 3, 4, 4), torch.randn(2, 1, 2, 2)]]
    weights = LossWeights()
    terms = generator_loss(fake_image, real_image, latent, real, fake, weights)
    assert terms.reconstruction.item() == pytest.approx((fake_image - real_image).abs().mean().item())
    expected = 100 * terms.reconstruction + terms.adversarial + 10 * terms.feature_matching
    expected = expected + 10 * terms.latent_regularization
    assert terms.total.item() == pytest.approx(expected.item())
    only_l1 = generator_loss(fake_image, real_image, latent, real, fake, LossWeights(1.0, 0.0, 0.0, 0.0))
    assert only_l1.total.item() == pytest.approx(terms.reconstruction.item())


def test_losses_reject_mismatched_inputs() -> None:
    with pytest.raises(ValueError, match="number of scales"):
        discriminator_hinge_loss([scores(1.0)], [])
    with pytest.raises(ValueError, match="differ in shape"):
        generator_loss(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 5), torch.zeros(1), [], [], LossWeights())


def test_loss_weights_validation_and_defaults() -> None:
    assert dataclasses.astuple(LossWeights()) == (100.0, 1.0, 10.0, 10.0)
    with pytest.raises(ValueError, match="adversarial"):
        LossWeights(adversarial=-1.0)
