"""The head around a skull-stripped brain: CSF, skull and scalp shells, their MR signal, and the gain to image them at.

Raw clinical scans show what BraTS removed: cerebrospinal fluid around the brain, the skull (dark
cortical bone, the inner and outer tables, with bright fatty marrow, the diploe, between them) and
the scalp (subcutaneous fat under the skin). Brain extraction and registration are tested on
exactly these structures, so a raw sample case needs them with the contrasts a scanner gives them.

Each layer is a shell at a distance from the brain's hull (the brain with its sulci closed; they fill
with CSF). Every layer's thickness varies smoothly over the head, so the skull is brain-shaped but no
offset copy of the brain, and the layer boundaries are ramps one voxel wide, the partial-volume effect
of a scanner voxel straddling them. The tissues are imaged with the same signal equations and
protocols as the brain (:mod:`cones.sample_data.signal`), so their contrast to the brain is right in
every sequence: fat bright on T1, intermediate-bright on T2, bright-ish on FLAIR; bone black
everywhere. Relaxation times at 3 T: Gold et al. 2004 (AJR 183:343, fat and muscle), Du et al. 2010
(JMR 207:304, cortical bone). Signals are at unit receiver gain; :func:`fit_gains` recovers the gain
and coil bias a case's brain was imaged with, so the head can be imaged at the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from cones.sample_data.case import SampleCase
from cones.sample_data.fields import GridAxes, smooth_random_field
from cones.sample_data.signal import (
    PROTOCOLS,
    TISSUE_PROPERTIES,
    Protocol,
    Relaxation,
    Tissue,
    inversion_recovery,
    mixed_signal,
    spin_echo,
)
from cones.sequences import Sequence

__all__ = [
    "HEAD_TISSUE_PROPERTIES",
    "MAX_HEAD_THICKNESS_MM",
    "Gain",
    "Head",
    "HeadTissue",
    "build_head",
    "fit_gains",
    "tissue_signal",
]


class HeadTissue(StrEnum):
    """Tissues of the head outside the brain, from the inside out."""

    CSF = "csf"
    BONE = "bone"
    MARROW = "marrow"
    FAT = "fat"
    SKIN = "skin"


HEAD_TISSUE_PROPERTIES: MappingProxyType[HeadTissue, Relaxation] = MappingProxyType(
    {
        HeadTissue.CSF: TISSUE_PROPERTIES[Tissue.CSF],
        # Cortical bone holds little water with a T2 below a millisecond: no signal at any clinical echo time.
        HeadTissue.BONE: Relaxation(0.05, 250.0, 0.5),
        # Diploe: fatty marrow between trabeculae, which take about a quarter of the volume.
        HeadTissue.MARROW: Relaxation(0.70, 400.0, 110.0),
        # The apparent T2 of fat on the fast spin echo T2 and FLAIR clinics use (J-coupling keeps fat bright
        # there); a single spin echo measures about half of it.
        HeadTissue.FAT: Relaxation(0.90, 380.0, 133.0),
        HeadTissue.SKIN: Relaxation(0.75, 1100.0, 45.0),
    }
)


@dataclass(frozen=True)
class _Layer:
    tissue: HeadTissue
    thickness_mm: float
    group: int  # layers of one group (CSF, skull, scalp) thicken and thin together


_LAYERS = (
    _Layer(HeadTissue.CSF, 2.5, 0),  # beyond the hull, which itself lies about 1.5 mm outside the brain
    _Layer(HeadTissue.BONE, 2.0, 1),  # inner table
    _Layer(HeadTissue.MARROW, 2.5, 1),
    _Layer(HeadTissue.BONE, 1.5, 1),  # outer table
    _Layer(HeadTissue.FAT, 4.0, 2),
    _Layer(HeadTissue.SKIN, 2.0, 2),
)
_GROUPS = 3
_THICKNESS_VARIATION = 0.25  # standard deviation of each group's relative thickness over the head
_THICKNESS_RANGE = (0.5, 1.5)  # relative thickness never leaves this range, so no layer vanishes
_VARIATION_CORRELATION_MM = 30.0  # thickness changes over a few centimetres, as between skull regions
_HULL_BLUR_MM = 2.0  # sulci up to about 5 mm wide fill with CSF up to the hull
_HULL_LEVEL = 0.25  # below 1/2, so the blur closes gaps; a flat surface moves out by 0.7 blur widths
_HEALTHY = (Tissue.CSF, Tissue.GREY_MATTER, Tissue.WHITE_MATTER)
_GAIN_SAMPLE_STRIDE = 8  # every 8th healthy brain voxel: plenty for 10 coefficients, 8 times faster
_GAIN_SCALE_MM = 100.0  # coordinate unit of the gain quadratic, which keeps its least-squares fit well conditioned
MAX_HEAD_THICKNESS_MM = _THICKNESS_RANGE[1] * sum(layer.thickness_mm for layer in _LAYERS)
"""The farthest the head reaches beyond the brain's hull, in mm."""


