"""Write generated cases to disk exactly as the BraTS 2018-2021 challenge distributes them.

Using the challenge layout (``<case>/<case>_t1.nii.gz``, ``_t1ce``, ``_t2``, ``_flair``, ``_seg``) and
header convention means the sample data exercises the same loading code, file name parsing and
orientation handling as real data, in the Slicer modules as well as in training scripts.
"""

from __future__ import annotations

import logging
from pathlib import Path

import nibabel as nib
import numpy as np

from cones.sample_data.case import SampleCase, build_case
from cones.sample_data.config import SampleDataConfig
from cones.sample_data.template import load_template

__all__ = ["CASE_PREFIX", "case_seed", "generate_case", "sample_case_id", "write_case", "write_sample_dataset"]

logger = logging.getLogger(__name__)

CASE_PREFIX = "CONES-SAMPLE"
_LABEL_SUFFIX = "seg"
_NIFTI_XFORM_SCANNER = 1  # "scanner anatomical" qform/sform code, as in BraTS headers


def generate_case(case_id: str, seed: int, config: SampleDataConfig | None = None) -> SampleCase:
    """Generate one synthetic glioma case with T1, T1ce, T2 and FLAIR from real template anatomy.

    Args:
        case_id: name carried by the case (and used for its files by :func:`write_case`).
        seed: seeds every random choice; the same seed and config give bit-identical arrays.
        config: grid and variation ranges; the default is a 240 x 240 x 155, 1 mm BraTS-sized case.

    Returns:
        The images, BraTS labels (1 necrosis, 2 oedema, 4 enhancing tumour) and ground truth.

    Raises:
        ModuleNotFoundError: nilearn (``pip install cones[sample]``) is not installed.
    """
    config = config or SampleDataConfig()
    return build_case(case_id, seed, config, load_template(config.spacing_mm))


def sample_case_id(index: int) -> str:
    """``CONES-SAMPLE-000`` style id: a BraTS-like stem that never collides with real challenge ids."""
    return f"{CASE_PREFIX}-{index:03d}"


def case_seed(seed: int, index: int) -> int:
    """Independent per-case seed derived from the dataset seed, so case 3 is the same in any dataset size."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1, dtype=np.uint64)[0])


def write_case(case: SampleCase, out_dir: Path) -> Path:
    """Save one case as ``out_dir/<case_id>/<case_id>_<sequence>.nii.gz`` plus ``_seg.nii.gz``.

    Returns:
        The case folder.
    """
    folder = Path(out_dir) / case.case_id
    folder.mkdir(parents=True, exist_ok=True)
    for sequence, image in case.images.items():
        _save_nifti(image, case.affine, folder / f"{case.case_id}_{sequence.value}.nii.gz")
    _save_nifti(case.label, case.affine, folder / f"{case.case_id}_{_LABEL_SUFFIX}.nii.gz")
    return folder


def new_case_ids(out_dir: Path, num_cases: int, overwrite: bool) -> list[str]:
    """The ids of a dataset's ``num_cases`` cases, refused before anything is generated if their folders exist.

    Raises:
        ValueError: ``num_cases`` is below 1.
        FileExistsError: a case folder exists and ``overwrite`` is False.
    """
    if num_cases < 1:
        raise ValueError(f"num_cases must be at least 1, got {num_cases!r}")
    case_ids = [sample_case_id(index) for index in range(num_cases)]
    existing = [case_id for case_id in case_ids if (out_dir / case_id).exists()]
    if existing and not overwrite:
        raise FileExistsError(f"case folders already exist in {out_dir}: {existing}; pass --overwrite to replace them")
    return case_ids


def write_sample_dataset(
    out_dir: Path, num_cases: int, seed: int, config: SampleDataConfig | None = None, overwrite: bool = False
) -> list[Path]:
    """Generate ``num_cases`` cases and write them in the BraTS 2018-2021 folder layout.

    Args:
        out_dir: dataset root; created if missing.
        num_cases: number of cases, named ``CONES-SAMPLE-000`` onwards.
        seed: dataset seed; case ``i`` uses :func:`case_seed` ``(seed, i)``.
        config: grid and variation ranges shared by all cases.
        overwrite: replace the files of case folders that already exist. Off by default because a
            rerun with another seed would silently mix two datasets.

    Returns:
        The case folders, in order.

    Raises:
        ValueError: ``num_cases`` is below 1.
        FileExistsError: a case folder exists and ``overwrite`` is False; nothing is written then.
    """
    config = config or SampleDataConfig()
    out_dir = Path(out_dir)
    case_ids = new_case_ids(out_dir, num_cases, overwrite)
    template = load_template(config.spacing_mm)
    folders = []
    for index, case_id in enumerate(case_ids):
        folders.append(write_case(build_case(case_id, case_seed(seed, index), config, template), out_dir))
        logger.info("wrote sample case %s (%d/%d) to %s", case_id, index + 1, num_cases, folders[-1])
    return folders


def _save_nifti(volume: np.ndarray, affine: np.ndarray, path: Path) -> None:
    """Write a volume with qform and sform both set, as BraTS files have, and millimetre units."""
    image = nib.Nifti1Image(volume, affine)
    image.header.set_qform(affine, code=_NIFTI_XFORM_SCANNER)
    image.header.set_sform(affine, code=_NIFTI_XFORM_SCANNER)
    image.header.set_xyzt_units(xyz="mm")
    nib.save(image, path)
