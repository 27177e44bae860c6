"""``cones evaluate``: score models and baselines on held-out cases, with statistics and spectra.

One pass over the cases synthesizes every model's prediction, scores it in every region
(:mod:`cones.metrics.regions`; SSIM in 2D along the models' slice axis, since they translate
slices) under both intensity protocols (:mod:`cones.evaluation.protocols`), records where each
method puts the brain's intensities (:mod:`cones.evaluation.intensity`), accumulates the spectra of
real and synthesized slices, and keeps one slice per case for the example figure;
:mod:`cones.evaluation.report` then writes what the paper reports: per-case scores, mean ± std
with Wilcoxon tests between methods, and Fig. 4. Besides the models, the baselines that need no
network are scored: copying the first source, zero and mean imputation, and the learned-linear map
(:mod:`cones.evaluation.fitted`).
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Sequence as SequenceOf
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cones.checkpoint import LoadedModel, load_model
from cones.config import NormalizationConfig
from cones.data import CaseFiles, find_cases, require_sequences
from cones.evaluation.cases import load_case_volumes
from cones.evaluation.fitted import fit_baselines
from cones.evaluation.intensity import BrainIntensity, ContrastRegions, brain_intensity, write_intensity_calibration
from cones.evaluation.linear import LinearCeiling
from cones.evaluation.methods import CaseVolumes, CopySource, Method, ModelMethod, ZeroImputation
from cones.evaluation.protocols import IntensityProtocol, on_protocol
from cones.evaluation.report import EXAMPLE_LIMIT, Example, write_report, write_uncertainty_report
from cones.inference import SynthesisOptions
from cones.metrics import Region, SpectrumAccumulator, evaluation_regions, region_scores
from cones.metrics.brasyn import BRASYN_WINDOW, brasyn_ssim
from cones.precision import Precision
from cones.sequences import Sequence
from cones.trust.calibration import UncertaintyCalibration, calibrate_uncertainty, synthesis_error

__all__ = ["EvaluationResult", "evaluate"]

logger = logging.getLogger(__name__)

REAL = "real"
"""Name of the real target among the spectra and the intensity calibration."""
_BRASYN_PARTS = ("tumour", "non_tumour")


@dataclass(frozen=True)
class EvaluationResult:
    """The files ``evaluate`` wrote and the summary it computed (also in ``summary.json``)."""

    output_dir: Path
    files: dict[str, Path]
    summary: dict[str, Any] = field(repr=False)


def _common_card(models: SequenceOf[LoadedModel]) -> tuple[Sequence, NormalizationConfig, int]:
    """The one target, normalization and slice axis every model must share to be compared."""
    first = models[0].card
    if len(first.targets) != 1:
        raise ValueError(f"{models[0].path} synthesizes {len(first.targets)} sequences; evaluate one target at a time")
    for model in models[1:]:
        card = model.card
        for name, mine, theirs in (
            ("targets", card.targets, first.targets),
            ("normalization", card.normalization, first.normalization),
            ("slice axis", card.slice_axis, first.slice_axis),
        ):
            if mine != theirs:
                raise ValueError(f"{model.path} and {models[0].path} differ in {name}: {mine} vs {theirs}")
    return first.targets[0], first.normalization, first.slice_axis


def _model_names(models: SequenceOf[LoadedModel]) -> list[str]:
    """The architecture's name, with the run folder's name when two models share an architecture."""
    archs = [model.card.architecture.value for model in models]
    names = [
        arch if archs.count(arch) == 1 else f"{arch}:{model.path.parent.name}/{model.path.stem}"
        for arch, model in zip(archs, models, strict=True)
    ]
    if len(set(names)) != len(names):
        raise ValueError(f"models must be distinct files, got {[str(model.path) for model in models]}")
    return names


def _select_cases(data_dir: Path, case_ids: SequenceOf[str], required: SequenceOf[Sequence]) -> list[CaseFiles]:
    cases = require_sequences(find_cases(data_dir), required)
    unknown = sorted(set(case_ids) - {case.case_id for case in cases})
    if unknown:
        raise ValueError(f"case(s) {unknown} are not in {data_dir}")
    return [case for case in cases if case.case_id in case_ids] if case_ids else cases


def _score_rows(
    case: CaseVolumes, predictions: dict[str, np.ndarray], regions: dict[Region, np.ndarray], axis: int
) -> list[dict[str, Any]]:
    """One row per protocol, method and region: the case's PSNR, SSIM (2D, slices along ``axis``) and MAE there."""
    rows = []
    for protocol in IntensityProtocol:
        real = on_protocol(case.target, case.mask, protocol)
        for name, prediction in predictions.items():
            scored = on_protocol(prediction, case.mask, protocol)
            for region, scores in region_scores(scored, real, regions, axis).items():
                values = {metric.value: value for metric, value in scores.items()}
                row = {"case": case.case_id, "method": name, "protocol": protocol.value, "region": region.value}
                rows.append({**row, **values})
    return rows


