"""Training augmentation: geometry on all channels, intensity on the sources only.

Spatial transforms (left-right flip, small in-plane rotation) must move sources, target and mask
together or the pairs stop matching. Intensity changes (gamma, contrast, blur, noise) imitate the
scanner variation of the *inputs*; applying them to the target would teach the model to
reproduce noise. Background stays exactly -1, as the normalization defines it.

Spatial transforms leave the crop's offset (its position in the slice, which drives the
positional encoding) unchanged: the flipped or rotated crop is treated as a crop of another head,
positioned or oriented slightly differently in the same slice frame, which is precisely the
variation the augmentation is meant to simulate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from cones.config import JsonConfig

__all__ = ["AugmentationConfig", "augment_sample"]


@dataclass(frozen=True)
class AugmentationConfig(JsonConfig):
    """Probabilities and ranges of the augmentations (reference code: flips, rotation, gamma, contrast, blur, noise).

    Setting a probability to 0, a range to ``(1, 1)`` (gamma, contrast) or ``(0, 0)`` (blur), or
    ``noise_std``/``max_rotation_degrees`` to 0 switches that augmentation off.

    Attributes:
        flip_probability: chance of a left-right flip (the last array axis, the patient's left-right
            in canonical axial slices): brains are roughly symmetric, upside-down ones are not.
        max_rotation_degrees: in-plane rotation drawn from [-max, max]; small (at most 45), since
            slices come from co-registered, roughly aligned heads.
        gamma_range: exponent applied to each source rescaled to [0, 1].
        contrast_range: factor applied around each source's foreground mean.
        noise_std: maximum std of the Gaussian noise added to each source's foreground (in the
            normalized [-1, 1] units).
        blur_sigma_range: Gaussian blur sigma in pixels (0: none).
        intensity_probability: chance that each intensity augmentation is applied to a sample.
    """

    flip_probability: float = 0.5
    max_rotation_degrees: float = 10.0
    gamma_range: tuple[float, float] = (0.8, 1.25)
    contrast_range: tuple[float, float] = (0.9, 1.1)
    noise_std: float = 0.03
    blur_sigma_range: tuple[float, float] = (0.0, 0.6)
    intensity_probability: float = 0.3

    def __post_init__(self) -> None:
        for name in ("flip_probability", "intensity_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"AugmentationConfig.{name} must be in [0, 1], got {getattr(self, name)!r}")
        for name, smallest in (("gamma_range", 1e-3), ("contrast_range", 1e-3), ("blur_sigma_range", 0.0)):
            value = getattr(self, name)
            if len(value) != 2 or not smallest <= value[0] <= value[1]:
                raise ValueError(
                    f"AugmentationConfig.{name} must be (low, high) with {smallest} <= low <= high, got {value!r}"
                )
        if not 0.0 <= self.max_rotation_degrees <= 45.0:
            raise ValueError(
                f"AugmentationConfig.max_rotation_degrees must be in [0, 45], got {self.max_rotation_degrees!r}"
            )
        if self.noise_std < 0:
            raise ValueError(f"AugmentationConfig.noise_std must be >= 0, got {self.noise_std!r}")


def _spatial(
    sources: np.ndarray, target: np.ndarray, mask: np.ndarray, config: AugmentationConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if rng.random() < config.flip_probability:
        sources, target, mask = sources[..., ::-1], target[..., ::-1], mask[..., ::-1]
    angle = rng.uniform(-config.max_rotation_degrees, config.max_rotation_degrees)
    if abs(angle) > 1e-3:
        rotate = {"angle": angle, "axes": (-2, -1), "reshape": False}
        sources = ndimage.rotate(sources, order=1, cval=-1.0, **rotate)
        target = ndimage.rotate(target, order=1, cval=-1.0, **rotate)
        mask = ndimage.rotate(mask.astype(np.uint8), order=0, cval=0, **rotate) > 0
    mask = np.ascontiguousarray(mask)
    sources, target = np.array(sources, dtype=np.float32), np.array(target, dtype=np.float32)
    sources[:, ~mask] = -1.0  # interpolation blends the -1 background into the edge voxels
    target[:, ~mask] = -1.0
    return sources, target, mask


def _intensity(sources: np.ndarray, mask: np.ndarray, config: AugmentationConfig, rng: np.random.Generator) -> None:
    """Augment each source channel in place, with its own random parameters (scanners differ per sequence)."""
    for channel in sources:
        unit = (channel + 1.0) / 2.0
        applied = [rng.random() < config.intensity_probability for _ in range(4)]
        if applied[0]:
            unit = unit ** rng.uniform(*config.gamma_range)
        if applied[1] and mask.any():
            mean = unit[mask].mean()
            unit = mean + (unit - mean) * rng.uniform(*config.contrast_range)
        if applied[2]:
            unit = ndimage.gaussian_filter(unit, sigma=rng.uniform(*config.blur_sigma_range), mode="nearest")
        if applied[3]:
            unit = unit + rng.normal(0.0, rng.uniform(0.0, config.noise_std) / 2.0, size=unit.shape)
        if any(applied):  # untouched channels keep their exact values (no rescaling round-off)
            channel[...] = np.clip(unit, 0.0, 1.0) * 2.0 - 1.0
            channel[~mask] = -1.0


def augment_sample(
    sources: np.ndarray, target: np.ndarray, mask: np.ndarray, config: AugmentationConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Augment one training sample (a crop); the inputs are not modified.

    Args:
        sources: ``(C_s, h, w)`` normalized sources.
        target: ``(C_t, h, w)`` normalized targets (spatial transforms only).
        mask: ``(h, w)`` foreground mask (spatial transforms only, nearest neighbour).
        config: what to apply.
        rng: the sample's random generator; the caller seeds it (e.g. from seed and iteration) so
            a run is reproducible without any global seeding.

    Returns:
        The augmented ``(sources, target, mask)``: float32, float32 and bool, shapes unchanged,
        background exactly -1 in sources and target.

    Raises:
        ValueError: the shapes do not fit together.
    """
    if sources.ndim != 3 or target.ndim != 3 or sources.shape[1:] != mask.shape or target.shape[1:] != mask.shape:
        raise ValueError(
            f"expected sources (C_s, h, w), target (C_t, h, w) and mask (h, w), got {sources.shape}, "
            f"{target.shape} and {mask.shape}"
        )
    sources, target, mask = _spatial(sources, target, np.asarray(mask, dtype=bool), config, rng)
    _intensity(sources, mask, config, rng)
    return sources, target, mask
