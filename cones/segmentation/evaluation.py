"""The downstream experiment (``cones evaluate-segmentation``, the paper's Table 5).

For every labelled case, one segmentation model segments the case several ways: with all real
sequences; with one sequence missing and replaced by an empty scan (zeros); by the training mean;
by a copy of another sequence (T1 for T1ce: the anatomy without the contrast); by the learned-linear
map of the others (fitted on the training cases); and by each synthesis model (CoNeS and any
baselines) from the others. Dice and HD95 per BraTS region against the reference show how much of
the lost accuracy each stand-in wins back, and a Wilcoxon signed-rank test per region says whether
each differs from CoNeS. Empty regions
are scored as :mod:`cones.segmentation.metrics` describes: Dice is defined for every case (both
empty: 1, one empty: 0), HD95 is NaN where undefined and averaged over the cases where it is not.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Callable, Mapping
from collections.abc import Sequence as SequenceOf
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from cones.checkpoint import LoadedModel
from cones.config import NormalizationConfig
from cones.data.discovery import find_cases, require_sequences
from cones.data.geometry import check_same_grid
from cones.data.io import array_to_image, image_to_array, read_image
from cones.evaluation.evaluate import _model_names as model_names  # the names `cones evaluate` gives models
from cones.evaluation.fitted import fit_baselines
from cones.evaluation.linear import LearnedLinear
from cones.inference import SynthesisOptions, synthesize_images
from cones.metrics import wilcoxon_signed_rank
from cones.segmentation.base import Imputation, SegmentationModel, ValidationScores
from cones.segmentation.labels import BratsRegion, detect_labels
from cones.segmentation.metrics import score_regions
from cones.sequences import Sequence, parse_sequence

__all__ = [
    "CSV_NAME",
    "MARKDOWN_NAME",
    "Condition",
    "SegmentationRow",
    "StandIn",
    "default_copy_source",
    "evaluate_segmentation",
    "read_rows",
    "summary_markdown",
    "validation_scores",
]

_LOG = logging.getLogger(__name__)
CSV_NAME = "segmentation.csv"
MARKDOWN_NAME = "segmentation.md"

StandIn = Callable[[str, Mapping[Sequence, sitk.Image]], sitk.Image]
"""Makes the missing sequence of a case (its id, its real images) from the sequences that are there."""


@dataclass(frozen=True)
class Condition:
    """One way of feeding the segmentation model.

    Attributes:
        key: the ``condition`` column of the CSV: ``real``, ``zeros``, ``mean`` (the values of
            :class:`~cones.segmentation.base.Imputation`), ``copy-<sequence>``, ``linear`` or a
            synthesis model's name.
        title: the row title of the summary table.
        stand_in: what takes the missing sequence's place; None for the real and the imputed rows,
            which the segmentation model feeds itself.
        is_cones: a CoNeS synthesis row (the first is what the other rows are tested against).
    """

    key: str
    title: str
    stand_in: StandIn | None = None
    is_cones: bool = False


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
    copy_from: Sequence | str | None = None,
    fit_from: str | os.PathLike[str] | None = None,
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
        copy_from: the sequence whose copy stands in for ``missing`` (default: :func:`default_copy_source`).
        fit_from: cases (the training data) the learned-linear map of the other sequences to ``missing``
            is fitted on; None: leave-one-out over the evaluated cases (no linear row for one case).

    Returns:
        The rows of the CSV.

    Raises:
        ValueError: ``missing`` is not one of the model's sequences, a synthesis model does not make
            it or needs it, ``copy_from`` is ``missing`` or not an input of the model, a case lacks a
            sequence or label map, or a label map is not on its images' grid.
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
    copy_from = parse_sequence(copy_from) if copy_from is not None else default_copy_source(missing, model.sequences)
    if copy_from == missing or copy_from not in model.sequences:
        raise ValueError(
            f"copy_from={copy_from.display_name} must be another input of the segmentation model "
            f"({_names(model.sequences)}) than missing={missing.display_name}"
        )
    output = Path(output)
    for name in (CSV_NAME, MARKDOWN_NAME):
        if (output / name).exists() and not overwrite:
            raise FileExistsError(f"{output / name} already exists; pass --overwrite to replace it")
    needed = tuple(dict.fromkeys([*model.sequences, *(seq for s in synthesis for seq in s.card.sources)]))
    cases = require_sequences(find_cases(data), needed)
    unlabelled = [case.case_id for case in cases if case.label is None]
    if unlabelled:
        raise ValueError(f"case(s) {', '.join(unlabelled)} have no label map; every case needs one")
    others = tuple(seq for seq in model.sequences if seq != missing)
    baselines = fit_baselines(cases, Path(fit_from) if fit_from else None, others, missing, NormalizationConfig())
    linear = baselines.linear if baselines is not None else None
    conditions = _conditions(model, missing, synthesis, copy_from, linear, options)
    rows: list[SegmentationRow] = []
    for done, case in enumerate(cases, start=1):
        images = {seq: read_image(case.sequences[seq]) for seq in needed}
        reference_image = read_image(case.label)
        check_same_grid({**images, "label map": reference_image}, f"case {case.case_id}")
        reference = np.rint(image_to_array(reference_image)).astype(np.int64)
        reference_labels = detect_labels(reference)
        spacing = reference_image.GetSpacing()[::-1]
        for condition in conditions:
            prediction = _segment(model, case.case_id, images, missing, condition)
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


def default_copy_source(missing: Sequence, sequences: SequenceOf[Sequence]) -> Sequence:
    """The sequence whose copy is the plain stand-in for ``missing``: the one of the same weighting.

    T1 for T1ce (the paper's copy-T1: the anatomy is right, only the contrast agent is missing) and
    T1ce for T1; T2 for FLAIR and FLAIR for T2. The first other input when that one is not an input.
    """
    partner = {
        Sequence.T1CE: Sequence.T1,
        Sequence.T1: Sequence.T1CE,
        Sequence.FLAIR: Sequence.T2,
        Sequence.T2: Sequence.FLAIR,
    }.get(missing)
    if partner in sequences:
        return partner
    return next(seq for seq in sequences if seq != missing)


def _conditions(
    model: SegmentationModel,
    missing: Sequence,
    synthesis: SequenceOf[LoadedModel],
    copy_from: Sequence,
    linear: LearnedLinear | None,
    options: SynthesisOptions | None,
) -> list[Condition]:
    name = missing.display_name
    conditions = [Condition("real", "all real sequences"), Condition("zeros", f"{name} = zeros")]
    if model.training_means is not None:
        conditions.append(Condition("mean", f"{name} = training mean"))
    else:
        _LOG.warning("%s records no training means; the mean-imputation row is left out", model.source)
    conditions.append(
        Condition(f"copy-{copy_from.value}", f"{name} = copy of {copy_from.display_name}", _copy(copy_from))
    )
    if linear is not None:
        conditions.append(Condition("linear", f"{name} = learned-linear map", _linear_map(linear)))
    else:
        _LOG.warning("the learned-linear row is left out: one case and no fit_from cases")
    names = model_names(synthesis) if synthesis else []
    for key, synthesizer in zip(names, synthesis, strict=True):
        conditions.append(
            Condition(
                key,
                f"{name} = {key} synthesis",
                _synthesis(synthesizer, missing, options),
                is_cones=synthesizer.card.architecture == "cones",
            )
        )
    return conditions


def _copy(sequence: Sequence) -> StandIn:
    return lambda case_id, images: images[sequence]


def _linear_map(linear: LearnedLinear) -> StandIn:
    def predict(case_id: str, images: Mapping[Sequence, sitk.Image]) -> sitk.Image:
        linear_map = linear.maps[case_id]
        arrays = {seq: image_to_array(images[seq]) for seq in linear_map.sources}
        return array_to_image(linear_map.predict(arrays).astype(np.float32), images[linear_map.sources[0]])

    return predict


def _synthesis(synthesizer: LoadedModel, missing: Sequence, options: SynthesisOptions | None) -> StandIn:
    def synthesize(case_id: str, images: Mapping[Sequence, sitk.Image]) -> sitk.Image:
        return synthesize_images(synthesizer, images, options=options)[missing]

    return synthesize


def _segment(
    model: SegmentationModel,
    case_id: str,
    images: dict[Sequence, sitk.Image],
    missing: Sequence,
    condition: Condition,
) -> sitk.Image:
    if condition.key == "real":
        return model.segment(images)
    others = {seq: image for seq, image in images.items() if seq != missing}
    if condition.stand_in is not None:  # given the others only, so that no stand-in can see the real sequence
        return model.segment({**others, missing: condition.stand_in(case_id, others)})
    return model.segment(others, impute={missing: Imputation(condition.key)})


def read_rows(path: str | os.PathLike[str]) -> list[SegmentationRow]:
    """The rows of a ``segmentation.csv`` that :func:`evaluate_segmentation` wrote."""
    with Path(path).open(newline="", encoding="utf-8") as stream:
        return [
            SegmentationRow(
                row["case_id"],
                row["condition"],
                row["region"],
                float(row["dice"]),
                float(row["hd95"]),
                int(row["reference_voxels"]),
                int(row["predicted_voxels"]),
            )
            for row in csv.DictReader(stream)
        ]


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
    When a CoNeS synthesis row is present, a second table gives the two-sided Wilcoxon signed-rank
    p-value of each other row's per-case Dice against the first CoNeS row's, per region.
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
                cells.append(_mean_sd(_scores(rows, condition.key, region, metric), digits))
        lines.append(f"| {condition.title} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Empty regions: both reference and prediction empty scores Dice 1, exactly one empty Dice 0; HD95 is "
        "undefined (NaN in the CSV) when either is empty and is averaged over the cases where it is defined.",
    ]
    reference = next((condition for condition in conditions if condition.is_cones), None)
    if reference is not None:
        lines += [
            "",
            f"Wilcoxon signed-rank test (two-sided) of per-case Dice against {reference.title}: p-value, and the "
            "cases where the row's Dice is higher / lower.",
            "",
            "| Input | " + " | ".join(f"p Dice {region}" for region in regions) + " |",
            "|---|" + "---:|" * len(regions),
        ]
        for condition in conditions:
            if condition is reference:
                continue
            cells = []
            for region in regions:
                first = _scores(rows, condition.key, region, "dice")
                second = _scores(rows, reference.key, region, "dice")
                test = wilcoxon_signed_rank(first, second)
                cells.append(f"{test.p_value:.3f} ({int(np.sum(first > second))}/{int(np.sum(first < second))})")
            lines.append(f"| {condition.title} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def validation_scores(
    rows: SequenceOf[SegmentationRow],
    condition: str,
    synthesized: tuple[Sequence, ...] = (),
    synthesis_model: str = "",
) -> ValidationScores:
    """The mean Dice and HD95 per region of one condition of the table, as a model card records them.

    Raises:
        ValueError: the rows hold no case of ``condition``.
    """
    regions = [region.value for region in BratsRegion]
    dice = [_scores(rows, condition, region, "dice") for region in regions]
    if not all(len(scores) for scores in dice):
        raise ValueError(f"the rows hold no case of condition {condition!r}")
    hd95 = [_scores(rows, condition, region, "hd95") for region in regions]
    return ValidationScores(
        synthesized,
        synthesis_model,
        len(dice[0]),
        tuple(float(scores.mean()) for scores in dice),
        tuple(float(np.nanmean(scores)) if np.isfinite(scores).any() else float("nan") for scores in hd95),
    )


def _scores(rows: SequenceOf[SegmentationRow], condition: str, region: str, metric: str) -> np.ndarray:
    """One score of every case under ``condition`` in ``region``, in the cases' order."""
    return np.array([getattr(row, metric) for row in rows if row.condition == condition and row.region == region])


def _mean_sd(values: np.ndarray, digits: int) -> str:
    defined = values[np.isfinite(values)]
    if not len(defined):
        return "n/a"
    cell = f"{defined.mean():.{digits}f} ± {defined.std():.{digits}f}"
    return cell if len(defined) == len(values) else f"{cell} (n={len(defined)}/{len(values)})"


def _names(sequences: SequenceOf[Sequence]) -> str:
    return ", ".join(seq.display_name for seq in sequences)
