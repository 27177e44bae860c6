"""One sequence of a raw case: the patient's pose during it, and its own grid, slice profile and noise.

Sequences of one session are acquired minutes apart; the head moves rigidly between them, and each
sequence has its own voxel size (a 1 mm 3D T1 beside a 2D T2 with 4 mm slices). Both are what a
co-registration step must undo, so they are simulated with a known answer.

Transform convention: a sequence's transform maps points of the reference (T1) physical space to the
points of that sequence's physical space where the same anatomy appears. It is what
``sitk.ImageRegistrationMethod`` with fixed = T1 and moving = that sequence recovers, and
``sitk.Resample(moving, t1, transform)`` lays the sequence onto the T1. Acquiring therefore samples
the head through the inverse: the sequence shows at point ``q`` the anatomy the reference shows at
``transform.GetInverse()(q)``.
"""

from __future__ import annotations

from collections.abc import Sequence as SequenceOf

import numpy as np
import SimpleITK as sitk

from cones.data.io import array_to_image
from cones.sample_data.scanner import rician_noise

__all__ = ["acquire", "empty_grid", "identity_pose", "random_pose", "reacquire"]


def identity_pose(centre: SequenceOf[float]) -> sitk.Euler3DTransform:
    """The pose of the reference sequence: no motion, centred like the others so all files look alike."""
    transform = sitk.Euler3DTransform()
    transform.SetCenter([float(value) for value in centre])
    return transform


def random_pose(
    rng: np.random.Generator, centre: SequenceOf[float], max_rotation_deg: float, max_translation_mm: float
) -> sitk.Euler3DTransform:
    """A rotation about a random axis through ``centre`` and a shift in a random direction.

    The angle and the shift's length are drawn between half and all of their maximum, so every
    moved sequence is visibly misplaced: a case that needs no registration tests none.

    Args:
        rng: draws the axis, angle, direction and length.
        centre: the rotation centre in the reference's physical space (mm, LPS), e.g. the head's centre.
        max_rotation_deg: largest rotation angle.
        max_translation_mm: largest shift.

    Returns:
        The transform from reference to sequence space (see the module docstring).
    """
    axis, direction = (vector / np.linalg.norm(vector) for vector in rng.standard_normal((2, 3)))
    angle = np.deg2rad(max_rotation_deg) * rng.uniform(0.5, 1.0)
    shift = direction * max_translation_mm * rng.uniform(0.5, 1.0)
    versor = sitk.VersorRigid3DTransform()
    versor.SetRotation([float(value) for value in axis], float(angle))
    transform = identity_pose(centre)
    transform.SetMatrix(versor.GetMatrix())
    transform.SetTranslation([float(value) for value in shift])
    return transform


def empty_grid(origin: np.ndarray, spacing: np.ndarray, size: np.ndarray, direction: np.ndarray) -> sitk.Image:
    """A uint8 image that only carries a geometry: origin and spacing (3,), size (3,) ints, direction (3, 3)."""
    image = sitk.Image([int(value) for value in size], sitk.sitkUInt8)
    image.SetOrigin([float(value) for value in origin])
    image.SetSpacing([float(value) for value in spacing])
    image.SetDirection([float(value) for value in np.asarray(direction).ravel()])
    return image


def acquire(
    head: sitk.Image,
    spacing_mm: SequenceOf[float],
    transform: sitk.Transform,
    rng: np.random.Generator,
    noise_sigma: float,
) -> sitk.Image:
    """Image the head, moved by ``transform``, on a grid of ``spacing_mm`` voxels, with Rician noise.

    The field of view covers as much as ``head``'s and is centred on the moved head, as a radiographer
    places it. Each voxel averages ``k`` samples along every axis where it is ``k`` times larger than
    the head's voxels: a box slice profile, so a 4 mm slice shows the partial volume of 4 mm of anatomy.
    Noise is added on the acquired grid, so the air is a Rayleigh noise floor and never exactly 0.

    Args:
        head: the noise-free head in the reference's physical space (float32).
        spacing_mm: (x, y, z) voxel size of the acquisition; z is the slice direction of ``head``'s grid.
        transform: reference to sequence space (see the module docstring).
        rng: draws the noise.
        noise_sigma: standard deviation of each quadrature channel, in the units of ``head``.

    Returns:
        The float32 image on its own grid, with ``head``'s direction.
    """
    spacing = np.asarray(spacing_mm, dtype=float)
    head_spacing, head_size = np.array(head.GetSpacing()), np.array(head.GetSize())
    size = np.ceil(head_size * head_spacing / spacing - 1e-6).astype(int)
    factor = np.maximum(1, np.round(spacing / head_spacing)).astype(int)
    direction = np.array(head.GetDirection()).reshape(3, 3)
    head_centre = head.TransformContinuousIndexToPhysicalPoint([float(value) for value in (head_size - 1) / 2.0])
    centre = np.array(transform.TransformPoint(head_centre))

    def centred_grid(step: np.ndarray, count: np.ndarray) -> sitk.Image:
        return empty_grid(centre - direction @ ((count - 1) / 2.0 * step), step, count, direction)

    fine = centred_grid(spacing / factor, size * factor)
    sampled = sitk.Resample(head, fine, transform.GetInverse(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    blocks = sitk.GetArrayViewFromImage(sampled).reshape(size[2], factor[2], size[1], factor[1], size[0], factor[0])
    return array_to_image(rician_noise(rng, blocks.mean(axis=(1, 3, 5)), noise_sigma), centred_grid(spacing, size))


def reacquire(
    image: sitk.Image,
    rotation_deg: SequenceOf[float],
    translation_mm: SequenceOf[float],
    spacing_mm: SequenceOf[float],
) -> tuple[sitk.Image, sitk.Transform]:
    """``image`` scanned again after a known head motion, on a grid of its own covering the same field of view.

    Turns a co-registered case into one whose sequences need registering, with the answer known.

    Args:
        image: the volume as acquired in the reference position.
        rotation_deg: Euler angles (x, y, z) of the head's rotation about the image centre.
        translation_mm: the head's shift after the rotation.
        spacing_mm: the new grid's voxel size (e.g. ``(0.9, 0.9, 4.0)`` for a 2D series).

    Returns:
        The new float32 image (linear interpolation, 0 outside the old field of view) and its
        transform in this module's convention (reference points to the new image's points).
    """
    motion = sitk.Euler3DTransform()
    motion.SetCenter(image.TransformContinuousIndexToPhysicalPoint([size / 2 for size in image.GetSize()]))
    motion.SetRotation(*np.radians(np.asarray(rotation_deg, dtype=float)))
    motion.SetTranslation([float(value) for value in translation_mm])
    spacing = np.asarray(spacing_mm, dtype=float)
    size = np.round(np.asarray(image.GetSize()) * np.asarray(image.GetSpacing()) / spacing).astype(int)
    grid = empty_grid(np.asarray(image.GetOrigin()), spacing, size, np.reshape(image.GetDirection(), (3, 3)))
    return sitk.Resample(image, grid, motion, sitk.sitkLinear, 0.0, sitk.sitkFloat32), motion.GetInverse()
