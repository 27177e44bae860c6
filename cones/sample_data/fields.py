"""Smooth random fields on a voxel grid, cheap enough for 240 x 240 x 155 volumes.

Anatomical deformation, coil bias, tumour lobulation and vessel paths all need fields that vary
smoothly over a chosen length. Drawing independent Gaussian coefficients on a coarse lattice and
blending them with separable Gaussian weights gives exactly that, and because the weights factor per
axis the full-resolution field is three small matrix products instead of a 3D interpolation. Each
axis' weights are scaled to unit squared sum, so the field has unit variance at every voxel and
``amplitude`` is its standard deviation.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["GridAxes", "smooth_random_field"]

_SUPPORT = 1.5  # lattice extends this many correlation lengths past the grid, so borders are not special


class GridAxes:
    """Physical coordinates (mm) of the voxel centres along each axis of a (sub)grid.

    Args:
        x, y, z: 1D coordinate arrays; a field evaluated on them has shape (len(x), len(y), len(z)).
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> None:
        self.axes = (np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64), np.asarray(z, dtype=np.float64))

    @property
    def shape(self) -> tuple[int, int, int]:
        """Voxels per axis."""
        return (len(self.axes[0]), len(self.axes[1]), len(self.axes[2]))

    def broadcast(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Coordinates as (X,1,1), (1,Y,1), (1,1,Z) arrays for cheap broadcasting."""
        x, y, z = self.axes
        return x[:, None, None], y[None, :, None], z[None, None, :]

    def subset(self, low: np.ndarray, high: np.ndarray) -> tuple[GridAxes, tuple[slice, slice, slice]]:
        """The voxels whose coordinates lie within [low, high] per axis, and the slices that select them."""
        slices = []
        for axis, lo, hi in zip(self.axes, low, high, strict=True):
            inside = np.flatnonzero((axis >= lo) & (axis <= hi))
            start, stop = (int(inside[0]), int(inside[-1]) + 1) if inside.size else (0, 0)
            slices.append(slice(start, stop))
        x, y, z = (axis[part] for axis, part in zip(self.axes, slices, strict=True))
        return GridAxes(x, y, z), (slices[0], slices[1], slices[2])


def smooth_random_field(
    rng: np.random.Generator, grid: GridAxes, correlation_mm: float, amplitude: float = 1.0
) -> np.ndarray:
    """A stationary Gaussian random field with standard deviation ``amplitude`` and smoothness ``correlation_mm``.

    Args:
        rng: source of the lattice coefficients; the field is a pure function of its state.
        grid: where to evaluate the field.
        correlation_mm: lattice spacing and Gaussian blending width; features are about this size.
        amplitude: standard deviation of the field at every voxel.

    Returns:
        float32 array of shape ``grid.shape``.
    """
    weights = [_axis_weights(axis, correlation_mm) for axis in grid.axes]
    coefficients = rng.standard_normal(tuple(w.shape[1] for w in weights), dtype=np.float32)
    field = np.tensordot(weights[0], coefficients, axes=1)  # (X, b, c)
    field = np.matmul(weights[1], field)  # (X, Y, c): one (Y, b) @ (b, c) product per x
    field = np.matmul(field, weights[2].T)  # (X, Y, Z)
    return field * np.float32(amplitude)


def _axis_weights(axis: np.ndarray, correlation_mm: float) -> np.ndarray:
    """(len(axis), lattice points) Gaussian blending weights with unit squared sum per voxel."""
    low = axis.min() - _SUPPORT * correlation_mm
    count = math.ceil((axis.max() - axis.min()) / correlation_mm + 2 * _SUPPORT) + 1
    lattice = low + correlation_mm * np.arange(count)
    weights = np.exp(-0.5 * ((axis[:, None] - lattice[None, :]) / correlation_mm) ** 2)
    return (weights / np.sqrt((weights**2).sum(axis=1, keepdims=True))).astype(np.float32)
