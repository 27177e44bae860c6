"""Spectral analysis: azimuthal integration on images with known spectra, averaging, distances."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from cones.metrics import HIGH_FREQUENCY, SpectrumAccumulator, profile_distance, profile_frequencies, radial_profile


@pytest.mark.parametrize(("cycles_x", "cycles_y"), [(10, 0), (0, 7), (12, 16), (3, 4)])
def test_a_pure_sinusoid_peaks_at_its_radius(cycles_x: int, cycles_y: int) -> None:
    size = 64
    y, x = np.mgrid[0:size, 0:size]
    image = 0.5 + 0.4 * np.cos(2 * np.pi * (cycles_x * x + cycles_y * y) / size)
    profile, _ = radial_profile(image, bins=size // 2)
    radius = np.hypot(cycles_x, cycles_y)
    peaks = np.argsort(profile)[::-1][:2]
    assert sorted(peaks.tolist()) == sorted([0, round(radius)])  # the DC term and the sinusoid's ring
    assert profile_frequencies(size // 2)[round(radius)] == pytest.approx(round(radius) / size)


def test_a_sinusoid_on_a_non_square_slice_peaks_at_its_frequency_in_cycles_per_pixel() -> None:
    y, _ = np.mgrid[0:48, 0:64]
    image = np.cos(2 * np.pi * 8 * y / 48)  # 8 cycles over 48 rows: 1/6 cycle per pixel
    profile, _ = radial_profile(image, bins=24)
    frequencies = profile_frequencies(24)
    assert frequencies[int(np.nanargmax(profile))] == pytest.approx(1 / 6)


def test_rings_cover_every_direction_once() -> None:
    _, counts = radial_profile(np.zeros((64, 64)), bins=32)
    assert counts[0] == 1 and counts.sum() < 64 * 64  # DC alone; the corners beyond 0.5 cycles/pixel are out
    assert np.all(counts[1:] >= 4)
    profile, counts = radial_profile(np.zeros((16, 16)), bins=32)
    assert np.isnan(profile[counts == 0]).all() and (counts == 0).any()


def test_accumulator_averages_slices_of_any_size_one_vote_each() -> None:
    rng = np.random.default_rng(1)
    large, small = rng.random((3, 64, 64)), rng.random((2, 16, 16))
    accumulator = SpectrumAccumulator(bins=32)
    accumulator.add(large)
    accumulator.add(small)
    assert accumulator.slices == 5
    profiles = np.array([radial_profile(image, 32)[0] for image in [*large, *small]])
    np.testing.assert_allclose(accumulator.profile, np.nanmean(profiles, axis=0))
    # the rings a 16 x 16 slice lacks are averaged over the large slices only
    lacking = np.isnan(profiles[3])
    assert lacking.any()
    np.testing.assert_allclose(accumulator.profile[lacking], profiles[:3, lacking].mean(axis=0))
    assert np.isnan(SpectrumAccumulator(bins=4).profile).all() and SpectrumAccumulator(bins=4).slices == 0


def test_blurring_lowers_only_the_high_frequencies() -> None:
    rng = np.random.default_rng(0)
    sharp = rng.random((8, 64, 64))
    blurred = np.stack([gaussian_filter(image, 1.5) for image in sharp])
    spectra = {}
    for name, stack in (("sharp", sharp), ("blurred", blurred)):
        spectra[name] = SpectrumAccumulator(bins=32)
        spectra[name].add(stack)
    assert spectra["sharp"].slices == 8
    frequencies = spectra["sharp"].frequencies
    sharp_profile, blurred_profile = spectra["sharp"].profile, spectra["blurred"].profile
    assert sharp_profile[0] == pytest.approx(blurred_profile[0], rel=1e-6)  # blurring keeps the mean
    assert np.all(blurred_profile[frequencies >= HIGH_FREQUENCY] < sharp_profile[frequencies >= HIGH_FREQUENCY] - 1)
    high = profile_distance(sharp_profile, blurred_profile, frequencies, HIGH_FREQUENCY)
    assert high > profile_distance(sharp_profile, blurred_profile, frequencies) > 0
    assert profile_distance(sharp_profile, sharp_profile, frequencies) == 0


def test_spectrum_inputs_are_validated() -> None:
    with pytest.raises(ValueError, match="image must be 2D"):
        radial_profile(np.zeros((2, 8, 8)), bins=4)
    with pytest.raises(ValueError, match="bins must be a positive integer"):
        SpectrumAccumulator(bins=0)
    with pytest.raises(ValueError, match="bins must be a positive integer"):
        radial_profile(np.zeros((8, 8)), bins=2.5)
    with pytest.raises(ValueError, match="NaN or infinite"):
        radial_profile(np.full((8, 8), np.nan), bins=4)
    with pytest.raises(ValueError, match=r"\(N, H, W\) stack"):
        SpectrumAccumulator(bins=4).add(np.zeros((8, 8)))
    with pytest.raises(ValueError, match="share one length"):
        profile_distance(np.zeros(3), np.zeros(4), np.zeros(3))
    with pytest.raises(ValueError, match="no frequency bin"):
        profile_distance(np.zeros(3), np.zeros(3), np.zeros(3), from_frequency=1.0)
