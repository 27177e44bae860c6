"""Where gadolinium sits after injection: the tumour's leaky rim, and normal vessels and meninges.

A T1ce in which only the tumour enhances is easy to tell from a real one, and it would let a synthesis
model get away with learning "bright = tumour". Real post-contrast scans also light up cortical veins
and the dura that skull stripping leaves behind, so sample data does too: vessels are thin tubes along
the intersection of the zero level sets of two smooth random fields (which are curves in 3D), weighted
towards CSF-filled sulci where the large vessels run; dura remnants are patches of the outermost voxel
layer of the brain mask (where a smooth random field is high), at the partial-volume fraction a 1 mm
thick layer occupies in a voxel. Skull stripping removes most of the dura, so only a fraction of the
surface enhances: in the real co-registered scans the brain surface is darker than the brain's median
in T1ce, not brighter.

The concentrations are calibrated against real T1ce (the BraTS-space scans of ``../shared/data``): there
the brightest 0.5 % of the brain sits at 1.6 to 2.1 times the brain's median, and in the labelled case
the enhancing tumour's median at 1.6 times. Brighter enhancement would make the percentile normalization push
the generated parenchyma far below where real parenchyma lands, and a model trained on such cases
would darken real scans.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from cones.sample_data.fields import GridAxes, smooth_random_field

__all__ = ["ENHANCING_TUMOUR_MM", "normal_enhancement"]

ENHANCING_TUMOUR_MM = 0.2  # extravascular gadolinium in a glioblastoma rim, mmol/L (rim ~1.7x the median)
_BLOOD_MM = 1.0  # intravascular gadolinium during a standard 0.1 mmol/kg post-contrast scan
_MENINGES_MM = 0.2
_MENINGES_THICKNESS_MM = 1.0
_MENINGES_SURFACE_SHARE = 0.15  # share of the brain surface where dura survives skull stripping
_MENINGES_CORRELATION_MM = 20.0  # size of those patches
_VESSEL_CORRELATION_MM = 14.0  # length scale of the vessels' meandering
_VESSEL_RADIUS_MM = 1.0
_VESSEL_PARENCHYMA_WEIGHT = 0.3  # vessels are fainter where no CSF surrounds them


def normal_enhancement(
    rng: np.random.Generator, grid: GridAxes, brain: np.ndarray, csf_share: np.ndarray, spacing_mm: float
) -> np.ndarray:
    """Gadolinium concentration (mmol/L) in normal structures, for the voxels of the brain mask.

    Args:
        rng: draws the vessel paths.
        grid: output grid axes.
        brain: boolean brain mask (X, Y, Z).
        csf_share: CSF fraction of each brain voxel, (N,) in the order of ``brain``'s True voxels.
        spacing_mm: voxel size; thin structures occupy less of a larger voxel.

    Returns:
        (N,) float32 concentrations, 0 in most voxels.
    """
    vessels = _vessel_fraction(rng, grid, brain, spacing_mm)
    vessels *= _VESSEL_PARENCHYMA_WEIGHT + (1 - _VESSEL_PARENCHYMA_WEIGHT) * csf_share
    meninges = _dura_remnants(rng, grid, brain) * np.float32(
        _MENINGES_MM * min(1.0, _MENINGES_THICKNESS_MM / spacing_mm)
    )
    return np.maximum(np.float32(_BLOOD_MM) * vessels, meninges).astype(np.float32)


def _vessel_fraction(rng: np.random.Generator, grid: GridAxes, brain: np.ndarray, spacing_mm: float) -> np.ndarray:
    """Volume fraction of vessel in each brain voxel: a smooth tube profile around the curves f1 = f2 = 0.

    The fields have unit variance and vary by about one unit per correlation length, so a level
    ``|f| < r / L`` is a band of half-width about ``r``; the profile is widened to at least half a voxel
    so that coarse grids still show the larger vessels, dimmed by the fraction of the voxel they fill.
    """
    first, second = (smooth_random_field(rng, grid, _VESSEL_CORRELATION_MM)[brain] for _ in range(2))
    radius_mm = max(_VESSEL_RADIUS_MM, spacing_mm / 2)
    width = np.float32(radius_mm / _VESSEL_CORRELATION_MM)
    profile = np.clip(1.0 - (first**2 + second**2) / width**2, 0.0, 1.0)
    return (profile * np.float32(min(1.0, (_VESSEL_RADIUS_MM / radius_mm) ** 2))).astype(np.float32)


def _dura_remnants(rng: np.random.Generator, grid: GridAxes, brain: np.ndarray) -> np.ndarray:
    """(N,) float32: 1 on the patches of the brain surface that keep enhancing dura, 0 elsewhere."""
    surface = (brain & ~ndimage.binary_erosion(brain))[brain]
    field = smooth_random_field(rng, grid, _MENINGES_CORRELATION_MM)[brain]
    threshold = np.quantile(field[surface], 1.0 - _MENINGES_SURFACE_SHARE) if surface.any() else np.inf
    return (surface & (field >= threshold)).astype(np.float32)
