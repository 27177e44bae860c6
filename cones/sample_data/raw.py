"""Raw-looking sample cases: the whole head, each sequence its own acquisition, misplaced by a known rigid motion.

A clinic does not deliver BraTS data. Its sequences show the head with scalp and skull, were acquired
one after the other while the patient moved a little, and each has its own grid (a 1 mm 3D T1 next to
a 2D T2 of 4 mm slices). A co-registration and brain-extraction pipeline has to undo exactly that, and
it can only be tested where the answer is known. This module turns a generated :class:`SampleCase`
into such a case: the head around the brain (:mod:`cones.sample_data.head`), imaged with the gain and
coil bias the brain was imaged with, then for every sequence moved by a known rigid transform,
resampled onto that sequence's grid with a box slice profile, and given its own Rician noise, so the
air around the head is a noise floor and never exactly 0 as in skull-stripped data.

Transform convention: ``RawCase.transforms[sequence]`` maps points of the reference (T1) physical
space to the points of that sequence's physical space where the same anatomy appears. It is what
``sitk.ImageRegistrationMethod`` with fixed = T1 and moving = that sequence recovers, and
``sitk.Resample(moving, t1, transform)`` lays the sequence onto the T1.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from cones.config import JsonConfig
from cones.data.io import array_to_image, write_image, write_transform
from cones.sample_data.acquisition import acquire, empty_grid, identity_pose, random_pose
from cones.sample_data.case import SampleCase, build_case
from cones.sample_data.config import SampleDataConfig, _require_within
from cones.sample_data.dataset import case_seed, new_case_ids
from cones.sample_data.head import MAX_HEAD_THICKNESS_MM, build_head, fit_gains
from cones.sample_data.signal import PROTOCOLS, Tissue
from cones.sample_data.template import load_template
from cones.sequences import Sequence, parse_sequence

__all__ = ["AcquisitionGrid", "RawAcquisitionConfig", "RawCase", "make_raw_case", "write_raw_case", "write_raw_dataset"]

logger = logging.getLogger(__name__)

_RAW_STREAM = 1  # mixed into the seed, so make_raw_case may be given the seed its case was built with
_LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0])  # NIfTI affines are RAS, SimpleITK geometry is LPS


@dataclass(frozen=True)
class AcquisitionGrid(JsonConfig):
    """Voxel size of one acquisition: axial slices of ``in_plane_mm`` square pixels, ``slice_mm`` apart and thick."""

    in_plane_mm: float = 1.0
    slice_mm: float = 1.0

    def __post_init__(self) -> None:
        for name in ("in_plane_mm", "slice_mm"):
            _require_within(self, name, getattr(self, name), 0.1, 10.0)

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        """(x, y, z) voxel size."""
        return (self.in_plane_mm, self.in_plane_mm, self.slice_mm)


@dataclass(frozen=True)
class RawAcquisitionConfig(JsonConfig):
    """How the sequences of a raw case are acquired; frozen and JSON round-trippable like :class:`SampleDataConfig`.

    Attributes:
        t1, t1ce, t2, flair: each sequence's grid. The defaults follow a common clinical protocol: 3D T1
            and T1ce at 1 mm, 2D T2 and FLAIR with 0.9 mm pixels and 4 mm slices.
        reference: the sequence that stays in place (identity transform); the others move against it.
        max_rotation_deg: largest rotation of a sequence against the reference, about a random axis through
            the head's centre. Angles are drawn between half and all of it, so every sequence is visibly
            misplaced (a case that needs no registration tests none).
        max_translation_mm: largest shift of a sequence against the reference, in a random direction,
            likewise drawn between half and all of it.
        noise_level: Rician noise of every acquisition as a fraction of its white matter signal, as
            :attr:`SampleDataConfig.noise_level`; the brain keeps the case's own noise beneath it.
        air_margin_mm: air between the head and the edge of the field of view.
    """

    t1: AcquisitionGrid = AcquisitionGrid(1.0, 1.0)
    t1ce: AcquisitionGrid = AcquisitionGrid(1.0, 1.0)
    t2: AcquisitionGrid = AcquisitionGrid(0.9, 4.0)
    flair: AcquisitionGrid = AcquisitionGrid(0.9, 4.0)
    reference: Sequence = Sequence.T1
    max_rotation_deg: float = 10.0
    max_translation_mm: float = 10.0
    noise_level: float = 0.03
    air_margin_mm: float = 20.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "reference", parse_sequence(self.reference))
        _require_within(self, "max_rotation_deg", self.max_rotation_deg, 0.0, 45.0)
        for name in ("max_translation_mm", "noise_level", "air_margin_mm"):
            _require_within(self, name, getattr(self, name), 0.0, float("inf"))

    def grid(self, sequence: Sequence) -> AcquisitionGrid:
        """The grid ``sequence`` is acquired on."""
        return getattr(self, Sequence(sequence).value)


@dataclass(frozen=True)
class RawCase:
    """A raw-looking case with its ground truth.

    Attributes:
        case_id: folder and file name stem.
        images: float32 image per sequence, each on its own grid, with head, skull, scalp and air noise.
        transforms: per sequence, the rigid transform mapping reference (T1) physical points to that
            sequence's physical points (identity for the reference); see the module docstring.
        brain_mask: uint8 brain mask (1 inside) on the reference's grid.
        label: uint8 BraTS labels (1 necrosis, 2 oedema, 4 enhancing tumour) on the reference's grid.
        reference: the sequence whose grid and space the ground truth is given in.
    """

    case_id: str
    images: dict[Sequence, sitk.Image]
    transforms: dict[Sequence, sitk.Euler3DTransform]
    brain_mask: sitk.Image
    label: sitk.Image
    reference: Sequence


def make_raw_case(case: SampleCase, seed: int, config: RawAcquisitionConfig | None = None) -> RawCase:
    """Put a head around ``case``'s brain and acquire every sequence with its own pose and grid.

    Args:
        case: a generated case on an isotropic grid; its images give the brain's signal, gain and bias.
        seed: seeds the head's shape, the poses and the noise (independently of the streams the case
            was built from, so the case's own seed may be reused); the same case, seed and config give
            the same images.
        config: grids, motion and noise; the default is a clinical-looking 1 mm / 0.9 x 0.9 x 4 mm protocol.

    Returns:
        The images, ground-truth transforms, and brain mask and labels on the reference's grid.

    Raises:
        ValueError: ``case.affine`` does not have isotropic, axis-aligned voxels.
    """
    config = config or RawAcquisitionConfig()
    head_rng, pose_rng, noise_rng = np.random.default_rng([seed, _RAW_STREAM]).spawn(3)
    spacing = _isotropic_spacing(case.affine)
    low, high = _field_of_view(case.brain_mask, case.affine, spacing, config.air_margin_mm)
    grid = _grid_of_box(case.affine, low, high)
    head = build_head(head_rng, _crop(case.brain_mask, low, high), spacing)
    head_index = np.stack(head.voxels, axis=1) + low  # the head's voxels on the case's grid, where gains are fitted
    centre = grid.TransformContinuousIndexToPhysicalPoint([(size - 1) / 2.0 for size in grid.GetSize()])
    gains = fit_gains(case, spacing)
    images, transforms = {}, {}
    for sequence, pose, noise in zip(
        Sequence, pose_rng.spawn(len(Sequence)), noise_rng.spawn(len(Sequence)), strict=True
    ):
        volume = _crop(case.images[sequence], low, high)
        volume[head.voxels] = gains[sequence].at(head_index) * head.signals[sequence]
        white_matter = float(PROTOCOLS[sequence].signal(Tissue.WHITE_MATTER))
        if sequence is config.reference:
            transforms[sequence] = identity_pose(centre)
        else:
            transforms[sequence] = random_pose(pose, centre, config.max_rotation_deg, config.max_translation_mm)
        sigma = config.noise_level * gains[sequence].typical * white_matter
        grid_mm = config.grid(sequence).spacing_mm
        images[sequence] = acquire(array_to_image(volume.T, grid), grid_mm, transforms[sequence], noise, sigma)
    reference, to_head = images[config.reference], transforms[config.reference].GetInverse()

    def on_reference(volume: np.ndarray) -> sitk.Image:
        labels = array_to_image(_crop(volume, low, high).astype(np.uint8).T, grid)
        return sitk.Resample(labels, reference, to_head, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)

    brain_mask, label = on_reference(case.brain_mask), on_reference(case.label)
    return RawCase(case.case_id, images, transforms, brain_mask, label, config.reference)


def write_raw_case(raw: RawCase, out_dir: Path, overwrite: bool = False) -> Path:
    """Save ``out_dir/<case>/<case>_<sequence>.nii.gz``, ``_seg``, ``_brainmask`` and ``<case>_<sequence>_truth.tfm``.

    Every file is written atomically (:func:`cones.data.io.write_image`, :func:`~cones.data.io.write_transform`);
    the ``.tfm`` files hold :attr:`RawCase.transforms`.

    Returns:
        The case folder.

    Raises:
        FileExistsError: the case folder exists and ``overwrite`` is False; nothing is written then.
    """
    folder = Path(out_dir) / raw.case_id
    if (Path(out_dir) / raw.case_id).exists() and not overwrite:
        raise FileExistsError(f"case folder {raw.case_id} already exists in {out_dir}; pass --overwrite to replace it")
    stem = folder / raw.case_id
    for sequence, image in raw.images.items():
        write_image(image, f"{stem}_{sequence.value}.nii.gz", overwrite=overwrite)
    write_image(raw.label, f"{stem}_seg.nii.gz", overwrite=overwrite)
    write_image(raw.brain_mask, f"{stem}_brainmask.nii.gz", overwrite=overwrite)
    for sequence, transform in raw.transforms.items():
        write_transform(transform, f"{stem}_{sequence.value}_truth.tfm", overwrite=overwrite)
    return folder


def write_raw_dataset(
    out_dir: Path,
    num_cases: int,
    seed: int,
    config: SampleDataConfig | None = None,
    raw_config: RawAcquisitionConfig | None = None,
    overwrite: bool = False,
) -> list[Path]:
    """Generate ``num_cases`` raw cases, the raw twins of :func:`~cones.sample_data.write_sample_dataset`'s.

    Case ``i`` is built from the same seed as in ``write_sample_dataset``, so its brain and tumour are
    those of the prepared case of the same name and seed.

    Args:
        out_dir: dataset root; created if missing.
        num_cases: number of cases, named ``CONES-SAMPLE-000`` onwards.
        seed: dataset seed.
        config: grid and variation of the underlying cases.
        raw_config: acquisition of the raw sequences.
        overwrite: replace the files of case folders that already exist.

    Returns:
        The case folders, in order.

    Raises:
        ValueError: ``num_cases`` is below 1, or ``config`` varies the acquisition (the scalp and skull
            are simulated with the fixed protocols, so a varied brain would not match its head).
        FileExistsError: a case folder exists and ``overwrite`` is False; nothing is written then.
    """
    config = config or SampleDataConfig()
    if config.acquisition_variation:
        raise ValueError("raw cases are acquired with the fixed protocols: acquisition_variation must be 0")
    case_ids = new_case_ids(Path(out_dir), num_cases, overwrite)
    template = load_template(config.spacing_mm)
    folders = []
    for index, case_id in enumerate(case_ids):
        case_rng_seed = case_seed(seed, index)
        raw = make_raw_case(build_case(case_id, case_rng_seed, config, template), case_rng_seed, raw_config)
        folders.append(write_raw_case(raw, out_dir, overwrite=overwrite))
        logger.info("wrote raw sample case %s (%d/%d) to %s", case_id, index + 1, num_cases, folders[-1])
    return folders


def _isotropic_spacing(affine: np.ndarray) -> float:
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    if not np.allclose(spacing, spacing[0]) or np.count_nonzero(np.round(affine[:3, :3], 6)) != 3:
        raise ValueError(f"case.affine must have isotropic, axis-aligned voxels, got {affine[:3, :3].tolist()}")
    return float(spacing[0])


def _field_of_view(
    brain: np.ndarray, affine: np.ndarray, spacing: float, margin_mm: float
) -> tuple[np.ndarray, np.ndarray]:
    """[low, high) voxel indices on the case's grid: the brain, the head around it and the air margin.

    Below the brain the field of view ends with the brain: the neck would continue there, and a scan
    cut through it looks like a raw scan, while a skull closing under the brainstem would not.
    """
    inside = np.argwhere(brain)
    pad = int(np.ceil((MAX_HEAD_THICKNESS_MM + margin_mm) / spacing))
    low, high = inside.min(axis=0) - pad, inside.max(axis=0) + 1 + pad
    axis = int(np.argmax(np.abs(affine[2, :3])))  # the array axis closest to superior
    if affine[2, axis] > 0:
        low[axis] = inside[:, axis].min()
    else:
        high[axis] = inside[:, axis].max() + 1
    return low, high


def _crop(volume: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """A copy of ``volume[low:high]`` per axis, zero-padded where the box reaches past the volume."""
    before, after = np.maximum(-low, 0), np.maximum(high - np.array(volume.shape), 0)
    padded = np.pad(volume, list(zip(before, after, strict=True)))
    return padded[tuple(slice(start, stop) for start, stop in zip(low + before, high + before, strict=True))]


def _grid_of_box(affine: np.ndarray, low: np.ndarray, high: np.ndarray) -> sitk.Image:
    """The geometry of the case grid's voxels ``low:high`` in SimpleITK's LPS space."""
    matrix = _LPS_FROM_RAS @ affine[:3, :3]
    spacing = np.linalg.norm(matrix, axis=0)
    origin = _LPS_FROM_RAS @ affine[:3, 3] + matrix @ low
    return empty_grid(origin, spacing, high - low, matrix / spacing)
