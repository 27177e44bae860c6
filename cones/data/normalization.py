"""The one intensity normalization used by training and inference (recorded in every checkpoint).

MRI intensities are in arbitrary scanner units that differ per scan. Robust percentiles inside
the foreground map each volume to [-1, 1] (the range of the generator's tanh), and the background
is pinned at exactly -1 so that the network never has to guess it. The reference code normalized
differently at training and inference time; here both call these functions with the
:class:`~cones.config.NormalizationConfig` stored in the model.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from cones.config import NormalizationConfig

__all__ = ["denormalize_volume", "foreground_mask", "normalize_volume"]


def foreground_mask(volumes: Iterable[np.ndarray], config: NormalizationConfig) -> np.ndarray:
    """Voxels above ``config.foreground_threshold`` in any of the volumes.

    The union is used so that no sequence's brain is cut where another is dark (CSF in T1, for
    example). Training and inference build it from the *source* volumes only, since inference has
    no target.

    Args:
        volumes: raw volumes of one case, all of one shape.
        config: the normalization settings.

    Returns:
        A bool array of the volumes' shape.

    Raises:
        ValueError: no volume is given, the shapes differ, or no voxel is above the threshold.
    """
    volumes = [np.asarray(volume) for volume in volumes]
    if not volumes:
        raise ValueError("volumes must not be empty")
    shapes = [volume.shape for volume in volumes]
    if len(set(shapes)) != 1:
        raise ValueError(f"volumes must share one shape, got {shapes}")
    mask = np.zeros(shapes[0], dtype=bool)
    for volume in volumes:
        mask |= np.nan_to_num(volume, nan=-np.inf) > config.foreground_threshold
    if not mask.any():
        raise ValueError(
            f"empty foreground: no voxel above foreground_threshold={config.foreground_threshold} in any sequence"
        )
    return mask


def _check_pair(volume: np.ndarray, mask: np.ndarray, name: str) -> None:
    if volume.shape != mask.shape:
        raise ValueError(f"{name}: volume shape {volume.shape} differs from mask shape {mask.shape}")
    if not mask.any():
        raise ValueError(f"{name}: the foreground mask is empty")


def normalize_volume(
    volume: np.ndarray, mask: np.ndarray, config: NormalizationConfig, name: str = "volume"
) -> np.ndarray:
    """Map the foreground's percentile range to [-1, 1] (clipped); background becomes exactly -1.

    Percentiles are taken inside ``mask`` only: the background (most of the volume) would otherwise
    pull the lower percentile to 0 and make the scale depend on the field of view.

    Args:
        volume: raw intensities.
        mask: foreground mask of the same shape (see :func:`foreground_mask`).
        config: the percentiles.
        name: what the volume is (e.g. ``"case 7 T2"``), so an error says which input is unusable.

    Returns:
        A float32 array of ``volume``'s shape with values in [-1, 1].

    Raises:
        ValueError: shape mismatch, NaN or infinite voxels, an empty mask, or a volume constant
            inside the mask (upper percentile equal to the lower one, nothing to learn from).
    """
    volume = np.asarray(volume)
    mask = np.asarray(mask, dtype=bool)
    _check_pair(volume, mask, name)
    if not np.isfinite(volume).all():
        raise ValueError(f"{name}: the volume contains NaN or infinite values")
    low, high = np.percentile(volume[mask].astype(np.float64), [config.lower_percentile, config.upper_percentile])
    if not high > low:
        raise ValueError(
            f"{name}: the volume is constant inside the foreground (percentiles {config.lower_percentile} and "
            f"{config.upper_percentile} are both {low:g})"
        )
    scale = np.float32(2.0 / (high - low))
    normalized = (volume.astype(np.float32) - np.float32(low)) * scale - np.float32(1.0)
    np.clip(normalized, -1.0, 1.0, out=normalized)
    normalized[~mask] = -1.0
    return normalized


def denormalize_volume(
    normalized: np.ndarray, mask: np.ndarray, config: NormalizationConfig, name: str = "output"
) -> np.ndarray:
    """Network output in [-1, 1] to the documented output scale: ``(y + 1) / 2 * output_scale``.

    The scanner scale of the target is unknown at inference, so the output uses a fixed, documented
    scale; values are clipped to [-1, 1] first so the output lies in [0, output_scale], and the
    background is exactly 0 like skull-stripped input.

    Args:
        normalized: the network's output volume.
        mask: the foreground mask of the sources it was synthesized from.
        config: gives ``output_scale``.
        name: what the volume is, for error messages.

    Returns:
        A float32 array of the same shape.

    Raises:
        ValueError: shape mismatch or an empty mask.
    """
    normalized = np.asarray(normalized)
    mask = np.asarray(mask, dtype=bool)
    _check_pair(normalized, mask, name)
    output = (np.clip(normalized.astype(np.float32), -1.0, 1.0) + np.float32(1.0)) * np.float32(
        config.output_scale / 2.0
    )
    output[~mask] = 0.0
    return output