def _brain_intensities(
    case: CaseVolumes, predictions: dict[str, np.ndarray], regions: dict[Region, np.ndarray]
) -> dict[tuple[str, str], BrainIntensity]:
    """By (case, method): the brain's median, 90th percentile and enhancement contrast, the real target's included."""
    volumes = {REAL: case.target, **predictions}
    contrast = ContrastRegions.of(regions)
    return {(case.case_id, name): brain_intensity(volume, case.mask, contrast) for name, volume in volumes.items()}


def _brasyn_rows(case: CaseVolumes, predictions: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """BraSyn's tumour and non-tumour SSIM of every prediction, for a case with a tumour label and a raw target.

    A constant prediction (zero imputation) has no percentile scale and gets no row, and a volume
    thinner than the 3D window has no score (a warning says so).
    """
    if case.labels is None or case.raw_target is None or not (case.labels > 0).any():
        return []
    if min(case.labels.shape) < BRASYN_WINDOW:
        logger.warning("%s: no BraSyn SSIM, the volume %s is thinner than its window", case.case_id, case.labels.shape)
        return []
    tumour = case.labels > 0
    rows = []
    for name, prediction in predictions.items():
        if np.ptp(prediction) == 0:
            continue
        scores = brasyn_ssim(prediction, case.raw_target, tumour)
        rows.append({"case": case.case_id, "method": name, "tumour": scores.tumour, "non_tumour": scores.non_tumour})
    return rows


def _write_brasyn(output_dir: Path, rows: list[dict[str, Any]]) -> tuple[dict[str, Path], dict[str, Any]]:
    """``brasyn_ssim.csv`` (a row per case and method) and the summary's means per method."""
    path = output_dir / "brasyn_ssim.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["case", "method", "tumour", "non_tumour"])
        writer.writeheader()
        writer.writerows(rows)
    methods = list(dict.fromkeys(row["method"] for row in rows))
    means = {
        method: {part: float(np.mean([row[part] for row in rows if row["method"] == method])) for part in _BRASYN_PARTS}
        for method in methods
    }
    section = {
        "quantity": "BraSyn 2023 SSIM: 3D Gaussian SSIM (11 voxels, sigma 1.5) of the tumour-masked and "
        "non-tumour-masked volumes, each on its own 0.5-99.5 percentiles of the whole volume",
        "mean": means,
        "cases": len({row["case"] for row in rows}),
    }
    return {path.name: path}, section


def _add_spectra(
    spectra: dict[str, SpectrumAccumulator], case: CaseVolumes, predictions: dict[str, np.ndarray], axis: int
) -> None:
    """Add the brain's slices of the real target and of every prediction to their spectra."""
    brain_slices = np.flatnonzero(case.mask.any(axis=tuple(a for a in range(3) if a != axis)))
    for name, volume in {REAL: case.target, **predictions}.items():
        stack = np.moveaxis(np.take(volume, brain_slices, axis=axis), axis, 0)
        spectra.setdefault(name, SpectrumAccumulator(min(stack.shape[1:]) // 2)).add(stack)


def _example(case: CaseVolumes, predictions: dict[str, np.ndarray], axis: int) -> Example:
    """The slice through the tumour's centre (the brain's, without labels) of the real target and every method."""
    region = case.labels > 0 if case.labels is not None and (case.labels > 0).any() else case.mask
    index = round(float(np.nonzero(region)[axis].mean()))
    planes = {REAL: case.target, **predictions}
    return Example(case.case_id, {name: np.take(volume, index, axis=axis) for name, volume in planes.items()})


def evaluate(
    model_paths: SequenceOf[str | os.PathLike[str]],
    data_dir: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    case_ids: SequenceOf[str] = (),
    fit_from: str | os.PathLike[str] | None = None,
    device: str = "auto",
    batch_size: int | None = None,
    overwrite: bool = False,
    precision: Precision | str = Precision.AUTO,
    uncertainty: bool = False,
    ceiling: bool = False,
) -> EvaluationResult:
    """Score models and the baselines on the cases of ``data_dir`` under both protocols; write the report.

    Args:
        model_paths: model files; all must synthesize the same single target with the same
            normalization and slice axis. The first one is the reference of the Table-1 p-values.
        data_dir: folder of case folders with the models' sources, the target and optionally labels.
        output_dir: where ``metrics.csv`` (a row per case, protocol, method and region),
            ``summary.json``, ``table.md`` (a table per protocol), ``calibration.csv`` and
            ``calibration.png`` (the brain's median and 90th percentile per method and case),
            ``spectrum.png``, ``spectrum.csv`` and ``examples.png`` are written, and for cases with
            tumour labels ``brasyn_ssim.csv`` (BraSyn 2023's tumour and non-tumour SSIM,
            :mod:`cones.metrics.brasyn`).
        case_ids: evaluate only these cases (default: all).
        fit_from: folder of cases (e.g. the training data) the mean imputation and the
            learned-linear map are fitted on; default: leave-one-out over the evaluated cases
            (both skipped, with a warning, for a single case).
        device: ``auto``, ``cpu`` or ``cuda``.
        batch_size: slices per forward pass (``None``: 1 on the CPU, 4 on CUDA).
        overwrite: replace the files of an earlier evaluation in ``output_dir``.
        precision: ``auto``, ``fp32`` or ``bf16`` (see :mod:`cones.precision`).
        uncertainty: also compute every model's uncertainty map (:mod:`cones.trust.uncertainty`;
            about 4x the synthesis time) and write how it relates to the error:
            ``uncertainty.csv`` (Spearman correlation, error of the most uncertain tenth over the least
            uncertain half, mean error per decile) and ``uncertainty_calibration.png``.
        ceiling: also score ``linear_ceiling`` (:class:`~cones.evaluation.linear.LinearCeiling`), the
            linear map of the sources fitted on each case's own target: how far any per-case intensity
            recalibration could go, beside the baselines fitted on other cases.

    Raises:
        ValueError: no model, models that cannot be compared, unknown case ids, missing sequences.
        FileExistsError: ``output_dir`` holds an evaluation and ``overwrite`` is false.
    """
    if not model_paths:
        raise ValueError("evaluate needs at least one model")
    output_dir = Path(output_dir)
    if (output_dir / "summary.json").exists() and not overwrite:
        raise FileExistsError(f"{output_dir} already holds an evaluation; pass --overwrite to replace it")
    models = [load_model(path, device="cpu") for path in model_paths]
    target, normalization, axis = _common_card(models)
    sources = tuple(dict.fromkeys(seq for model in models for seq in model.card.sources))
    cases = _select_cases(Path(data_dir), case_ids, (*sources, target))
    methods: list[Method] = [
        *(
            ModelMethod(name, model, SynthesisOptions(device=device, batch_size=batch_size, precision=precision))
            for name, model in zip(_model_names(models), models, strict=True)
        ),
        CopySource(models[0].card.sources[0], normalization),
        ZeroImputation(),
    ]
    fitted = fit_baselines(cases, Path(fit_from) if fit_from else None, sources, target, normalization)
    methods.extend([fitted.mean, fitted.linear] if fitted is not None else [])
    methods.extend([LinearCeiling(sources, normalization)] if ceiling else [])

    rows: list[dict[str, Any]] = []
    spectra: dict[str, SpectrumAccumulator] = {}
    examples: list[Example] = []
    calibrations: dict[tuple[str, str], UncertaintyCalibration] = {}
    intensities: dict[tuple[str, str], BrainIntensity] = {}
    brasyn: list[dict[str, Any]] = []
    for number, case in enumerate(cases, start=1):
        logger.info("evaluating case %d of %d: %s", number, len(cases), case.case_id)
        volumes = load_case_volumes(case, sources, target, normalization)
        predictions = {}
        for method in methods:
            if uncertainty and isinstance(method, ModelMethod):
                predictions[method.name], uncertainty_map = method.predict_with_uncertainty(volumes)
                brain = volumes.target_brain
                error = synthesis_error(predictions[method.name], volumes.target, brain)
                calibrations[(case.case_id, method.name)] = calibrate_uncertainty(uncertainty_map, error, brain)
            else:
                predictions[method.name] = method.predict(volumes)
        regions = evaluation_regions(volumes.mask, volumes.labels)
        rows.extend(_score_rows(volumes, predictions, regions, axis))
        intensities.update(_brain_intensities(volumes, predictions, regions))
        brasyn.extend(_brasyn_rows(volumes, predictions))
        _add_spectra(spectra, volumes, predictions, axis)
        if len(examples) < EXAMPLE_LIMIT:
            examples.append(_example(volumes, predictions, axis))
    described = {method.name: method.description for method in methods}
    files, summary = write_report(output_dir, rows, described, spectra, REAL, examples, target)
    summary["baselines"] = fitted.to_dict() if fitted is not None else None
    title = f"{target.display_name}: brain intensities of each method against the real target"
    calibration_files, summary["calibration"] = write_intensity_calibration(output_dir, intensities, REAL, title)
    files.update(calibration_files)
    if brasyn:
        brasyn_files, summary["brasyn_ssim"] = _write_brasyn(output_dir, brasyn)
        files.update(brasyn_files)
    if uncertainty:
        uncertainty_files, summary["uncertainty"] = write_uncertainty_report(output_dir, calibrations, target)
        files.update(uncertainty_files)
    files["summary.json"] = output_dir / "summary.json"
    files["summary.json"].write_text(json.dumps(summary, indent=2) + "\n")
    return EvaluationResult(output_dir, files, summary)
