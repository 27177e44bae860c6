"""CoNeS objectives (paper eq. 11-16): hinge GAN, L1 reconstruction, feature matching, latent L2, pGAN's perceptual.

Discriminator outputs come as one list of block features per scale (see
:class:`~cones.model.PatchDiscriminator`); the last feature of each scale is its patch score map.
Every term is averaged over scales so that the paper's weights keep their meaning whatever the
number of scales.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from cones.config import LossWeights

__all__ = [
    "GeneratorLoss",
    "discriminator_hinge_loss",
    "feature_matching_loss",
    "generator_adversarial_loss",
    "generator_loss",
    "latent_regularization",
]

ScaleFeatures = list[list[Tensor]]


def _check_scales(real: ScaleFeatures, fake: ScaleFeatures) -> None:
    if len(real) != len(fake) or not real:
        raise ValueError(f"real and fake need the same non-zero number of scales, got {len(real)} and {len(fake)}")


def discriminator_hinge_loss(real: ScaleFeatures, fake: ScaleFeatures) -> Tensor:
    """``E[max(0, 1 - D(real))] + E[max(0, 1 + D(fake))]`` (eq. 11), averaged over scales."""
    _check_scales(real, fake)
    terms = [F.relu(1.0 - r[-1]).mean() + F.relu(1.0 + f[-1]).mean() for r, f in zip(real, fake, strict=True)]
    return torch.stack(terms).mean()


def generator_adversarial_loss(fake: ScaleFeatures) -> Tensor:
    """``-E[D(fake)]`` (eq. 12): the generator raises the score of its own images."""
    if not fake:
        raise ValueError("fake must hold at least one scale")
    return torch.stack([-f[-1].mean() for f in fake]).mean()


def feature_matching_loss(real: ScaleFeatures, fake: ScaleFeatures) -> Tensor:
    """L1 between the discriminator's intermediate features of real and synthesized pairs (eq. 14).

    The score maps are excluded (they are the adversarial term); real features are detached because
    this term trains the generator only. Layers are summed and scales averaged, as in pix2pixHD.
    """
    _check_scales(real, fake)
    per_scale = []
    for real_features, fake_features in zip(real, fake, strict=True):
        layers = [F.l1_loss(f, r.detach()) for r, f in zip(real_features[:-1], fake_features[:-1], strict=True)]
        per_scale.append(torch.stack(layers).sum())
    return torch.stack(per_scale).mean()


def latent_regularization(latent: Tensor) -> Tensor:
    """``mean(z^2)`` (eq. 15): keeps the shifts small, which the paper found stabilises training."""
    return latent.pow(2).mean()


class GeneratorLoss(NamedTuple):
    """The weighted total and each unweighted term, for logging."""

    total: Tensor
    reconstruction: Tensor
    adversarial: Tensor
    feature_matching: Tensor
    latent_regularization: Tensor
    perceptual: Tensor


def generator_loss(
    fake_image: Tensor,
    real_image: Tensor,
    latent: Tensor,
    real_features: ScaleFeatures,
    fake_features: ScaleFeatures,
    weights: LossWeights,
    perceptual: Tensor | None = None,
) -> GeneratorLoss:
    """The generator objective of eq. 16 with the given weights.

    Args:
        fake_image: ``(B, N_t, H, W)`` synthesized targets.
        real_image: ``(B, N_t, H, W)`` real targets.
        latent: ``(B, L, H, W)`` latent code that produced ``fake_image``.
        real_features: discriminator features of (sources, real targets).
        fake_features: discriminator features of (sources, synthesized targets).
        weights: lambda_rec, lambda_adv, lambda_fm, lambda_reg and the perceptual weight.
        perceptual: the perceptual term (:func:`cones.model.perceptual.perceptual_loss`) where the
            objective has one; without it the term counts as 0.
    """
    if fake_image.shape != real_image.shape:
        raise ValueError(
            f"fake and real images differ in shape: {tuple(fake_image.shape)} vs {tuple(real_image.shape)}"
        )
    reconstruction = F.l1_loss(fake_image, real_image)
    adversarial = generator_adversarial_loss(fake_features)
    matching = feature_matching_loss(real_features, fake_features)
    regularization = latent_regularization(latent)
    perceptual = torch.zeros((), device=fake_image.device) if perceptual is None else perceptual
    total = (
        weights.reconstruction * reconstruction
        + weights.adversarial * adversarial
        + weights.feature_matching * matching
        + weights.latent_regularization * regularization
        + weights.perceptual * perceptual
    )
    return GeneratorLoss(total, reconstruction, adversarial, matching, regularization, perceptual)
