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
from cones.model import build_perceptual_network
from cones.model.perceptual import PerceptualFeatures, perceptual_loss


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
    assert terms.perceptual.item() == 0.0, "no perceptual term given: it counts as 0"
    perceptual = torch.tensor(0.25)
    weights = LossWeights(perceptual=4.0)
    with_perceptual = generator_loss(fake_image, real_image, latent, real, fake, weights, perceptual)
    assert with_perceptual.total.item() == pytest.approx(terms.total.item() + 4.0 * 0.25)


def test_perceptual_network_is_fixed_by_its_seed_and_frozen() -> None:
    first, second = build_perceptual_network("lite", 1), build_perceptual_network("lite", 1)
    assert [block[0].out_channels for block in first.blocks] == [16, 32, 64]
    assert [block[0].out_channels for block in build_perceptual_network("paper", 1).blocks] == [64, 128, 256]
    for a, b in zip(first.parameters(), second.parameters(), strict=True):
        assert torch.equal(a, b) and not a.requires_grad
    other_seed = PerceptualFeatures(1, (16, 32, 64), seed=1)
    assert not torch.equal(next(first.parameters()), next(other_seed.parameters()))
    features = first(torch.rand(2, 1, 32, 24))
    assert [tuple(f.shape) for f in features] == [(2, 16, 32, 24), (2, 32, 16, 12), (2, 64, 8, 6)]
    with pytest.raises(ValueError, match="3 positive widths"):
        PerceptualFeatures(1, (16, 32))


def test_perceptual_loss_is_zero_for_the_real_image_and_trains_the_fake_only() -> None:
    network = build_perceptual_network("lite", 1)
    torch.manual_seed(0)
    real = torch.rand(2, 1, 32, 32) * 2 - 1
    assert perceptual_loss(network, real, real).item() == 0.0
    fake = real.clone().requires_grad_(True)
    with torch.no_grad():
        fake += 0.3 * torch.randn_like(fake)
    loss = perceptual_loss(network, fake, real)
    loss.backward()
    assert loss.item() > 0 and fake.grad is not None and fake.grad.abs().sum() > 0
    blurred = torch.nn.functional.avg_pool2d(real, 3, stride=1, padding=1)
    assert perceptual_loss(network, blurred, real).item() > 0, "the features see what a blur removes"


def test_losses_reject_mismatched_inputs() -> None:
    with pytest.raises(ValueError, match="number of scales"):
        discriminator_hinge_loss([scores(1.0)], [])
    with pytest.raises(ValueError, match="differ in shape"):
        generator_loss(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 5), torch.zeros(1), [], [], LossWeights())


def test_loss_weights_validation_and_defaults() -> None:
    assert dataclasses.astuple(LossWeights()) == (100.0, 1.0, 10.0, 10.0, 0.0)
    with pytest.raises(ValueError, match="adversarial"):
        LossWeights(adversarial=-1.0)


def test_building_the_perceptual_network_leaves_the_global_random_stream_alone() -> None:
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    build_perceptual_network("lite", 1)
    torch.testing.assert_close(torch.rand(3), expected, rtol=0, atol=0)
