"""The training configuration: everything that decides what a run learns, in one JSON-able record."""

from __future__ import annotations

from dataclasses import dataclass, field

from cones.config import JsonConfig, LossWeights, NormalizationConfig
from cones.data.augment import AugmentationConfig
from cones.model import Architecture, Preset, parse_architecture
from cones.sequences import parse_sequences

__all__ = ["TrainConfig", "default_loss_weights"]

_BASELINE_LOSS_WEIGHTS = {
    # pix2pix (Isola et al. 2017): L1 with lambda = 100 plus the GAN term, nothing else.
    Architecture.PIX2PIX: LossWeights(feature_matching=0.0, latent_regularization=0.0),
    # ASAP-Net (Shaham et al. 2021) trains with the pix2pixHD objective: hinge GAN and feature
    # matching (its VGG perceptual term needs pretrained weights we do not ship), no weight penalty.
    Architecture.ASAPNET: LossWeights(latent_regularization=0.0),
    # pGAN (Dar et al. 2019): L1 and perceptual terms, both with lambda = 100, plus the GAN term.
    Architecture.PGAN: LossWeights(feature_matching=0.0, latent_regularization=0.0, perceptual=100.0),
    # ResViT (Dalmaz et al. 2022): L1 with lambda = 100 plus the GAN term, as pix2pix.
    Architecture.RESVIT: LossWeights(feature_matching=0.0, latent_regularization=0.0),
}


def default_loss_weights(arch: Architecture | str) -> LossWeights:
    """The generator objective each architecture was published with (CoNeS: paper eq. 16).

    The latent regularization ``mean(z^2)`` belongs to CoNeS's shift code; the baselines return
    their own codes (pix2pix's bottleneck, ASAP-Net's predicted MLP weights) but their papers do
    not penalise them, so their defaults leave it out.
    """
    return _BASELINE_LOSS_WEIGHTS.get(parse_architecture(arch), LossWeights())