@dataclass(frozen=True)
class Head:
    """The head's voxels outside the brain and their noise-free signal at unit receiver gain.

    Attributes:
        voxels: index arrays (as from ``np.nonzero``) of the voxels outside the brain that hold head tissue.
        signals: per sequence, the (N,) float32 signal of those voxels, in units of pure water with full recovery.
    """

    voxels: tuple[np.ndarray, np.ndarray, np.ndarray]
    signals: dict[Sequence, np.ndarray]


def tissue_signal(protocol: Protocol, tissue: HeadTissue) -> float:
    """Signal of pure ``tissue`` under ``protocol``, in units of pure water with full recovery (no gadolinium)."""
    properties = HEAD_TISSUE_PROPERTIES[tissue]
    pd, t1_ms, t2_ms = properties.proton_density, properties.t1_ms, properties.t2_ms
    if protocol.inversion_ms is None:
        return float(spin_echo(pd, t1_ms, t2_ms, protocol.repetition_ms, protocol.echo_ms))
    return float(inversion_recovery(pd, t1_ms, t2_ms, protocol.repetition_ms, protocol.echo_ms, protocol.inversion_ms))


def build_head(rng: np.random.Generator, brain: np.ndarray, spacing_mm: float) -> Head:
    """Grow CSF, skull and scalp around ``brain`` and image them with every sequence's protocol.

    Args:
        rng: draws the thickness variation of the layers.
        brain: (X, Y, Z) boolean brain mask on an isotropic grid with room for the head around it
            (:data:`MAX_HEAD_THICKNESS_MM`); where it touches a face of the grid, the head is cut
            there, as the anatomy beyond it (e.g. the neck) would be.
        spacing_mm: voxel size of that grid.

    Returns:
        The head's voxels and signals; every other voxel outside the brain is air.

    Raises:
        ValueError: ``brain`` is not a non-empty 3D mask.
    """
    if brain.ndim != 3 or not brain.any():
        raise ValueError(f"brain must be a non-empty 3D mask, got shape {brain.shape} with {int(brain.sum())} voxels")
    distance = _distance_outside(_hull(brain, spacing_mm), spacing_mm)
    voxels = np.nonzero(~brain & (distance < MAX_HEAD_THICKNESS_MM + spacing_mm))
    distance = distance[voxels]
    grid = GridAxes(*(np.arange(size) * spacing_mm for size in brain.shape))
    relative = [
        np.clip(
            1.0 + smooth_random_field(rng, grid, _VARIATION_CORRELATION_MM, _THICKNESS_VARIATION)[voxels],
            *_THICKNESS_RANGE,
        )
        for _ in range(_GROUPS)
    ]
    signals = {sequence: np.zeros(distance.shape, dtype=np.float32) for sequence in Sequence}
    boundary = np.zeros(distance.shape, dtype=np.float32)
    for layer, beyond in zip(_LAYERS, (*_LAYERS[1:], None), strict=True):
        boundary += np.float32(layer.thickness_mm) * relative[layer.group]
        inside = np.clip((boundary - distance) / np.float32(spacing_mm) + np.float32(0.5), 0.0, 1.0)
        # Telescoping sum: a voxel inside boundaries k..n gets layer k's signal once the outer layers' cancel.
        for sequence, signal in signals.items():
            step = tissue_signal(PROTOCOLS[sequence], layer.tissue)
            step -= 0.0 if beyond is None else tissue_signal(PROTOCOLS[sequence], beyond.tissue)
            signal += np.float32(step) * inside
    for signal in signals.values():
        np.maximum(signal, 0.0, out=signal)  # float32 rounding leaves -1e-9 where the sum cancels to black bone
    return Head(voxels, signals)


