"""Metrics: similarity on [0, 1] images, own-percentile scores of raw volumes, regions, paired tests, spectra."""

from __future__ import annotations

from cones.metrics.own_scale import MIN_SLICE_BRAIN_VOXELS, normalize_by_own_percentiles, own_scale_scores
from cones.metrics.regions import Metric, Region, bounding_box_mask, evaluation_regions, region_scores
from cones.metrics.similarity import SSIM_WINDOW, check_pair, mean_absolute_error, psnr, rescale_pair, ssim, ssim_map
from cones.metrics.spectrum import (
    HIGH_FREQUENCY,
    SpectrumAccumulator,
    profile_distance,
    profile_frequencies,
    radial_profile,
)
from cones.metrics.statistics import WilcoxonResult, mean_and_std, wilcoxon_signed_rank

__all__ = [
    "HIGH_FREQUENCY",
    "MIN_SLICE_BRAIN_VOXELS",
    "SSIM_WINDOW",
    "Metric",
    "Region",
    "SpectrumAccumulator",
    "WilcoxonResult",
    "bounding_box_mask",
    "check_pair",
    "evaluation_regions",
    "mean_absolute_error",
    "mean_and_std",
    "normalize_by_own_percentiles",
    "own_scale_scores",
    "profile_distance",
    "profile_frequencies",
    "psnr",
    "radial_profile",
    "region_scores",
    "rescale_pair",
    "ssim",
    "ssim_map",
    "wilcoxon_signed_rank",
]
