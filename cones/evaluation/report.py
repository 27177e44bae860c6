"""The files of an evaluation: per-case scores, the summary with Wilcoxon tests, Table-1s, spectra, examples.

Every score exists under both intensity protocols (:mod:`cones.evaluation.protocols`), so the
summary holds one section and ``table.md`` one table per protocol.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from collections.abc import Sequence as SequenceOf
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from cones.evaluation.protocols import IntensityProtocol
from cones.metrics import (
    HIGH_FREQUENCY,
    Metric,
    Region,
    SpectrumAccumulator,
    mean_and_std,
    profile_distance,
    wilcoxon_signed_rank,
)
from cones.sequences import Sequence
from cones.trust.calibration import DECILES, UncertaintyCalibration, plot_calibration

__all__ = ["EXAMPLE_LIMIT", "Example", "markdown_table", "summarize", "write_report", "write_uncertainty_report"]

EXAMPLE_LIMIT = 4
"""Cases shown in ``examples.png`` (one row each)."""

_TABLE_COLUMNS = (
    (Region.WHOLE, Metric.PSNR),
    (Region.WHOLE, Metric.SSIM),
    (Region.TUMOUR_BBOX, Metric.PSNR),
    (Region.TUMOUR_BBOX, Metric.SSIM),
)
"""The columns of the paper's Tables 1 and 2: PSNR and SSIM of the whole image and the tumour's box."""


_ZOOM_RANGE = 3.0
"""Log-magnitude units around the real high-frequency profile that the zoomed spectrum plot shows."""


@dataclass(frozen=True)
class Example:
    """One slice of one case, per method (and the real target), on [0, 1]."""

    case_id: str
    planes: dict[str, np.ndarray]


def summarize(rows: SequenceOf[Mapping[str, Any]], methods: SequenceOf[str]) -> dict[str, Any]:
    """Mean ± std per region, method and metric, and Wilcoxon tests between every pair of methods.

    Args:
        rows: one dict per case, method and region with a value per :class:`~cones.metrics.Metric`.
        methods: method names in report order.

    Returns:
        ``{"scores": {region: {method: {metric: {mean, std, n}}}},
        "wilcoxon": {region: {metric: [{first, second, p_value, statistic, pairs}]}}}``; only cases
        scored by both methods in a region are paired.
    """
    regions = [region.value for region in Region if any(row["region"] == region.value for row in rows)]
    scores: dict[str, Any] = {}
    tests: dict[str, Any] = {}
    for region in regions:
        by_method = {
            method: {row["case"]: row for row in rows if row["region"] == region and row["method"] == method}
            for method in methods
        }
        scores[region] = {
            method: {metric.value: _mean_std_n([r[metric.value] for r in cases.values()]) for metric in Metric}
            for method, cases in by_method.items()
            if cases
        }
        tests[region] = {metric.value: [] for metric in Metric}
        for first, second in combinations(methods, 2):
            shared = sorted(set(by_method[first]) & set(by_method[second]))
            for metric in Metric:
                result = wilcoxon_signed_rank(
                    [by_method[first][case][metric.value] for case in shared],
                    [by_method[second][case][metric.value] for case in shared],
                )
                tests[region][metric.value].append(
                    {
                        "first": first,
                        "second": second,
                        "p_value": _finite_or_none(result.p_value),
                        "statistic": _finite_or_none(result.statistic),
                        "pairs": result.pairs,
                    }
                )
    return {"scores": scores, "wilcoxon": tests}


def _mean_std_n(values: SequenceOf[float]) -> dict[str, float | int | None]:
    mean, std = mean_and_std(values)
    return {"mean": _finite_or_none(mean), "std": _finite_or_none(std), "n": len(values)}


def _finite_or_none(value: float) -> float | None:
    """JSON has no NaN or infinity: an undefined statistic (or the PSNR of identical images) is null."""
    return float(value) if np.isfinite(value) else None


def _p_value(summary: Mapping[str, Any], region: str, metric: str, first: str, second: str) -> float | None:
    for test in summary["wilcoxon"].get(region, {}).get(metric, []):
        if {test["first"], test["second"]} == {first, second}:
            return test["p_value"]
    return None


def markdown_table(
    summary: Mapping[str, Any],
    reference: str,
    protocol: IntensityProtocol,
    regions: SequenceOf[Region] | None = None,
) -> str:
    """A Table-1-style markdown table: mean ± std per method, p-value of the Wilcoxon test against ``reference``.

    Columns: PSNR (dB) and SSIM of the whole image and of the tumour's bounding box (when the cases
    have labels), the brain MAE under ``protocol``, and on the model scale the spectral distance to
    the real images at high frequencies (the spectra are taken on that scale only). With
    ``regions`` (e.g. the brain and the BraTS label regions), PSNR and SSIM of those regions
    instead, and no spectral column.
    """
    section = summary["protocols"][protocol.value]
    if regions is None:
        wanted = [*_TABLE_COLUMNS, (Region.BRAIN, Metric.MAE)]
    else:
        wanted = [(region, metric) for region in regions for metric in (Metric.PSNR, Metric.SSIM)]
    columns = [
        (region.value, metric.value)
        for region, metric in wanted
        if region.value in section["scores"] or (region, metric) == (Region.BRAIN, Metric.MAE)
    ]
    header = [f"{metric.upper()} {region.replace('_', ' ')}" for region, metric in columns]
    spectral = regions is None and protocol is IntensityProtocol.MODEL_SCALE
    lines = [
        "| method | " + " | ".join(header) + (" | spectral distance (≥ 0.25 cyc/px) |" if spectral else " |"),
        "|---|" + "---:|" * (len(columns) + spectral),
    ]
    for method in summary["methods"]:
        cells = []
        for region, metric in columns:
            entry = section["scores"][region].get(method, {}).get(metric)
            if entry is None:
                cells.append("-")
                continue
            digits = 2 if metric == Metric.PSNR.value else 3
            mean = "inf" if entry["mean"] is None else f"{entry['mean']:.{digits}f}"
            cell = mean if entry["std"] is None else f"{mean} ± {entry['std']:.{digits}f}"
            p_value = None if method == reference else _p_value(section, region, metric, method, reference)
            cells.append(cell + (f" (p={p_value:.3g})" if p_value is not None else ""))
        if spectral:
            distance = summary["spectrum"]["distances"].get(method, {}).get("high_frequency")
            cells.append(f"{distance:.3f}" if distance is not None else "-")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _spectrum_summary(spectra: Mapping[str, SpectrumAccumulator], real: str) -> dict[str, Any]:
    reference = spectra[real]
    distances = {
        name: {
            "all": profile_distance(reference.profile, accumulator.profile, reference.frequencies),
            "high_frequency": profile_distance(
                reference.profile, accumulator.profile, reference.frequencies, HIGH_FREQUENCY
            ),
        }
        for name, accumulator in spectra.items()
        if name != real
    }
    return {
        "slices": reference.slices,
        "profile": "mean over slices of the azimuthal mean of log(|FFT2| + 1e-6) per ring",
        "distance": "mean |log-profile difference| to the real images; high_frequency: from "
        f"{HIGH_FREQUENCY} cycles per pixel",
        "distances": distances,
    }


def _write_spectra(spectra: Mapping[str, SpectrumAccumulator], real: str, csv_path: Path, png_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frequencies = spectra[real].frequencies
    with csv_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["frequency_cycles_per_pixel", *spectra])
        for index, frequency in enumerate(frequencies):
            writer.writerow([f"{frequency:.6f}", *(f"{acc.profile[index]:.6f}" for acc in spectra.values())])
    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name, accumulator in spectra.items():
        style = {"color": "black", "linewidth": 2.0} if name == real else {"linewidth": 1.2}
        for axis in axes:
            axis.plot(frequencies, accumulator.profile, label=name, **style)
    axes[1].set_xlim(HIGH_FREQUENCY, frequencies[-1])
    high = frequencies >= HIGH_FREQUENCY
    real_high = spectra[real].profile[high]
    values = np.concatenate([acc.profile[high] for acc in spectra.values()])
    # The zoom follows the real profile: a method far off (an all-zero image) would flatten every other curve.
    near = np.abs(values - np.nanmean(real_high)) < _ZOOM_RANGE
    values = values[np.isfinite(values) & near]
    if values.size:
        margin = 0.05 * (values.max() - values.min() + 1e-9)
        axes[1].set_ylim(values.min() - margin, values.max() + margin)
    for axis, title in zip(axes, ("all frequencies", "high frequencies (zoom)"), strict=True):
        axis.set_xlabel("spatial frequency (cycles per pixel)")
        axis.set_ylabel("mean log |FFT|")
        axis.set_title(title)
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(png_path, dpi=110)
    plt.close(figure)


def _plot_examples(examples: SequenceOf[Example], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(examples[0].planes)
    figure, axes = plt.subplots(
        len(examples), len(names), figsize=(2.2 * len(names), 2.3 * len(examples) + 0.5), squeeze=False
    )
    for row, example in enumerate(examples):
        for column, name in enumerate(names):
            axis = axes[row, column]
            axis.imshow(example.planes[name], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
            axis.set_axis_off()
            axis.set_title(name if row == 0 else "", fontsize=9)
        axes[row, 0].text(
            -0.08,
            0.5,
            example.case_id,
            transform=axes[row, 0].transAxes,
            rotation=90,
            va="center",
            ha="right",
            fontsize=8,
        )
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def write_report(
    output_dir: Path,
    rows: SequenceOf[Mapping[str, Any]],
    methods: Mapping[str, str],
    spectra: Mapping[str, SpectrumAccumulator],
    real: str,
    examples: SequenceOf[Example],
    target: Sequence,
) -> tuple[dict[str, Path], dict[str, Any]]:
    """Write the scores, tables and figures into ``output_dir``; return the paths by name and the summary.

    The caller adds its own sections to the summary and writes ``summary.json``.

    Args:
        output_dir: created if missing.
        rows: per case, protocol, method and region: the scores.
        methods: method name -> description, in report order; the first is the reference of the table.
        spectra: accumulated spectra of the real target (``real``) and of every method.
        real: the name of the real target among ``spectra``.
        examples: slices for ``examples.png``.
        target: the synthesized sequence.
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    files = {
        name: output_dir / name for name in ("metrics.csv", "table.md", "spectrum.csv", "spectrum.png", "examples.png")
    }
    fields = ["case", "method", "protocol", "region", *(m.value for m in Metric)]
    with files["metrics.csv"].open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    protocols = {
        protocol.value: {
            "intensities": protocol.description,
            **summarize([row for row in rows if row["protocol"] == protocol.value], list(methods)),
        }
        for protocol in IntensityProtocol
    }
    summary = {
        "target": target.value,
        "cases": sorted({row["case"] for row in rows}),
        "methods": dict(methods),
        "protocols": protocols,
        "spectrum": _spectrum_summary(spectra, real),
    }
    reference = next(iter(methods))
    tables = [
        f"## {protocol.title}\n\n{protocol.description}.\n\n{markdown_table(summary, reference, protocol)}"
        for protocol in IntensityProtocol
    ]
    files["table.md"].write_text("\n\n".join(tables) + "\n")
    _write_spectra(spectra, real, files["spectrum.csv"], files["spectrum.png"])
    _plot_examples(examples, files["examples.png"], f"{target.display_name}: real and synthesized, [0, 1] window")
    return files, summary


