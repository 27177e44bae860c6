"""What ``--prepared-output-dir`` receives: the registered sources, the brain mask and the transforms.

A radiologist checking a synthesis wants to see the inputs as the network saw them (registered
onto the reference), and a pipeline wants to reuse the transforms; both are written with the
project's atomic, never-overwriting writes, and their names are known before any work so they
can be refused first.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from cones.data.io import write_image, write_transform
from cones.preprocessing.pipeline import PreparedCase
from cones.sequences import Sequence

__all__ = ["BRAIN_MASK_NAME", "prepared_file_names", "write_prepared"]

BRAIN_MASK_NAME = "brain_mask.nii.gz"


def prepared_file_names(sources: Iterable[Sequence], reference: Sequence) -> list[str]:
    """The files :func:`write_prepared` writes for these sources, to check before any work."""
    others = [sequence for sequence in sources if sequence is not reference]
    return [
        *(f"{sequence.value}_registered.nii.gz" for sequence in others),
        BRAIN_MASK_NAME,
        *(f"{sequence.value}_to_{reference.value}.tfm" for sequence in others),
    ]


def write_prepared(prepared: PreparedCase, folder: str | os.PathLike[str], overwrite: bool = False) -> list[Path]:
    """Write ``<seq>_registered.nii.gz`` (on the reference's grid), ``brain_mask.nii.gz`` and ``<seq>_to_<ref>.tfm``.

    A ``.tfm`` file holds the transform that maps reference points to that sequence's points, the
    one ``sitk.Resample(sequence_image, reference_image, transform)`` (or Slicer's "Transforms"
    module, after inverting) uses to bring the sequence onto the reference.

    Returns:
        The written files, in the order of :func:`prepared_file_names`.
    """
    folder = Path(folder)
    reference = prepared.report.reference
    registered = prepared.registered
    written = [
        write_image(image, folder / f"{sequence.value}_registered.nii.gz", overwrite=overwrite)
        for sequence, image in registered.items()
        if sequence is not reference
    ]
    written.append(write_image(prepared.brain_mask, folder / BRAIN_MASK_NAME, overwrite=overwrite))
    written += [
        write_transform(transform, folder / f"{sequence.value}_to_{reference.value}.tfm", overwrite=overwrite)
        for sequence, transform in prepared.transforms.items()
        if sequence is not reference
    ]
    return written
