"""Chaining a segmentation model after synthesis: check first, then segment with the completed set.

The point of synthesis here is to let a segmentation model that needs all four sequences run on a
case where one is missing. The check runs before synthesis, because finding out after minutes of
synthesis that the segmentation model also needs a sequence nobody has would waste them. These
functions are Qt-free: the command line and Slicer's "Segment after synthesis" both call them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import SimpleITK as sitk

from cones.data.geometry import check_same_grid, resample_to_reference
from cones.data.io import write_image
from cones.marking import mark_image
from cones.outputs import OutputExistsError
from cones.segmentation.base import SegmentationInfo, SegmentationModel, describe_validation_scores
from cones.sequences import Sequence, parse_sequence

__all__ = [
    "check_segmentation_grids",
    "check_segmentation_inputs",
    "segment_to_file",
    "segment_with_synthesis",
    "synthesized_sequences_used",
    "synthetic_segmentation_note",
]


def check_segmentation_inputs(
    model: SegmentationModel | SegmentationInfo,
    given: Iterable[Sequence | str],
    synthesized: Iterable[Sequence | str] = (),
) -> None:
    """Refuse a chain whose segmentation model needs a sequence that is neither given nor synthesized.

    Call it before synthesis starts, with the synthesis model's targets as ``synthesized``.

    Args:
        model: the segmentation model, or its :class:`SegmentationInfo` (enough, and read without
            loading the network).
        given: the sequences the user provides (the synthesis sources and any others); a set of all
            available sequences works too.
        synthesized: the sequences synthesis will make.

    Raises:
        ValueError: a needed sequence is in neither set; the message lists what is needed, given and
            synthesized.
    """
    given, synthesized = _parsed(given), _parsed(synthesized)
    missing = [seq for seq in model.sequences if seq not in given and seq not in synthesized]
    if missing:
        raise ValueError(
            f"the segmentation model {model.source} needs {_names(model.sequences)}, but {_names(missing)} is "
            f"neither given (given: {_names(given)}) nor synthesized (synthesis makes {_names(synthesized)})"
        )


def synthesized_sequences_used(
    model: SegmentationModel | SegmentationInfo,
    given: Iterable[Sequence | str],
    synthesized: Iterable[Sequence | str],
) -> tuple[Sequence, ...]:
    """The synthesized sequences the segmentation model will use: those it needs that are not given.

    Given sequences win (see :func:`segment_with_synthesis`), so a label map uses synthetic input,
    and must say so, exactly when this is not empty.
    """
    given, synthesized = _parsed(given), _parsed(synthesized)
    return tuple(seq for seq in model.sequences if seq in synthesized and seq not in given)


def check_segmentation_grids(model: SegmentationModel, given: Mapping[Sequence | str, sitk.Image]) -> None:
    """Refuse given images the segmentation model would use that do not share one grid.

    Synthesis returns its output on the grid of its first source, so this is all there is to check
    before synthesis runs (without resampling).

    Raises:
        ValueError: two of the model's given sequences are on different grids (the message says how).
    """
    used = {seq: image for seq, image in _keyed(given).items() if seq in model.sequences}
    if used:
        check_same_grid(used, "segmentation input")


def segment_with_synthesis(
    model: SegmentationModel,
    given: Mapping[Sequence | str, sitk.Image],
    synthesized: Mapping[Sequence | str, sitk.Image],
    resample: bool = False,
) -> sitk.Image:
    """Segment with the given sequences, completed by the synthesized ones (given ones win).

    This is the Qt-free call behind Slicer's "Segment after synthesis": the label map has the
    geometry of the first of the model's sequences and the values of ``model.labels``.

    Args:
        model: the segmentation model.
        given: the acquired images.
        synthesized: the synthesized images, all on the grid synthesis wrote them on.
        resample: resample given images on other grids onto the synthesized grid (linear), as
            ``cones synthesize --resample`` did for the synthesis sources; otherwise they are refused.

    Raises:
        ValueError: see :func:`check_segmentation_inputs` and :meth:`SegmentationModel.segment`.
    """
    given, synthesized = _keyed(given), _keyed(synthesized)
    check_segmentation_inputs(model, given, synthesized)
    if resample and synthesized:
        grid = next(iter(synthesized.values()))
        given = {seq: resample_to_reference(image, grid) for seq, image in given.items() if seq in model.sequences}
    return model.segment({**synthesized, **given})


def segment_to_file(
    model: SegmentationModel,
    given: Mapping[Sequence | str, sitk.Image],
    synthesized: Mapping[Sequence | str, sitk.Image],
    output: str | os.PathLike[str],
    overwrite: bool = False,
    resample: bool = False,
    marking: str | None = None,
) -> Path:
    """Segment with given and synthesized images and write the label map with the inputs' geometry.

    Args:
        model: the segmentation model.
        given: the acquired images.
        synthesized: the synthesized images.
        output: the label map file to write (``.nii.gz``, ``.nrrd``, ...).
        overwrite: replace an existing ``output``.
        resample: see :func:`segment_with_synthesis`.
        marking: the header text of a label map that used a synthesized sequence
            (:func:`cones.marking.segmentation_marking`), written where synthesized volumes carry
            theirs (:func:`cones.marking.mark_image`); None writes no marking.

    Returns:
        ``output`` as a :class:`~pathlib.Path`.

    Raises:
        OutputExistsError: ``output`` exists and ``overwrite`` is false (checked before segmenting).
        ValueError: see :func:`segment_with_synthesis`.
    """
    output = Path(output)
    if output.exists() and not overwrite:
        raise OutputExistsError(output)
    label_map = segment_with_synthesis(model, given, synthesized, resample=resample)
    if marking is not None:
        mark_image(label_map, marking)
    return write_image(label_map, output, overwrite=overwrite)


def _keyed(images: Mapping[Sequence | str, sitk.Image]) -> dict[Sequence, sitk.Image]:
    return {parse_sequence(name): image for name, image in images.items()}


def _parsed(names: Iterable[Sequence | str]) -> tuple[Sequence, ...]:
    return tuple(parse_sequence(name) for name in names)


def synthetic_segmentation_note(info: SegmentationInfo, used: tuple[Sequence, ...]) -> str:
    """What to tell of a label map computed with synthesized ``used`` sequences: how it is marked, what to expect."""
    names = ", ".join(seq.display_name for seq in used)
    expectation = describe_validation_scores(info.validation_scores, used) or (
        f"{info.source.name} records no Dice measured with {names} synthesized"
    )
    return f"it was computed with synthesized {names} and is marked as such (header and sidecar); {expectation}"


def _names(sequences: Iterable[Sequence]) -> str:
    return ", ".join(seq.display_name for seq in sequences) or "none"
