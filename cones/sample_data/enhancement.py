"""Where gadolinium sits after injection: the tumour's leaky rim, and normal vessels and meninges.

A T1ce in which only the tumour enhances is easy to tell from a real one, and it would let a synthesis
model get away with learning "bright = tumour". Real post-contrast scans also light up cortical veins
and the dura at the brain surface, so sample data does too: vessels are thin tubes along the
intersection of the zero level sets of two smooth random fields (which are curves in 3D), weighted
towards CSF-filled sulci where the large vessels run; the meninges are the outermost voxel layer of the
brain mask, at the partial-volume fraction a 1 mm thick layer occupies in a voxel.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from cones.sample_data.fields import GridAxes, smooth_random_field

__all__ = ["ENHANCING_TUMOUR_MM", "normal_enhancement"]

ENHANCING_TUMOUR_MM = 0.5  # extravascular gadolinium in a glioblastoma rim, mmol/L
_BLOOD_MM = 1.0  # intravascular gadolinium during a standard 0.1 mmol/kg post-contrast scan
_MENINGES_MM = 0.4
_MENINGES_THICKNESS_MM = 1.0
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
    surface = (brain & ~ndimage.binary_erosion(brain))[brain]
    meninges = surface * np.float32(_MENINGES_MM * min(1.0, _MENINGES_THICKNESS_MM / spacing_mm))
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
