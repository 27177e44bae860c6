"""Spectral analysis of synthesized images: azimuthally integrated log-magnitude spectra (paper Fig. 4).

CNN decoders with upsampling layers under-produce high spatial frequencies (the spectral bias of
Durall et al., 2020); the paper's argument for neural fields is that they do not. The evidence is a
1D profile: the 2D Fourier magnitude of each slice, on a log scale, averaged over rings of equal
radial frequency, then averaged over all slices of all cases. A synthesized profile that falls
below the real one at high frequencies is the bias made visible; :func:`profile_distance` turns the
gap into a number.
"""

from __future__ import annotations

import numpy as np

__all__ = ["HIGH_FREQUENCY", "SpectrumAccumulator", "profile_distance", "profile_frequencies", "radial_profile"]

HIGH_FREQUENCY = 0.25
"""Cycles per pixel from which a frequency counts as high: the upper half of the resolvable band."""

_LOG_FLOOR = 1e-6
"""Added to the magnitude before the log, so empty frequencies (an all-zero image) stay finite."""


def _check_bins(bins: int) -> None:
    if not isinstance(bins, int | np.integer) or bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins!r}")


def profile_frequencies(bins: int) -> np.ndarray:
    """Centre frequency (cycles per pixel) of each bin: ``i / (2 bins)``, from 0 up to just below 0.5.

    With ``bins = N / 2`` for ``N x N`` slices, bin ``i`` holds the ring of ``i`` cycles per image
    (the paper's ``k = 0 ... M/2 - 1``).
    """
    _check_bins(bins)
    return np.arange(bins) / (2.0 * bins)


def _ring_index(shape: tuple[int, int], bins: int) -> np.ndarray:
    """For every 2D FFT coefficient, the bin of its radial frequency (``bins`` and above: outside)."""
    rows, cols = np.fft.fftfreq(shape[0]), np.fft.fftfreq(shape[1])
    radius = np.hypot(rows[:, None], cols[None, :])
    return np.rint(radius * 2.0 * bins).astype(np.int64).ravel()


def radial_profile(image: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Azimuthal average of ``log(|FFT2(image)| + 1e-6)`` in ``bins`` rings up to 0.5 cycles per pixel.

    Frequencies beyond 0.5 cycles per pixel (the corners of the 2D spectrum) are left out: only
    whole rings are averaged, so every bin sees every direction.

    Args:
        image: one 2D slice.
        bins: number of rings (see :func:`profile_frequencies`).

    Returns:
        ``(profile, counts)``: the mean log magnitude per ring (NaN for a ring with no coefficient,
        which happens when ``bins`` exceeds half the image size) and the number of coefficients.

    Raises:
        ValueError: ``image`` is not 2D, holds NaN or infinite values, or ``bins`` is not positive.
    """
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 2:
        raise ValueError(f"image must be 2D, got shape {image.shape}")
    if not np.isfinite(image).all():
        raise ValueError("image holds NaN or infinite values; its spectrum is undefined")
    _check_bins(bins)
    index = _ring_index(image.shape, bins)
    inside = index < bins
    log_magnitude = np.log(np.abs(np.fft.fft2(image)).ravel() + _LOG_FLOOR)
    counts = np.bincount(index[inside], minlength=bins)
    sums = np.bincount(index[inside], weights=log_magnitude[inside], minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts, counts


class SpectrumAccumulator:
    """Averages radial profiles over many slices (of many cases), one slice one vote.

    Args:
        bins: number of frequency rings; ``min(H, W) // 2`` of the slices gives one ring per cycle
            per image.

    Attributes:
        frequencies: centre frequency of each ring (see :func:`profile_frequencies`).
        slices: slices added so far.

    Example:
        >>> accumulator = SpectrumAccumulator(bins=60)
        >>> accumulator.add(np.random.default_rng(0).random((4, 120, 120)))
        >>> accumulator.profile.shape
        (60,)
    """

    def __init__(self, bins: int) -> None:
        self.frequencies = profile_frequencies(bins)
        self.bins = bins
        self.slices = 0
        self._sums = np.zeros(bins)
        self._contributions = np.zeros(bins, dtype=np.int64)

    def add(self, slices: np.ndarray) -> None:
        """Add the profile of every slice of a ``(N, H, W)`` stack.

        Slices may differ in size between calls (cases of different grids): bins are in cycles
        per pixel, and a ring a small slice does not have is left out of its average only.
        """
        slices = np.asarray(slices)
        if slices.ndim != 3:
            raise ValueError(f"slices must be a (N, H, W) stack, got shape {slices.shape}")
        for image in slices:
            profile, counts = radial_profile(image, self.bins)
            self._sums[counts > 0] += profile[counts > 0]
            self._contributions[counts > 0] += 1
            self.slices += 1

    @property
    def profile(self) -> np.ndarray:
        """Mean profile over the slices added (NaN where no slice had a coefficient in a ring)."""
        return np.divide(self._sums, self._contributions, out=np.full(self.bins, np.nan), where=self._contributions > 0)


def profile_distance(
    reference: np.ndarray, other: np.ndarray, frequencies: np.ndarray, from_frequency: float = 0.0
) -> float:
    """Mean absolute difference of two log-magnitude profiles at and above ``from_frequency``.

    On a log scale this is the typical factor (``exp`` of it) by which the synthesized images'
    Fourier magnitudes miss the real ones; ``from_frequency=HIGH_FREQUENCY`` isolates the fine
    detail where spectral bias shows.

    Raises:
        ValueError: the profiles and frequencies differ in length, or no bin is left to compare.
    """
    reference, other, frequencies = (np.asarray(a, dtype=float) for a in (reference, other, frequencies))
    if not reference.shape == other.shape == frequencies.shape:
        raise ValueError(
            f"profiles and frequencies must share one length, got {reference.shape}, {other.shape}, {frequencies.shape}"
        )
    used = (frequencies >= from_frequency) & np.isfinite(reference) & np.isfinite(other)
    if not used.any():
        raise ValueError(f"no frequency bin at or above {from_frequency} to compare")
    return float(np.abs(reference[used] - other[used]).mean())
