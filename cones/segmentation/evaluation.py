"""The downstream experiment (``cones evaluate-segmentation``, the paper's Table 5).

For every labelled case, one segmentation model segments the case several ways: with all real
sequences; with one sequence missing and replaced by an empty scan (zeros); by the training mean;
and by each synthesis model (CoNeS and any baselines) from the others. Dice and HD95 per BraTS
region against the reference show how much of the lost accuracy synthesis wins back. Empty regions
are scored as :mod:`cones.segmentation.metrics` describes: Dice is defined for every case (both
empty: 1, one empty: 0), HD95 is NaN where undefined and averaged over the cases where it is not.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Callable
from collections.abc import Sequence as SequenceOf
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from cones.checkpoint import LoadedModel
from cones.data.discovery import find_cases, require_sequences
from cones.data.geometry import check_same_grid
from cones.data.io import image_to_array, read_image
from cones.evaluation.evaluate import _model_names as model_names  # the names `cones evaluate` gives models
from cones.inference import SynthesisOptions, synthesize_images
from cones.segmentation.base import Imputation, SegmentationModel
from cones.segmentation.labels import BratsRegion, detect_labels
from cones.segmentation.metrics import score_regions
from cones.sequences import Sequence, parse_sequence

__all__ = ["CSV_NAME", "MARKDOWN_NAME", "Condition", "SegmentationRow", "evaluate_segmentation", "summary_markdown"]

_LOG = logging.getLogger(__name__)
CSV_NAME = "segmentation.csv"
MARKDOWN_NAME = "segmentation.md"


@dataclass(frozen=True)
class Condition:
    """One way of feeding the segmentation model.

    Attributes:
        key: the ``condition`` column of the CSV: ``real``, ``zeros``, ``mean`` (the values of
            :class:`~cones.segmentation.base.Imputation`) or a synthesis model's name.
        title: the row title of the summary table.
        synthesis: the model that synthesizes the missing sequence, for synthesis rows.
    """

    key: str
    title: str
    synthesis: LoadedModel | None = None


@dataclass(frozen=True)
class SegmentationRow:
    """One region of one case under one condition (a row of ``segmentation.csv``)."""

    case_id: str
    condition: str
    region: str
    dice: float
    hd95: float
    reference_voxels: int
    predicted_voxels: int


def evaluate_segmentation(
    model: SegmentationModel,
    data: str | os.PathLike[str],
    missing: Sequence | str,
    output: str | os.PathLike[str],
    synthesis: SequenceOf[LoadedModel] = (),
    options: SynthesisOptions | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> list[SegmentationRow]:
    """Run the experiment on every case of ``data`` and write ``segmentation.csv`` and ``segmentation.md``.

    Args:
        model: the segmentation model; it must need ``missing``.
        data: a folder of case folders with every sequence of ``model`` (and of the synthesis models)
            and a label map per case, in either BraTS label convention.
        missing: the sequence taken away.
        output: the folder for the two result files.
        synthesis: models that synthesize ``missing`` from other sequences (CoNeS and baselines), one
            row each; without any, only the real, zero and mean rows are made.
        options: device and batch size of synthesis.
        overwrite: replace existing result files.
        progress: called as ``progress(cases done, cases)``.

    Returns:
        The rows of the CSV.

    Raises:
        ValueError: ``missing`` is not one of the model's sequences, a synthesis model does not make
            it or needs it, a case lacks a sequence or label map, or a label map is not on its
            images' grid.
        FileExistsError: a result file exists and ``overwrite`` is false.
    """
    missing = parse_sequence(missing)
    if missing not in model.sequences:
        raise ValueError(
            f"missing={missing.display_name} is not an input of the segmentation model ({_names(model.sequences)})"
        )
    for synthesizer in synthesis:
        card = synthesizer.card
        if missing not in card.targets:
            raise ValueError(
                f"{synthesizer.path} synthesizes {_names(card.targets)}, not missing={missing.display_name}"
            )
        if missing in card.sources:
            raise ValueError(f"{synthesizer.path} needs missing={missing.display_name} as a source")
    output = Path(output)
    for name in (CSV_NAME, MARKDOWN_NAME):
        if (output / name).exists() and not overwrite:
            raise FileExistsError(f"{output / name} already exists; pass --overwrite to replace it")
    needed = tuple(dict.fromkeys([*model.sequences, *(seq for s in synthesis for seq in s.card.sources)]))
    cases = require_sequences(find_cases(data), needed)
    unlabelled = [case.case_id for case in cases if case.label is None]
    if unlabelled:
        raise ValueError(f"case(s) {', '.join(unlabelled)} have no label map; every case needs one")
    conditions = _conditions(model, missing, synthesis)
    rows: list[SegmentationRow] = []
    for done, case in enumerate(cases, start=1):
        images = {seq: read_image(case.sequences[seq]) for seq in needed}
        reference_image = read_image(case.label)
        check_same_grid({**images, "label map": reference_image}, f"case {case.case_id}")
        reference = np.rint(image_to_array(reference_image)).astype(np.int64)
        reference_labels = detect_labels(reference)
        spacing = reference_image.GetSpacing()[::-1]
        for condition in conditions:
            prediction = _segment(model, images, missing, condition, options)
            scores = score_regions(image_to_array(prediction), model.labels, reference, reference_labels, spacing)
            rows.extend(
                SegmentationRow(
                    case.case_id,
                    condition.key,
                    score.region.value,
                    score.dice,
                    score.hd95,
                    score.reference_voxels,
                    score.predicted_voxels,
                )
                for score in scores
            )
        _LOG.info("case %s done (%d of %d)", case.case_id, done, len(cases))
        if progress is not None:
            progress(done, len(cases))
    output.mkdir(parents=True, exist_ok=True)
    _write_csv(output / CSV_NAME, rows)
    (output / MARKDOWN_NAME).write_text(summary_markdown(rows, conditions, missing, len(cases)), encoding="utf-8")
    return rows


def _conditions(model: SegmentationModel, missing: Sequence, synthesis: SequenceOf[LoadedModel]) -> list[Condition]:
    name = missing.display_name
    conditions = [Condition("real", "all real sequences"), Condition("zeros", f"{name} = zeros")]
    if model.training_means is not None:
        conditions.append(Condition("mean", f"{name} = training mean"))
    else:
        _LOG.warning("%s records no training means; the mean-imputation row is left out", model.source)
    names = model_names(synthesis) if synthesis else []
    for key, synthesizer in zip(names, synthesis, strict=True):
        conditions.append(Condition(key, f"{name} = {key} synthesis", synthesizer))
    return conditions


def _segment(
    model: SegmentationModel,
    images: dict[Sequence, sitk.Image],
    missing: Sequence,
    condition: Condition,
    options: SynthesisOptions | None,
) -> sitk.Image:
    if condition.key == "real":
        return model.segment(images)
    others = {seq: image for seq, image in images.items() if seq != missing}
    if condition.synthesis is not None:
        synthesized = synthesize_images(condition.synthesis, others, options=options)
        return model.segment({**others, missing: synthesized[missing]})
    return model.segment(others, impute={missing: Imputation(condition.key)})


def _write_csv(path: Path, rows: list[SegmentationRow]) -> None:
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(SegmentationRow.__dataclass_fields__))
        writer.writeheader()
        for row in rows:
            writer.writerow({**asdict(row), "dice": f"{row.dice:.4f}", "hd95": f"{row.hd95:.2f}"})


def summary_markdown(
    rows: SequenceOf[SegmentationRow], conditions: SequenceOf[Condition], missing: Sequence, cases: int
) -> str:
    """A Table-5-style summary: mean ± standard deviation over cases of Dice and HD95 per region.

    HD95 is averaged over the cases where it is defined (both masks non-empty); when it is undefined
    for some, the cell says for how many it was defined (``n=2/3``), and ``n/a`` when for none.
    """
    regions = [region.value for region in BratsRegion]
    header = ["Input", *(f"Dice {region}" for region in regions), *(f"HD95 {region} (mm)" for region in regions)]
    lines = [
        f"Segmentation with {missing.display_name} missing, {cases} case(s); mean ± SD over cases.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    for condition in conditions:
        cells = []
        for metric, digits in (("dice", 3), ("hd95", 1)):
            for region in regions:
                values = np.array(
                    [getattr(row, metric) for row in rows if row.condition == condition.key and row.region == region]
                )
                cells.append(_mean_sd(values, digits))
        lines.append(f"| {condition.title} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Empty regions: both reference and prediction empty scores Dice 1, exactly one empty Dice 0; HD95 is "
        "undefined (NaN in the CSV) when either is empty and is averaged over the cases where it is defined.",
    ]
    return "\n".join(lines) + "\n"


def _mean_sd(values: np.ndarray, digits: int) -> str:
    defined = values[np.isfinite(values)]
    if not len(defined):
        return "n/a"
    cell = f"{defined.mean():.{digits}f} ± {defined.std():.{digits}f}"
    return cell if len(defined) == len(values) else f"{cell} (n={len(defined)}/{len(values)})"


def _names(sequences: SequenceOf[Sequence]) -> str:
    return ", ".join(seq.display_name for seq in sequences)
