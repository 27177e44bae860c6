"""Scanner imperfections that every real acquisition carries: coil bias and Rician noise.

Receive coils are more sensitive near the head surface, which multiplies the image by a slowly
varying field; each sequence is a separate acquisition, so each gets its own field. Magnitude images
are the modulus of a complex signal with Gaussian noise in both channels, which is Rician: biased
upwards in dark tissue such as CSF on FLAIR, never negative. Synthesis models trained on real data
have learnt both, so sample data without them would be suspiciously easy.
"""

from __future__ import annotations

import numpy as np

from cones.sample_data.fields import GridAxes, smooth_random_field

__all__ = ["bias_field", "rician_noise"]

_BIAS_CORRELATION_MM = 90.0  # coil sensitivity varies over the scale of the head, not of gyri


def bias_field(rng: np.random.Generator, grid: GridAxes, strength: float) -> np.ndarray:
    """Multiplicative field ``exp(strength * f)``, ``f`` smooth and scaled to a peak magnitude of 1.

    Args:
        rng: draws the field.
        grid: output grid axes.
        strength: peak log-amplitude; 0 returns a field of ones (no draw is skipped, so the other
            random choices of a case do not depend on it).

    Returns:
        float32 array shaped like the grid, between ``exp(-strength)`` and ``exp(strength)``.
    """
    field = smooth_random_field(rng, grid, _BIAS_CORRELATION_MM)
    peak = float(np.abs(field).max())
    return np.exp(np.float32(strength / peak if peak > 0 else 0.0) * field)


def rician_noise(rng: np.random.Generator, signal: np.ndarray, sigma: float) -> np.ndarray:
    """Magnitude of the signal plus complex Gaussian noise: ``sqrt((S + n_re)^2 + n_im^2)``, ``n ~ N(0, sigma^2)``.

    Args:
        rng: draws the noise.
        signal: noise-free magnitude, any shape.
        sigma: standard deviation of each quadrature channel, in the units of ``signal``.

    Returns:
        float32 array shaped like ``signal``.
    """
    scale = np.float32(sigma)
    real = signal + scale * rng.standard_normal(signal.shape, dtype=np.float32)
    imaginary = scale * rng.standard_normal(signal.shape, dtype=np.float32)
    return np.sqrt(real**2 + imaginary**2, dtype=np.float32)