@dataclass(frozen=True)
class Gain:
    """Receiver gain times coil bias: exp of a quadratic in voxel indices, clipped to the range it has in the brain.

    Attributes:
        coefficients: the quadratic's 10 coefficients (1, x, y, z, x², y², z², xy, xz, yz).
        centre: voxel index (3,) where x, y, z are 0.
        scale: x, y, z per voxel.
        log_range: (low, high) of the log gain in the brain.
        typical: the median gain in the brain, which sets the scale of the noise.
    """

    coefficients: np.ndarray
    centre: np.ndarray
    scale: float
    log_range: tuple[float, float]
    typical: float

    def at(self, index: np.ndarray) -> np.ndarray:
        """The gain at (N, 3) voxel indices, float32 (N,)."""
        terms = _quadratic_terms(*((index - self.centre) * self.scale).T)
        log_gain = sum(coefficient * term for coefficient, term in zip(self.coefficients, terms, strict=True))
        return np.exp(np.clip(log_gain, *self.log_range)).astype(np.float32)


def fit_gains(case: SampleCase, spacing_mm: float) -> dict[Sequence, Gain]:
    """Per sequence, the gain the brain was imaged with, as a smooth field that extends over the head.

    The ratio of the brain's healthy voxels to their noise-free signal is that gain; its logarithm is
    fitted by a quadratic and clipped to the range it takes in the brain, so the scalp continues the
    brain's shading without a seam and without inventing a stronger one.

    Args:
        case: the case whose brain was imaged.
        spacing_mm: its voxel size.

    Returns:
        Per sequence, the gain as a function of voxel indices on the case's grid (or beyond it).
    """
    healthy = case.brain_mask & (case.contrast_mm == 0) & (sum(case.tissues[tissue] for tissue in _HEALTHY) > 0.999)
    index = np.argwhere(healthy)[::_GAIN_SAMPLE_STRIDE]
    fractions = {tissue: case.tissues[tissue][tuple(index.T)] for tissue in _HEALTHY}
    centre, scale = index.mean(axis=0), spacing_mm / _GAIN_SCALE_MM
    design = np.stack(_quadratic_terms(*((index - centre) * scale).T), axis=1)
    gains = {}
    for sequence in Sequence:
        expected = mixed_signal(PROTOCOLS[sequence], fractions, {})
        bright = expected > 0.5 * np.median(expected)  # FLAIR's CSF has no signal to measure a gain on
        log_ratio = np.log(case.images[sequence][tuple(index[bright].T)] / expected[bright])
        coefficients = np.linalg.lstsq(design[bright], log_ratio, rcond=None)[0]
        fitted = design[bright] @ coefficients
        log_range = (float(fitted.min()), float(fitted.max()))
        gains[sequence] = Gain(coefficients, centre, scale, log_range, float(np.exp(np.median(fitted))))
    return gains


def _quadratic_terms(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> list[np.ndarray]:
    return [np.ones_like(x), x, y, z, x * x, y * y, z * z, x * y, x * z, y * z]


def _hull(brain: np.ndarray, spacing_mm: float) -> np.ndarray:
    """The brain with its sulci closed and holes filled: the surface the arachnoid and the skull follow.

    A Gaussian blur thresholded below one half closes gaps narrower than about two blur widths (a
    ball closing does the same, but its distance transforms take several times longer on a 1 mm head).
    """
    blurred = ndimage.gaussian_filter(brain.astype(np.float32), _HULL_BLUR_MM / spacing_mm)
    return ndimage.binary_fill_holes(blurred > _HULL_LEVEL)


def _distance_outside(mask: np.ndarray, spacing_mm: float) -> np.ndarray:
    """Millimetres from each voxel to the nearest voxel of ``mask`` (0 inside it), float32 (X, Y, Z).

    SimpleITK's multi-threaded Maurer transform gives the same distances as scipy's, four times faster.
    """
    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    image.SetSpacing([spacing_mm] * 3)
    distance = sitk.SignedMaurerDistanceMap(image, insideIsPositive=False, squaredDistance=False, useImageSpacing=True)
    return np.maximum(sitk.GetArrayViewFromImage(distance), 0.0).astype(np.float32)