@dataclass(frozen=True)
class TrainConfig(JsonConfig):
    """Hyper-parameters of a CoNeS training run (defaults: the paper's, scaled where noted).

    Attributes:
        sources: source sequence names, in channel order.
        targets: target sequence names, in channel order.
        preset: model size (``paper`` or ``lite``).
        arch: generator architecture (``cones``, or the baselines ``pix2pix``, ``asapnet``, ``pgan``
            and ``resvit``);
            every architecture shares the discriminator, the data pipeline and the schedule. Give a
            baseline its published objective with ``loss_weights=default_loss_weights(arch)``, as
            ``cones train --arch`` does.
        iterations: optimisation steps (paper: 100k = 200 epochs of 500 iterations).
        batch_size: crops per step (paper: 8).
        crop_size: (rows, columns) of the random training crops (paper, BraTS: 160 x 128).
        generator_lr: Adam learning rate of the generator (TTUR, paper: 1e-4).
        discriminator_lr: Adam learning rate of the discriminator (TTUR, paper: 4e-4).
        betas: Adam betas (paper: 0.5, 0.999).
        decay_start: fraction of the iterations after which both learning rates decay linearly
            to 0 (paper: constant for 100 epochs, then decay for 100: 0.5).
        loss_weights: lambda_rec, lambda_adv, lambda_fm, lambda_reg.
        discriminator_noise: std of the Gaussian noise added to real and fake targets before the
            discriminator step (reference code: 0.05), which keeps D from winning too early.
        normalization: intensity normalization, stored in the checkpoint.
        slice_axis: numpy axis of the (z, y, x) volumes that slices are taken along (0: axial).
        validation_cases: number of cases held out for validation (taken from the end of the
            sorted case list, so the split is reproducible).
        validation_case_ids: the validation cases by name instead; when given, ``validation_cases``
            is ignored. Lets a split keep scarce real cases in training and validate on generated ones.
        validation_interval: iterations between validations (and ``best.pt`` updates).
        checkpoint_interval: iterations between ``last.pt`` saves (always saved at the end).
        log_interval: iterations between training-log lines.
        seed: seeds initialisation, sampling, crops, augmentation and discriminator noise.
        augment: whether to apply the spatial and intensity augmentation.
        augmentation: what the augmentation does when enabled.
        bright_crop_fraction: share of each batch's crops placed around a target pixel brighter
            than ``bright_crop_threshold`` (see :class:`~cones.data.slices.BrightTargetFocus`).
            Not in the paper, whose crops are uniform (0, the default); it helps a short run learn
            what is rare but what T1ce is for: the enhancing rim, vessels and dura.
        bright_crop_threshold: normalized target value in (-1, 1) above which a pixel counts as bright.
    """

    sources: tuple[str, ...] = ("t1", "t2", "flair")
    targets: tuple[str, ...] = ("t1ce",)
    preset: str = Preset.LITE.value
    arch: str = Architecture.CONES.value
    iterations: int = 1000
    batch_size: int = 8
    crop_size: tuple[int, int] = (160, 128)
    generator_lr: float = 1e-4
    discriminator_lr: float = 4e-4
    betas: tuple[float, float] = (0.5, 0.999)
    decay_start: float = 0.5
    loss_weights: LossWeights = field(default_factory=LossWeights)
    discriminator_noise: float = 0.05
    normalization: NormalizationConfig = field(default_factory=NormalizationConfig)
    slice_axis: int = 0
    validation_cases: int = 1
    validation_case_ids: tuple[str, ...] = ()
    validation_interval: int = 500
    checkpoint_interval: int = 500
    log_interval: int = 10
    seed: int = 0
    augment: bool = True
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)
    bright_crop_fraction: float = 0.0
    bright_crop_threshold: float = 0.5

    def __post_init__(self) -> None:
        overlap = set(parse_sequences(self.sources)) & set(parse_sequences(self.targets))
        if not self.sources or not self.targets:
            raise ValueError(f"sources and targets must not be empty, got {self.sources!r} -> {self.targets!r}")
        if overlap:
            raise ValueError(f"a sequence cannot be both source and target: {sorted(overlap)}")
        if self.preset not in {preset.value for preset in Preset}:
            self._bad("preset", self.preset, f"one of {[preset.value for preset in Preset]}")
        if self.arch not in {arch.value for arch in Architecture}:
            self._bad("arch", self.arch, f"one of {[arch.value for arch in Architecture]}")
        for name in ("iterations", "batch_size", "validation_interval", "checkpoint_interval", "log_interval"):
            if getattr(self, name) < 1:
                self._bad(name, getattr(self, name))
        if len(self.crop_size) != 2 or min(self.crop_size) < 16:
            self._bad("crop_size", self.crop_size, "two sizes >= 16")
        if not (self.generator_lr > 0 and self.discriminator_lr > 0):
            self._bad("generator_lr/discriminator_lr", (self.generator_lr, self.discriminator_lr))
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            self._bad("betas", self.betas, "two values in [0, 1)")
        if not 0.0 <= self.decay_start <= 1.0:
            self._bad("decay_start", self.decay_start, "a fraction in [0, 1]")
        if self.discriminator_noise < 0:
            self._bad("discriminator_noise", self.discriminator_noise)
        if self.slice_axis not in (0, 1, 2):
            self._bad("slice_axis", self.slice_axis, "0, 1 or 2")
        if self.validation_cases < 0:
            self._bad("validation_cases", self.validation_cases)
        if not 0.0 <= self.bright_crop_fraction <= 1.0:
            self._bad("bright_crop_fraction", self.bright_crop_fraction, "a fraction in [0, 1]")
        if not -1.0 < self.bright_crop_threshold < 1.0:
            self._bad("bright_crop_threshold", self.bright_crop_threshold, "a normalized value in (-1, 1)")

    def _bad(self, name: str, value: object, expected: str = "a positive value") -> None:
        raise ValueError(f"TrainConfig.{name} must be {expected}, got {value!r}")

    def learning_rate_factor(self, iteration: int) -> float:
        """Multiplier of both learning rates at ``iteration``: 1, then linear decay to 0.

        A pure function of the iteration (no scheduler state), so a resumed run continues on
        exactly the same schedule.
        """
        decay_from = self.decay_start * self.iterations
        if iteration < decay_from:
            return 1.0
        return max(0.0, 1.0 - (iteration - decay_from) / max(self.iterations - decay_from, 1.0))
