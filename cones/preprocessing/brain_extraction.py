"""Brain extraction: a mask of the brain on a raw head scan, or the mask an already stripped scan carries.

CoNeS models are trained on skull-stripped sequences (BraTS); a head with scalp, skull and eyes
is outside what they have seen, and its bright fat would also spoil the intensity normalization.
The extractor runs once, on the reference sequence (T1-weighted, which the networks are trained
for); after co-registration its mask applies to every source.

Only ``deepbet`` (Fisch et al., 2024; MIT licence) is used now, because it ships its network
weights inside its wheel and so works offline; HD-BET and SynthStrip download theirs at run time.
Another extractor plugs in through :class:`BrainExtractor`.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import SimpleITK as sitk

__all__ = ["BrainExtractor", "DeepBetExtractor", "brain_mask_of_stripped", "looks_skull_stripped"]

STRIPPED_MIN_ZERO_BORDER = 0.99
"""Share of each outer face of a skull-stripped scan that must be exactly 0: a raw scan has noise (or at
least the head) at its border. One face may hold brain: where the field of view cut it, as the
lowest slab of a thick axial series often does (6 of 72 moved, stripped real sequences on 4-6 mm
slices or a sagittal grid, ``Testing/experiments/registration_calibration.py``)."""
STRIPPED_MAX_FOREGROUND_CM3 = 2200.0
"""A non-zero region larger than this is a head, not a brain (brains with tumour measure 1000-1900 cm3)."""
STRIPPED_MIN_FOREGROUND_CM3 = 100.0
"""A non-zero region smaller than this is no brain either (an empty or cropped scan)."""


class BrainExtractor(Protocol):
    """Makes a brain mask of a raw head scan."""

    name: str
    """Shown in reports (``"deepbet"``)."""

    def extract(self, image: sitk.Image) -> sitk.Image:
        """The brain of ``image`` as a uint8 mask (1 brain, 0 elsewhere) on ``image``'s grid."""
        ...


class DeepBetExtractor:
    """Brain extraction with deepbet's two networks (a bounding box, then the mask inside it).

    deepbet expects the voxel axes in RAS order, as ``nibabel.as_closest_canonical`` gives them;
    the image is therefore permuted (losslessly) to RAS, and the mask permuted back.

    Args:
        device: ``"cpu"`` or ``"cuda"``; deepbet's own choice (any GPU it finds) is not used, so the
            user's device option holds.
        threshold: probability above which a voxel is brain (deepbet's default, 0.5).

    Raises:
        ValueError: deepbet is not installed (the message says how to install it, or to give
            skull-stripped inputs instead).
    """

    name = "deepbet"

    def __init__(self, device: str = "cpu", threshold: float = 0.5) -> None:
        try:
            from deepbet import BrainExtraction
        except ImportError:
            raise ValueError(
                "brain extraction needs the deepbet package (pip install deepbet, keeping the installed torch), "
                "or give skull-stripped inputs"
            ) from None
        self._model = BrainExtraction(no_gpu=device != "cuda")
        self.threshold = threshold

    def extract(self, image: sitk.Image) -> sitk.Image:
        ras = sitk.DICOMOrient(image, "RAS")
        voxels = np.ascontiguousarray(sitk.GetArrayFromImage(ras).transpose(2, 1, 0), dtype=np.float32)
        probabilities = self._model.run_model(voxels)
        mask = self._model.postprocess(probabilities > self.threshold)
        mask_image = sitk.GetImageFromArray(np.ascontiguousarray(mask.transpose(2, 1, 0), dtype=np.uint8))
        mask_image.CopyInformation(ras)
        return sitk.Resample(mask_image, image, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)


def looks_skull_stripped(image: sitk.Image) -> bool:
    """Whether a scan is already skull-stripped: 0 on its faces (all but one), around a brain-sized foreground.

    Stripping a stripped scan again would shave off brain at its edge, so such inputs are used as
    they are.
    """
    voxels = sitk.GetArrayViewFromImage(image)
    faces = [voxels[0], voxels[-1], voxels[:, 0], voxels[:, -1], voxels[:, :, 0], voxels[:, :, -1]]
    zero_shares = sorted(float(np.mean(face == 0)) for face in faces)
    if zero_shares[1] < STRIPPED_MIN_ZERO_BORDER:
        return False
    volume_cm3 = np.count_nonzero(voxels) * float(np.prod(image.GetSpacing())) / 1000.0
    return STRIPPED_MIN_FOREGROUND_CM3 <= volume_cm3 <= STRIPPED_MAX_FOREGROUND_CM3


def brain_mask_of_stripped(image: sitk.Image) -> sitk.Image:
    """The brain of a skull-stripped scan: its non-zero voxels, with holes (dark CSF at exactly 0) filled."""
    foreground = sitk.Cast(sitk.NotEqual(image, 0), sitk.sitkUInt8)
    return sitk.BinaryFillhole(foreground)
