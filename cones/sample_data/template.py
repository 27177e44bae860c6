"""Real brain anatomy from the MNI ICBM152 2009 template that nilearn ships inside its wheel.

Synthetic cases need anatomy a radiologist recognises (folded cortex, ventricles, deep grey nuclei),
and nilearn carries the skull-stripped ICBM152 2009 T1 template with grey and white matter probability
maps at 1 mm. They are read from the installed package and never downloaded. The template has no
CSF map, so CSF is what the brain mask holds beyond grey and white matter: ventricles, cisterns and
sulci. For coarse output grids the maps are box-averaged first, which is the partial-volume effect a
scanner with larger voxels would produce and avoids aliasing when they are sampled sparsely.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

__all__ = ["Template", "load_template"]

_FILES = {
    "t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}
_BRAIN_THRESHOLD = 0.2  # nilearn's own load_mni152_brain_mask threshold on the rescaled T1 template
_SITE_GRID_MM = 4  # tumour sites are chosen on a 4 mm grid: fine enough, and the distance map is instant
_SITE_MIN_WM = 0.6  # gliomas arise in white matter
_SITE_Z_RANGE_MM = (-5.0, 50.0)  # MNI z: above the cerebellum and brainstem, below the thin vertex
_SITE_MIN_ABS_X_MM = 12.0  # off the midline, so the tumour sits in one hemisphere


@dataclass(frozen=True)
class Template:
    """Tissue probability maps on a RAS-aligned grid of ``voxel_mm`` voxels (index axes are RAS axes).

    Attributes:
        csf, gm, wm: partial-volume fractions in [0, 1], shape (X, Y, Z); they sum to the brain mask.
        brain: brain mask fraction in [0, 1] (1 inside, fractional at the box-averaged border).
        voxel_mm: template voxel size (1 mm, or the box-averaging factor for coarse output grids).
        origin_mm: MNI coordinate of voxel (0, 0, 0).
        anchor_mm: MNI coordinate that lands in the centre of every generated volume.
        sites_mm: (N, 3) MNI coordinates of deep white matter where a tumour may be centred.
        site_depth_mm: (N,) distance of each site from the brain surface, so a tumour of radius R can be
            placed where it fits entirely inside the brain.
    """

    csf: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    brain: np.ndarray
    voxel_mm: float
    origin_mm: np.ndarray
    anchor_mm: np.ndarray
    sites_mm: np.ndarray
    site_depth_mm: np.ndarray

    def voxel_coordinates(self, mni_mm: np.ndarray) -> np.ndarray:
        """Convert MNI millimetres (3, ...) into fractional voxel indices for ``scipy.ndimage.map_coordinates``."""
        shift = self.origin_mm.reshape((3,) + (1,) * (mni_mm.ndim - 1))
        return (mni_mm - shift) / self.voxel_mm


def load_template(spacing_mm: float) -> Template:
    """Read the ICBM152 2009 maps from the installed nilearn package, box-averaged for ``spacing_mm`` voxels.

    Args:
        spacing_mm: voxel size of the volumes that will be generated; the maps are box-averaged by
            ``floor(spacing_mm)`` so each template voxel is no larger than an output voxel.

    Returns:
        The template, with tumour sites precomputed once so that many cases can share it.

    Raises:
        ModuleNotFoundError: nilearn, the ``sample`` extra, is not installed.
        FileNotFoundError: the installed nilearn no longer ships the template files.
    """
    folder = _nilearn_data_folder()
    t1, origin = _read_map(folder / _FILES["t1"])
    brain = (t1 > _BRAIN_THRESHOLD).astype(np.float32)
    gm = _read_map(folder / _FILES["gm"])[0] * brain
    wm = np.minimum(_read_map(folder / _FILES["wm"])[0] * brain, brain - gm)
    csf = np.clip(brain - gm - wm, 0.0, 1.0)
    factor = max(1, int(spacing_mm))
    maps = [_box_average(volume, factor) for volume in (csf, gm, wm, brain)]
    voxel_mm = float(factor)
    origin_mm = origin + (factor - 1) / 2.0
    sites, depth = _tumour_sites(maps[2], maps[3], voxel_mm, origin_mm)
    return Template(*maps, voxel_mm, origin_mm, _brain_centre(brain, origin), sites, depth)


def _nilearn_data_folder() -> Path:
    """nilearn's bundled data folder, found without importing nilearn (its import pulls in pandas and sklearn)."""
    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("sample data needs nilearn for its brain template: pip install 'cones[sample]'")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"


def _read_map(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One template map scaled to [0, 1], and the MNI coordinate of its voxel (0, 0, 0)."""
    if not path.is_file():
        raise FileNotFoundError(f"the installed nilearn does not ship the ICBM152 2009 template file {path}")
    image = nib.load(path)
    data = np.asarray(image.dataobj, dtype=np.float32)
    if not np.allclose(image.affine[:3, :3], np.eye(3)):
        raise ValueError(f"expected a 1 mm RAS template in {path}, got affine {image.affine.tolist()}")
    return data / data.max(), image.affine[:3, 3].copy()


def _box_average(volume: np.ndarray, factor: int) -> np.ndarray:
    """Mean over ``factor``^3 blocks (trailing voxels that do not fill a block are background anyway)."""
    if factor == 1:
        return volume
    blocks = [size // factor for size in volume.shape]
    cropped = volume[: blocks[0] * factor, : blocks[1] * factor, : blocks[2] * factor]
    return cropped.reshape(blocks[0], factor, blocks[1], factor, blocks[2], factor).mean(axis=(1, 3, 5))


def _brain_centre(brain: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """Centre of the brain's bounding box in MNI mm, nudged up so a 155 mm volume keeps the vertex."""
    inside = np.argwhere(brain > 0.5)
    centre = origin + (inside.min(axis=0) + inside.max(axis=0)) / 2.0
    return centre + np.array([0.0, 0.0, 4.0])


def _tumour_sites(
    wm: np.ndarray, brain: np.ndarray, voxel_mm: float, origin_mm: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Deep, lateral, supratentorial white matter on a coarse grid, with each point's depth in the brain."""
    factor = max(1, round(_SITE_GRID_MM / voxel_mm))
    wm_coarse = _box_average(wm, factor)
    brain_coarse = _box_average(brain, factor) > 0.5
    step_mm = voxel_mm * factor
    depth = ndimage.distance_transform_edt(brain_coarse) * step_mm
    index = np.argwhere(brain_coarse & (wm_coarse >= _SITE_MIN_WM))
    mni = origin_mm + (index * factor + (factor - 1) / 2.0) * voxel_mm
    supratentorial = (mni[:, 2] >= _SITE_Z_RANGE_MM[0]) & (mni[:, 2] <= _SITE_Z_RANGE_MM[1])
    keep = supratentorial & (np.abs(mni[:, 0]) >= _SITE_MIN_ABS_X_MM)
    return mni[keep], depth[tuple(index[keep].T)]
