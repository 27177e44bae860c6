"""The one-command demo: a generated glioma case, T1ce synthesized by the bundled model, a panel and metrics.

A fresh clone has no BraTS data and no internet, so the demo generates a case with
:mod:`cones.sample_data` (a seed the bundled model never saw), synthesizes its T1ce from T1, T2 and
FLAIR, and writes under one folder what a reader needs to judge the result:

- ``<case>/``: the generated case (sources, real T1ce, labels) as NIfTI;
- ``t1ce_synthesized.nii.gz``: the synthesized T1ce on the case's grid, marked synthetic in its
  header, with its sidecar ``t1ce_synthesized.nii.gz.json`` (:mod:`cones.marking`), as
  ``cones synthesize`` writes it;
- ``panel.png``: sources, real and synthesized T1ce and their absolute difference, in the axial,
  coronal and sagittal planes through the tumour;
- ``case.png``: the generated case itself, its four sequences and tumour labels;
- ``t1ce_uncertainty.nii.gz`` and ``t1ce_virtual_enhancement.nii.gz``: the synthesis's voxel-wise
  uncertainty and its virtual enhancement (synthesized T1ce minus T1), marked like the synthesis
  (:mod:`cones.trust`);
- ``uncertainty.png``: the uncertainty over the synthesized T1ce as Slicer overlays it, beside the
  real error, the virtual enhancement and the real subtraction (real T1ce minus T1);
- ``metrics.json``: PSNR, SSIM and MAE inside the brain under both intensity protocols
  (:mod:`cones.evaluation.protocols`), for the model, for the trivial guess of copying T1 and for
  the learned-linear baseline (:mod:`cones.evaluation.linear`, fitted on a generated case of the
  bundled model's training seed), which is what the model has to beat; each one's brain median and
  90th percentile against the real T1ce's; and how the uncertainty relates to the real error
  (:mod:`cones.trust.calibration`).

Run it as ``python -m cones.demo --output demo-output`` (``make demo`` does this in a fresh venv).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Collection, Mapping
from collections.abc import Sequence as SequenceOf
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from cones.checkpoint import ModelCard, load_model
from cones.config import NormalizationConfig
from cones.data import read_image, write_image
from cones.data.normalization import denormalize_volume, foreground_mask, normalize_volume
from cones.evaluation import IntensityProtocol, LinearMap, brain_intensity, case_volumes, fit_linear_map, on_protocol
from cones.inference import SynthesisOptions, synthesize_images_with_uncertainty
from cones.marking import (
    Provenance,
    enhancement_marking,
    file_sha256,
    mark_image,
    sidecar_path,
    uncertainty_marking,
    write_synthesized,
)
from cones.metrics import mean_absolute_error, psnr, ssim
from cones.sequences import Sequence
from cones.trust.calibration import UncertaintyCalibration, calibrate_uncertainty, synthesis_error
from cones.trust.enhancement import virtual_enhancement, virtual_enhancement_image

__all__ = [
    "BUNDLED_MODEL",
    "DemoResult",
    "case_on_output_scale",
    "compare_in_brain",
    "fit_linear_baseline",
    "on_output_scale",
    "render_panel",
    "run_demo",
    "score_against_copy",
    "score_both_protocols",
]

logger = logging.getLogger(__name__)

BUNDLED_MODEL = Path(__file__).resolve().parent.parent / "Resources" / "Models" / "cones-lite-t1ce.pt"
"""The lite T1/T2/FLAIR -> T1ce model shipped with the repository (see Resources/Models/README.md)."""

DEMO_SEED = 2026
"""Sample-data seed of the demo case; the bundled model was trained on seed 1000, so this case is unseen."""

LINEAR_FIT_SEED = 1000
"""Sample-data seed whose first case the linear baseline is fitted on: the bundled model's training
seed, so both learned from the same data. The case is regenerated in memory (one 1 mm case, about
ten seconds); two or four cases on a 2 mm grid were faster but fitted a map further from the 1 mm cases."""


@dataclass(frozen=True)
class DemoResult:
    """What the demo wrote and measured."""

    output_dir: Path
    case_dir: Path
    synthesized: Path
    sidecar: Path
    panel: Path
    case_figure: Path
    metrics: Path
    scores: dict[str, dict[str, dict[str, float]]]
    uncertainty: Path
    enhancement: Path
    uncertainty_figure: Path
    calibration: UncertaintyCalibration


def on_output_scale(volume: np.ndarray, mask: np.ndarray, normalization: NormalizationConfig) -> np.ndarray:
    """A real volume mapped to the scale synthesized volumes use, so the two can be compared.

    A synthesized volume has no scanner units: it is the normalized target put on the documented
    output scale. Passing the real target through the same normalization and the same output
    mapping makes voxel-wise errors meaningful; it is also what the model was trained to match.
    """
    return denormalize_volume(normalize_volume(volume, mask, normalization), mask, normalization)


def compare_in_brain(
    prediction: np.ndarray, reference: np.ndarray, mask: np.ndarray, output_scale: float
) -> dict[str, float]:
    """PSNR (dB), SSIM and MAE of two volumes on the output scale, inside the brain mask.

    Both are divided by the output scale, so they lie in [0, 1] as the paper's metrics require,
    with one shared map: an intensity error is penalised rather than normalised away.
    """
    prediction, reference = prediction / output_scale, reference / output_scale
    return {
        "psnr": psnr(prediction, reference, mask),
        "ssim": ssim(prediction, reference, mask),
        "mae": mean_absolute_error(prediction, reference, mask),
    }


def case_on_output_scale(
    arrays: Mapping[Sequence, np.ndarray], card: ModelCard
) -> tuple[np.ndarray, dict[Sequence, np.ndarray]]:
    """The sources' foreground mask and every given volume on the model's output scale.

    Inference builds its mask from the sources and the card's normalization; doing the same here
    makes real volumes comparable voxel by voxel with what the model synthesized.

    Args:
        arrays: the case's real volumes in scanner units, at least the card's sources.
        card: the model's card (sources, normalization).

    Returns:
        ``(mask, scaled)``: the bool foreground mask and each volume of ``arrays`` mapped by
        :func:`on_output_scale`.

    Raises:
        ValueError: a source sequence of the card is missing from ``arrays``.
    """
    missing = [sequence.value for sequence in card.sources if sequence not in arrays]
    if missing:
        raise ValueError(f"the model needs source sequences {missing}, which the case lacks")
    mask = foreground_mask([arrays[sequence] for sequence in card.sources], card.normalization)
    return mask, {sequence: on_output_scale(volume, mask, card.normalization) for sequence, volume in arrays.items()}


def score_against_copy(
    synthesized: np.ndarray, scaled: Mapping[Sequence, np.ndarray], mask: np.ndarray, card: ModelCard
) -> dict[str, dict[str, float]]:
    """Score a synthesized target, and the trivial guess of copying the first source, against the real one.

    Copying the first source (T1 for a T1ce model) is what a model has to beat: on real scans T1 and
    T1ce share most of their contrast. Both are compared inside the sources' foreground on the
    output scale.

    Args:
        synthesized: the model's target volume on the output scale, (z, y, x).
        scaled: the case's real volumes on the output scale (see :func:`case_on_output_scale`), at
            least the first source and the target.
        mask: the sources' foreground mask that ``scaled`` was built with.
        card: the model's card (sources, single target, output scale).

    Returns:
        ``{"cones": scores, "copy_<first source>": scores}``, scores as in :func:`compare_in_brain`.

    Raises:
        ValueError: the model has several targets, or a needed sequence is missing from ``scaled``.
    """
    if len(card.targets) != 1:
        raise ValueError(f"score_against_copy needs a single-target model, got targets {card.targets}")
    (target,), copied = card.targets, card.sources[0]
    missing = [sequence.value for sequence in (copied, target) if sequence not in scaled]
    if missing:
        raise ValueError(f"cannot score against copying {copied.value}: missing sequences {missing}")
    scale = card.normalization.output_scale
    return {
        "cones": compare_in_brain(synthesized, scaled[target], mask, scale),
        f"copy_{copied.value}": compare_in_brain(scaled[copied], scaled[target], mask, scale),
    }


def score_both_protocols(
    predictions: Mapping[str, np.ndarray], real: np.ndarray, mask: np.ndarray
) -> dict[str, dict[str, dict[str, float]]]:
    """Brain scores of every prediction against the real target under both intensity protocols.

    Args:
        predictions: by method name, the predicted target on the unit scale (model scale / output scale).
        real: the real target on the unit scale (see :func:`on_output_scale`).
        mask: the sources' foreground, the brain of every score and of the own-percentile normalization.

    Returns:
        ``{protocol: {method: scores}}``, scores as in :func:`compare_in_brain`.
    """
    scores = {}
    for protocol in IntensityProtocol:
        reference = on_protocol(real, mask, protocol)
        scores[protocol.value] = {
            name: compare_in_brain(on_protocol(prediction, mask, protocol), reference, mask, 1.0)
            for name, prediction in predictions.items()
        }
    return scores


def fit_linear_baseline(card: ModelCard, seed: int = LINEAR_FIT_SEED) -> tuple[LinearMap, str]:
    """The learned-linear baseline for a T1ce model, fitted on the first generated case of ``seed``.

    Returns:
        The map and a sentence saying where it was fitted (for ``metrics.json``).
    """
    from cones.sample_data import generate_case
    from cones.sample_data.dataset import case_seed, sample_case_id

    case = generate_case(sample_case_id(0), case_seed(seed, 0))
    volumes = case_volumes(case.case_id, case.images, card.sources, Sequence.T1CE, card.normalization)
    where = (
        f"generated case {case.case_id} of sample-data seed {seed} (the bundled model's training seed), "
        "regenerated in memory on the 1 mm grid"
    )
    return fit_linear_map([volumes], card.sources, card.normalization), where


def _panel_planes(volume: np.ndarray, centre: tuple[int, int, int]) -> list[np.ndarray]:
    """Axial, coronal and sagittal planes of a (z, y, x) LPS volume, head up and anterior up."""
    z, y, x = centre
    return [volume[z], np.flipud(volume[:, y, :]), np.flipud(volume[:, :, x])]


def render_panel(
    columns: Mapping[str, np.ndarray],
    centre: tuple[int, int, int],
    spacing_zyx: tuple[float, float, float],
    path: Path,
    title: str,
    colormaps: Mapping[str, str] | None = None,
    overlays: Mapping[str, np.ndarray] | None = None,
    symmetric: Collection[str] = (),
) -> Path:
    """Draw one column per named volume and one row per plane through ``centre``.

    Each column keeps its own window (0 to its 99.5th percentile), in grey unless ``colormaps``
    names another map for it (e.g. ``magma`` for differences, so errors stand out). A column named
    in ``overlays`` gets that volume drawn over it in ``inferno``, half transparent and clear where
    it is 0, as Slicer shows a foreground layer; a column in ``symmetric`` is windowed around 0 (a
    subtraction image).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    aspects = [spacing_zyx[1] / spacing_zyx[2], spacing_zyx[0] / spacing_zyx[2], spacing_zyx[0] / spacing_zyx[1]]
    shape = next(iter(columns.values())).shape
    heights = [shape[1] * spacing_zyx[1], shape[0] * spacing_zyx[0], shape[0] * spacing_zyx[0]]
    width = shape[2] * spacing_zyx[2]
    figure, axes = plt.subplots(
        3,
        len(columns),
        figsize=(2.4 * len(columns), 2.4 * sum(heights) / width + 0.6),
        squeeze=False,
        gridspec_kw={"height_ratios": heights},
    )
    for column, (name, volume) in enumerate(columns.items()):
        colormap = (colormaps or {}).get(name, "gray")
        low, high = _window(volume, name in symmetric)
        overlay = (overlays or {}).get(name)
        for row, plane in enumerate(_panel_planes(volume, centre)):
            axis = axes[row, column]
            axis.imshow(plane, cmap=colormap, vmin=low, vmax=high, aspect=aspects[row], interpolation="nearest")
            if overlay is not None:
                top = _window(overlay, False)[1]
                layer = np.ma.masked_equal(_panel_planes(overlay, centre)[row], 0)
                axis.imshow(
                    layer, cmap="inferno", vmin=0, vmax=top, alpha=0.5, aspect=aspects[row], interpolation="nearest"
                )
            axis.set_axis_off()
            if row == 0:
                axis.set_title(name, fontsize=10)
    figure.suptitle(title, fontsize=11)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _window(volume: np.ndarray, symmetric: bool) -> tuple[float, float]:
    """0 to the 99.5th percentile of the non-zero voxels, or +-that of their magnitude for a subtraction image."""
    values = np.abs(volume[volume != 0]) if symmetric else volume[volume > 0]
    high = float(np.percentile(values, 99.5)) if values.size else 1.0
    return (-high, high) if symmetric else (0.0, high)