def write_uncertainty_report(
    output_dir: Path, calibrations: Mapping[tuple[str, str], UncertaintyCalibration], target: Sequence
) -> tuple[dict[str, Path], dict[str, Any]]:
    """Write ``uncertainty.csv`` and ``uncertainty_calibration.png``; return them and the summary's section.

    Args:
        output_dir: the evaluation's folder (exists).
        calibrations: by (case, model method): how its uncertainty map relates to its error.
        target: the synthesized sequence.
    """
    files = {name: output_dir / name for name in ("uncertainty.csv", "uncertainty_calibration.png")}
    deciles = [f"error_decile_{number}" for number in range(1, DECILES + 1)]
    with files["uncertainty.csv"].open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["case", "method", "spearman", "top_decile_ratio", "mean_uncertainty", *deciles])
        for (case, method), calibration in calibrations.items():
            writer.writerow(
                [
                    case,
                    method,
                    calibration.spearman,
                    calibration.top_decile_ratio,
                    calibration.mean_uncertainty,
                    *calibration.decile_errors,
                ]
            )
    plot_calibration(
        {f"{case} / {method}": calibration for (case, method), calibration in calibrations.items()},
        files["uncertainty_calibration.png"],
        f"{target.display_name}: error per uncertainty decile",
    )
    section = {
        "error": "|synthesized - real|, each normalized by its own 0.5-99.5 percentiles inside the brain (real > 0)",
        "per_case": [
            {"case": case, "method": method, **calibration.to_dict()}
            for (case, method), calibration in calibrations.items()
        ],
    }
    return files, section
