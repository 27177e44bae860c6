"""The working grid: the slices the network sees, and the way back to the grid the user picked.

CoNeS is a 2D model trained on axial slices of 1 mm BraTS volumes, 240 x 240 mm, the brain in the
middle. A clinical reference is rarely that: a 0.9 mm in-plane thick-slice axial series, or a
sagittal 3D T1. The working grid keeps the reference's slices wherever they already run along the
model's slice axis (a 5.5 mm axial series stays 26 slices: interpolating across thick slices would
invent anatomy), and resamples only within the slice, to the training spacing, with the brain
centred in the 240 x 240 field of view. A sagittal 3D volume is permuted (losslessly) so that its
slices become axial first.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from cones.data.geometry import CANONICAL_ORIENTATION

__all__ = ["TRAINING_FIELD_OF_VIEW", "TRAINING_SPACING_MM", "back_to_reference", "onto_grid", "working_grid"]

TRAINING_SPACING_MM = 1.0
"""In-plane voxel size the models were trained at (BraTS: 1 mm isotropic)."""
TRAINING_FIELD_OF_VIEW = (240, 240)
"""In-plane size, in voxels of :data:`TRAINING_SPACING_MM`, of the slices the models were trained on."""


def working_grid(
    reference: sitk.Image,
    brain_mask: sitk.Image,
    spacing_mm: float = TRAINING_SPACING_MM,
    field_of_view: tuple[int, int] = TRAINING_FIELD_OF_VIEW,
) -> sitk.Image:
    """An empty float32 image on the grid the network works on for ``reference``.

    Args:
        reference: the reference sequence, on its own grid.
        brain_mask: the brain on ``reference``'s grid; its centroid is put in the middle of the field of view.
        spacing_mm: in-plane voxel size.
        field_of_view: in-plane size in voxels.

    Returns:
        A grid in the canonical orientation (axes closest to left, posterior, superior), with the
        reference's slices along the superior axis and ``spacing_mm`` within them. When the
        reference already has that in-plane spacing, the grid's voxels are the reference's own, so
        a prepared (BraTS-like) case is not interpolated at all.
    """
    canonical = sitk.DICOMOrient(reference, CANONICAL_ORIENTATION)
    spacing = np.asarray(canonical.GetSpacing())
    direction = np.reshape(canonical.GetDirection(), (3, 3))
    centre_index = np.asarray(canonical.TransformPhysicalPointToContinuousIndex(_centroid(brain_mask)))
    half_field = (np.asarray(field_of_view, dtype=float) - 1) / 2
    offset = centre_index[:2] - half_field * spacing_mm / spacing[:2]
    if np.allclose(spacing[:2], spacing_mm, rtol=1e-3):
        offset = np.round(offset)
    origin = np.asarray(canonical.GetOrigin()) + direction @ (spacing * np.array([*offset, 0.0]))
    grid = sitk.Image([*field_of_view, canonical.GetSize()[2]], sitk.sitkFloat32)
    grid.SetSpacing((spacing_mm, spacing_mm, float(spacing[2])))
    grid.SetDirection(canonical.GetDirection())
    grid.SetOrigin(tuple(origin))
    return grid


def onto_grid(
    image: sitk.Image, grid: sitk.Image, transform: sitk.Transform | None = None, labels: bool = False
) -> sitk.Image:
    """``image`` resampled onto ``grid`` through ``transform`` (grid points to image points; identity when None).

    Intensities are interpolated linearly into float32; ``labels`` (a mask) use nearest neighbour
    and keep their type. Outside ``image`` the value is 0, the background of stripped data.
    """
    transform = transform if transform is not None else sitk.Transform()
    if labels:
        return sitk.Resample(image, grid, transform, sitk.sitkNearestNeighbor, 0, image.GetPixelID())
    return sitk.Resample(image, grid, transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32)


def back_to_reference(synthesized: sitk.Image, reference: sitk.Image, brain_mask: sitk.Image) -> sitk.Image:
    """A synthesized working-grid volume on the reference's own grid, zero outside the brain, so it overlays exactly."""
    resampled = onto_grid(synthesized, reference)
    return sitk.Mask(resampled, sitk.Cast(brain_mask > 0, sitk.sitkUInt8))


def _centroid(mask: sitk.Image) -> tuple[float, float, float]:
    statistics = sitk.LabelShapeStatisticsImageFilter()
    statistics.Execute(sitk.Cast(mask > 0, sitk.sitkUInt8))
    if not statistics.HasLabel(1):
        raise ValueError("the brain mask is empty: no brain was found in the reference")
    return statistics.GetCentroid(1)