def _tumour_centre(label: np.ndarray, mask: np.ndarray) -> tuple[int, int, int]:
    """Centre of the enhancing tumour (label 4) when there is one, else of the brain."""
    region = label == 4 if (label == 4).any() else mask
    return tuple(round(float(c)) for c in np.argwhere(region).mean(axis=0))


def run_demo(
    output_dir: Path,
    model_path: Path = BUNDLED_MODEL,
    seed: int = DEMO_SEED,
    overwrite: bool = False,
    device: str = "auto",
) -> DemoResult:
    """Generate a case, synthesize its T1ce and write volumes, panel and metrics under ``output_dir``.

    Raises:
        FileExistsError: ``output_dir`` already holds demo results and ``overwrite`` is False.
        ValueError: the model file is refused, or it does not synthesize T1ce from T1, T2 and FLAIR.
    """
    from cones.sample_data import write_sample_dataset

    output_dir = Path(output_dir)
    synthesized_path, panel_path, metrics_path = (
        output_dir / "t1ce_synthesized.nii.gz",
        output_dir / "panel.png",
        output_dir / "metrics.json",
    )
    case_figure_path = output_dir / "case.png"
    uncertainty_path, enhancement_path, uncertainty_figure_path = (
        output_dir / "t1ce_uncertainty.nii.gz",
        output_dir / "t1ce_virtual_enhancement.nii.gz",
        output_dir / "uncertainty.png",
    )
    written = (
        synthesized_path,
        sidecar_path(synthesized_path),
        panel_path,
        case_figure_path,
        metrics_path,
        uncertainty_path,
        enhancement_path,
        uncertainty_figure_path,
    )
    existing = [path for path in written if path.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{output_dir} already holds demo results; pass --overwrite to replace them")
    model = load_model(model_path)
    if Sequence.T1CE not in model.card.targets:
        raise ValueError(f"{model_path} synthesizes {[t.value for t in model.card.targets]}, not T1ce")

    started = time.perf_counter()
    (case_dir,) = write_sample_dataset(output_dir, num_cases=1, seed=seed, overwrite=overwrite)
    case = case_dir.name
    images = {name: read_image(case_dir / f"{case}_{name}.nii.gz") for name in ("t1", "t1ce", "t2", "flair", "seg")}
    logger.info("generated %s in %.1f s", case, time.perf_counter() - started)

    started = time.perf_counter()
    options = SynthesisOptions(device=device)
    sources = {sequence: images[sequence.value] for sequence in model.card.sources}
    synthesized, uncertainty = (
        images_by_target[Sequence.T1CE]
        for images_by_target in synthesize_images_with_uncertainty(model, sources, options=options)
    )
    seconds = time.perf_counter() - started
    provenance = Provenance(
        target=Sequence.T1CE,
        model_path=Path(model_path),
        model_sha256=file_sha256(model_path),
        card=model.card,
        inputs={sequence: case_dir / f"{case}_{sequence.value}.nii.gz" for sequence in model.card.sources},
        options={"device": options.device, "demo_seed": seed},
        series={},
        reference=model.card.sources[0],
    )
    enhancement = virtual_enhancement_image(synthesized, images["t1"])
    write_image(mark_image(uncertainty, uncertainty_marking(provenance.marking)), uncertainty_path, overwrite)
    write_image(mark_image(enhancement, enhancement_marking(provenance.marking)), enhancement_path, overwrite)
    write_synthesized(synthesized, synthesized_path, provenance, overwrite=overwrite)
    logger.info("synthesized T1ce and its uncertainty in %.1f s", seconds)

    started = time.perf_counter()
    linear_map, fitted_on = fit_linear_baseline(model.card)
    logger.info("fitted the linear baseline in %.1f s", time.perf_counter() - started)

    arrays = {name: sitk.GetArrayFromImage(image) for name, image in images.items()}
    prediction = sitk.GetArrayFromImage(synthesized)
    mask, scaled = case_on_output_scale({sequence: arrays[sequence.value] for sequence in Sequence}, model.card)
    scale = model.card.normalization.output_scale
    real = scaled[Sequence.T1CE]
    copied = model.card.sources[0]
    predictions = {
        "cones": prediction / scale,
        f"copy_{copied.value}": scaled[copied] / scale,
        "linear": linear_map.predict({sequence: arrays[sequence.value] for sequence in model.card.sources}),
    }
    scores = score_both_protocols(predictions, real / scale, mask)
    intensities = {"real": real / scale, **predictions}
    metrics = {
        "case": case,
        "seed": seed,
        "model": str(model_path),
        "region": "brain (foreground of the sources)",
        "synthesis_and_uncertainty_seconds": round(seconds, 2),
        "device": options.device,
        "protocols": {
            protocol.value: {"intensities": protocol.description, "scores": scores[protocol.value]}
            for protocol in IntensityProtocol
        },
        "linear": {"fitted_on": fitted_on, **linear_map.to_dict()},
        "brain_intensity": {
            "quantity": "median and 90th percentile inside the brain, model scale ([0, 1])",
            **{name: asdict(brain_intensity(volume, mask)) for name, volume in intensities.items()},
        },
    }
    uncertainty_map = sitk.GetArrayFromImage(uncertainty)
    brain = mask & (arrays["t1ce"] > model.card.normalization.foreground_threshold)
    error = synthesis_error(prediction, arrays["t1ce"], brain)
    calibration = calibrate_uncertainty(uncertainty_map, error, brain)
    metrics["uncertainty"] = {
        "error": "|synthesized - real| T1ce, each normalized by its own 0.5-99.5 brain percentiles",
        **calibration.to_dict(),
    }
    metrics_path.write_text(json.dumps(metrics, indent=2) + "\n")

    columns = {
        "T1": scaled[Sequence.T1],
        "T2": scaled[Sequence.T2],
        "FLAIR": scaled[Sequence.FLAIR],
        "T1ce (real)": real,
        "T1ce (CoNeS)": prediction,
        "|CoNeS - real|": np.abs(prediction - real),
    }
    spacing = tuple(reversed(images["t1"].GetSpacing()))
    model_scale = scores[IntensityProtocol.MODEL_SCALE.value]
    title = (
        f"{case}: CoNeS PSNR {model_scale['cones']['psnr']:.2f} dB, SSIM {model_scale['cones']['ssim']:.3f} "
        f"(copy T1: {model_scale['copy_t1']['psnr']:.2f} dB, {model_scale['copy_t1']['ssim']:.3f}; "
        f"linear: {model_scale['linear']['psnr']:.2f} dB, {model_scale['linear']['ssim']:.3f}), inside the brain"
    )
    centre = _tumour_centre(arrays["seg"], mask)
    render_panel(columns, centre, spacing, panel_path, title, colormaps={"|CoNeS - real|": "magma"})
    case_columns = {name: columns[name] for name in ("T1", "T1ce (real)", "T2", "FLAIR")}
    case_columns["labels"] = arrays["seg"].astype(np.float32)
    labels_title = f"{case}: generated case; labels 1 necrosis, 2 oedema, 4 enhancing (BraTS 2018-2021)"
    render_panel(case_columns, centre, spacing, case_figure_path, labels_title, colormaps={"labels": "viridis"})
    real_subtraction = virtual_enhancement(arrays["t1ce"].astype(np.float32), arrays["t1"], mask)
    uncertainty_columns = {
        "T1ce (CoNeS)": prediction,
        "uncertainty over it": prediction,
        "uncertainty": uncertainty_map,
        "real error": error,
        "virtual enhancement": sitk.GetArrayFromImage(enhancement),
        "real T1ce - T1": real_subtraction,
    }
    uncertainty_title = (
        f"{case}: uncertainty vs real error inside the brain: Spearman {calibration.spearman:.2f}, most uncertain "
        f"10 % carry {calibration.top_decile_ratio:.1f}x the error of the least uncertain half"
    )
    render_panel(
        uncertainty_columns,
        centre,
        spacing,
        uncertainty_figure_path,
        uncertainty_title,
        colormaps={
            "uncertainty": "inferno",
            "real error": "magma",
            "virtual enhancement": "RdBu_r",
            "real T1ce - T1": "RdBu_r",
        },
        overlays={"uncertainty over it": uncertainty_map},
        symmetric=("virtual enhancement", "real T1ce - T1"),
    )
    return DemoResult(
        output_dir,
        case_dir,
        synthesized_path,
        sidecar_path(synthesized_path),
        panel_path,
        case_figure_path,
        metrics_path,
        scores,
        uncertainty_path,
        enhancement_path,
        uncertainty_figure_path,
        calibration,
    )


def main(argv: SequenceOf[str] | None = None) -> int:
    """Run the demo from the command line; returns the exit code (2 for refused input)."""
    parser = argparse.ArgumentParser(prog="python -m cones.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="demo-output", help="folder for the case, volumes, panel and metrics")
    parser.add_argument("--model", default=str(BUNDLED_MODEL), help="model file (default: the bundled lite model)")
    parser.add_argument("--seed", type=int, default=DEMO_SEED, help="sample-data seed of the generated case")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--overwrite", action="store_true", help="replace the results of an earlier run")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        result = run_demo(Path(args.output), Path(args.model), args.seed, args.overwrite, args.device)
    except (ValueError, FileExistsError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    rounded = {
        protocol: {name: {k: round(v, 4) for k, v in scores.items()} for name, scores in methods.items()}
        for protocol, methods in result.scores.items()
    }
    print(json.dumps(rounded, indent=2))
    written = (
        result.synthesized, result.sidecar, result.uncertainty, result.enhancement, result.panel,
        result.uncertainty_figure, result.case_figure, result.metrics, result.case_dir,
    )  # fmt: skip
    print(f"results in {result.output_dir.resolve()}: {', '.join(path.name for path in written)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
