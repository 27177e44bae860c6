"""One CoNeS optimisation step: a discriminator update, then a generator update (paper section 3.4)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from cones.losses import discriminator_hinge_loss, generator_loss
from cones.model import build_perceptual_network
from cones.model.perceptual import perceptual_loss
from cones.training.config import TrainConfig

__all__ = ["AdversarialStep", "StepLosses"]


@dataclass(frozen=True)
class StepLosses:
    """Loss values of one step, as floats for logging."""

    discriminator: float
    generator: float
    reconstruction: float
    adversarial: float
    feature_matching: float
    latent_regularization: float
    perceptual: float


def _split_pairs(features: list[list[Tensor]], batch: int) -> tuple[list[list[Tensor]], list[list[Tensor]]]:
    """Split features of a ``[real; fake]`` batch into the real half and the fake half."""
    real = [[feature[:batch] for feature in scale] for scale in features]
    fake = [[feature[batch:] for feature in scale] for scale in features]
    return real, fake


class AdversarialStep:
    """Owns the optimisers and performs the alternating GAN update.

    Real and fake pairs go through the discriminator in *one* batch: instance norm keeps the
    samples independent, spectral norm then does one power iteration per step, and DDP sees one
    forward per backward. The generator update calls the unwrapped discriminator with its
    parameters frozen: its gradients would be discarded anyway, and skipping DDP there avoids a
    useless all-reduce.

    Args:
        config: learning rates, betas, loss weights, discriminator noise, schedule.
        generator: the generator, possibly wrapped in DDP.
        discriminator: the discriminator, possibly wrapped in DDP.
        autocast: run forward passes in bfloat16 autocast (``cones train`` turns it on for CUDA only;
            on the CPU the losses have not been shown to match fp32).
    """

    def __init__(self, config: TrainConfig, generator: nn.Module, discriminator: nn.Module, autocast: bool) -> None:
        self.config = config
        self.generator = generator
        self.discriminator = discriminator
        self.discriminator_module: nn.Module = getattr(discriminator, "module", discriminator)
        self.autocast = autocast
        self.generator_optimizer = torch.optim.Adam(generator.parameters(), lr=config.generator_lr, betas=config.betas)
        self.discriminator_optimizer = torch.optim.Adam(
            discriminator.parameters(), lr=config.discriminator_lr, betas=config.betas
        )
        # pGAN's frozen feature network; rebuilt from the preset, so checkpoints need not hold it.
        self.perceptual = (
            build_perceptual_network(config.preset, len(config.targets)).to(next(generator.parameters()).device)
            if config.loss_weights.perceptual > 0
            else None
        )

    def _set_learning_rates(self, iteration: int) -> None:
        factor = self.config.learning_rate_factor(iteration)
        for group in self.generator_optimizer.param_groups:
            group["lr"] = self.config.generator_lr * factor
        for group in self.discriminator_optimizer.param_groups:
            group["lr"] = self.config.discriminator_lr * factor

    def __call__(
        self, sources: Tensor, target: Tensor, offsets: Tensor, iteration: int, noise: torch.Generator
    ) -> StepLosses:
        """Update D, then G, on one batch.

        Args:
            sources: ``(B, N_s, h, w)`` normalized source crops.
            target: ``(B, N_t, h, w)`` normalized target crops.
            offsets: ``(B, 2)`` crop positions in their slices.
            iteration: zero-based step index (sets the learning rates).
            noise: generator of the discriminator noise, seeded per step by the caller so that a
                resumed run draws the same noise.
        """
        self._set_learning_rates(iteration)
        batch = sources.shape[0]
        device_type = sources.device.type
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=self.autocast):
            output = self.generator(sources, offsets)
            std = self.config.discriminator_noise
            noisy_real = target + std * torch.randn(target.shape, generator=noise, device=target.device)
            noisy_fake = output.image.detach() + std * torch.randn(target.shape, generator=noise, device=target.device)
            features = self.discriminator(torch.cat([sources, sources]), torch.cat([noisy_real, noisy_fake]))
            discriminator_loss = discriminator_hinge_loss(*_split_pairs(features, batch))
        self.discriminator_optimizer.zero_grad(set_to_none=True)
        discriminator_loss.backward()
        self.discriminator_optimizer.step()

        self.discriminator_module.requires_grad_(False)
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=self.autocast):
            features = self.discriminator_module(torch.cat([sources, sources]), torch.cat([target, output.image]))
            real_features, fake_features = _split_pairs(features, batch)
            perceptual = None if self.perceptual is None else perceptual_loss(self.perceptual, output.image, target)
            terms = generator_loss(
                output.image.float(),
                target,
                output.latent.float(),
                real_features,
                fake_features,
                self.config.loss_weights,
                None if perceptual is None else perceptual.float(),
            )
        self.generator_optimizer.zero_grad(set_to_none=True)
        terms.total.backward()
        self.generator_optimizer.step()
        self.discriminator_module.requires_grad_(True)
        return StepLosses(
            discriminator=discriminator_loss.item(),
            generator=terms.total.item(),
            reconstruction=terms.reconstruction.item(),
            adversarial=terms.adversarial.item(),
            feature_matching=terms.feature_matching.item(),
            latent_regularization=terms.latent_regularization.item(),
            perceptual=terms.perceptual.item(),
        )

    def state_dict(self) -> dict[str, dict]:
        """Optimiser states (tensors and plain data only, so checkpoints load with weights_only)."""
        return {
            "generator_optimizer": self.generator_optimizer.state_dict(),
            "discriminator_optimizer": self.discriminator_optimizer.state_dict(),
        }

    def load_state_dict(self, state: dict[str, dict]) -> None:
        self.generator_optimizer.load_state_dict(state["generator_optimizer"])
        self.discriminator_optimizer.load_state_dict(state["discriminator_optimizer"])
