"""One case as the evaluation sees it: raw sources, the real target on [0, 1], the brain and the labels."""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence as SequenceOf

import numpy as np
import SimpleITK as sitk

from cones.config import NormalizationConfig
from cones.data import (
    CaseFiles,
    foreground_mask,
    grid_difference,
    image_to_array,
    load_case,
    read_image,
    to_canonical,
)
from cones.evaluation.methods import CaseVolumes, real_on_unit_scale
from cones.sequences import Sequence

__all__ = ["case_volumes", "load_case_volumes"]


def case_volumes(
    case_id: str,
    arrays: Mapping[Sequence, np.ndarray],
    sources: SequenceOf[Sequence],
    target: Sequence,
    normalization: NormalizationConfig,
    labels: np.ndarray | None = None,
) -> CaseVolumes:
    """A case from its raw arrays (one grid): the brain is the foreground of ``sources``.

    The sources' foreground is what inference sees; the target is never used to find the brain.

    Raises:
        ValueError: a sequence is missing from ``arrays``, or the sources have no foreground.
    """
    missing = [sequence.value for sequence in (*sources, target) if sequence not in arrays]
    if missing:
        raise ValueError(f"case {case_id}: missing sequences {missing}")
    mask = foreground_mask([arrays[sequence] for sequence in sources], normalization)
    return CaseVolumes(
        case_id=case_id,
        sources={sequence: arrays[sequence] for sequence in sources},
        target=real_on_unit_scale(arrays[target], mask, normalization),
        mask=mask,
        labels=labels,
        target_foreground=arrays[target] > normalization.foreground_threshold,
        raw_target=arrays[target],
    )


def _read_labels(case: CaseFiles, reference_grid: sitk.Image) -> np.ndarray | None:
    if case.label is None:
        return None
    labels = to_canonical(read_image(case.label))[0]
    difference = grid_difference(labels, reference_grid)
    if difference is not None:
        raise ValueError(f"case {case.case_id}: the label map is on another grid than the images ({difference})")
    return image_to_array(labels)


def load_case_volumes(
    case: CaseFiles, sources: SequenceOf[Sequence], target: Sequence, normalization: NormalizationConfig
) -> CaseVolumes:
    """Read a case folder for evaluation (see :func:`case_volumes`), in canonical orientation."""
    images = load_case(case, (*sources, target))
    arrays = {sequence: image_to_array(image) for sequence, image in images.items()}
    labels = _read_labels(case, images[target])
    return case_volumes(case.case_id, arrays, sources, target, normalization, labels)
