"""Raw clinical scans: ``--prepare`` against plain ``--resample``, stage by stage, with the README's picture.

On a native acquisition (each sequence on its own grid, skull on; ``../shared/data/native/TCGA-FG-6692``),
the bundled model synthesizes T1ce twice: from the sources only resampled onto T1's grid, and through
:func:`cones.preprocessing.synthesize_raw`. Both are scored against the real T1ce, registered to T1
(the patient moved between the acquisitions), inside a deepbet brain mask of T1, each volume
normalized by its own 0.5-99.5 percentiles there (:func:`cones.metrics.own_scale_scores`). The
baselines are scored the same way, on the prepared (registered, brain-masked) sources: copying T1,
mean imputation and a learned-linear map (least squares of the normalized T1, T2, FLAIR and a bias
onto the normalized T1ce inside the brain), both fitted on the real co-registered cases the
bundled model trained on (``--fit-cases``; the same patient's co-registered copy is left out).
Prints one JSON object (scores, time and peak memory per stage) and writes ``raw_scans.png`` (T1,
real T1ce, resampled, prepared; three axial slices).

Usage::

    python Testing/benchmarks/raw_scans.py ../shared/data/native/TCGA-FG-6692 --output raw-scans \
        --fit-cases ../shared/data/coregistered/TCGA-DU-7294 ../shared/data/coregistered/brainles-example
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import SimpleITK as sitk

from cones.checkpoint import load_model
from cones.config import NormalizationConfig
from cones.data import CaseFiles, find_cases, read_image
from cones.demo import BUNDLED_MODEL
from cones.evaluation import load_case_volumes
from cones.evaluation.methods import CaseVolumes, CopySource, MeanImputation, real_on_unit_scale
from cones.inference import SynthesisOptions, synthesize_images
from cones.metrics import normalize_by_own_percentiles, own_scale_scores
from cones.preprocessing import register, synthesize_raw
from cones.sequences import Sequence

SOURCES = ("t1", "t2", "flair")


def peak_rss_gb() -> float:
    """The process's peak resident memory so far (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", type=Path, help="a folder with <case>_t1/_t1ce/_t2/_flair.nii.gz")
    parser.add_argument("--model", type=Path, default=BUNDLED_MODEL)
    parser.add_argument("--output", type=Path, required=True, help="folder for raw_scans.png")
    parser.add_argument(
        "--fit-cases", type=Path, nargs="+", required=True, help="case folders the baselines are fitted on"
    )
    args = parser.parse_args()
    images = {name: read_image(args.case / f"{args.case.name}_{name}.nii.gz") for name in (*SOURCES, "t1ce")}
    model = load_model(args.model)
    options = SynthesisOptions(device="cpu")

    stages: dict[str, dict[str, float]] = {}
    started = {"time": time.perf_counter()}

    def progress(stage: str, done: int, total: int) -> None:
        if done == 0:
            started["time"] = time.perf_counter()
        elif done == total:
            seconds = time.perf_counter() - started["time"]
            stages[stage] = {"seconds": round(seconds, 1), "peak_rss_gb_so_far": round(peak_rss_gb(), 2)}

    prepared = synthesize_raw(model, {name: images[name] for name in SOURCES}, options=options, progress=progress)
    resampled = synthesize_images(model, {name: images[name] for name in SOURCES}, resample=True, options=options)

    t1 = images["t1"]
    brain_image = prepared.prepared.brain_mask
    brain = sitk.GetArrayFromImage(brain_image) > 0
    to_t1 = register(t1, images["t1ce"], name="T1ce", reference_mask=brain_image).transform
    real = sitk.GetArrayFromImage(sitk.Resample(sitk.Cast(images["t1ce"], sitk.sitkFloat32), t1, to_t1))
    normalization = model.card.normalization
    native = CaseVolumes(
        case_id=args.case.name,
        sources={sequence: sitk.GetArrayFromImage(image) for sequence, image in prepared.prepared.registered.items()},
        target=real,
        mask=brain,
        labels=None,
    )
    fitted = [
        load_case_volumes(case, model.card.sources, Sequence.T1CE, normalization) for case in _cases(args.fit_cases)
    ]
    mean = float(np.mean([case.target[case.mask].mean() for case in fitted]))
    volumes = {
        "copy T1": CopySource(Sequence.T1, normalization).predict(native),
        "mean imputation": MeanImputation({native.case_id: mean}).predict(native),
        "learned linear": _learned_linear(fitted, native, normalization),
        "--resample": sitk.GetArrayFromImage(resampled[Sequence.T1CE]),
        "--prepare": sitk.GetArrayFromImage(prepared.outputs[Sequence.T1CE]),
    }
    scores = {
        name: dict(zip(("psnr", "ssim"), own_scale_scores(volume, real, brain), strict=True))
        for name, volume in volumes.items()
    }
    report = {
        "case": args.case.name,
        "baselines_fitted_on": [case.name for case in args.fit_cases],
        "scores": {name: {key: round(value, 3) for key, value in pair.items()} for name, pair in scores.items()},
        "stages": stages,
        "registrations": {
            sequence.display_name: {
                "rotation_deg": round(result.rotation_deg, 1),
                "translation_mm": round(result.translation_mm, 1),
                "normalized_mutual_information": round(result.normalized_mutual_information, 3),
            }
            for sequence, result in prepared.prepared.report.registrations.items()
        },
        "peak_rss_gb": round(peak_rss_gb(), 2),
    }
    print(json.dumps(report, indent=2))
    args.output.mkdir(parents=True, exist_ok=True)
    _picture(sitk.GetArrayFromImage(t1), volumes, real, brain, args.output / "raw_scans.png")
    return 0


def _cases(folders: list[Path]) -> list[CaseFiles]:
    """The case of each folder (its parent is the dataset folder)."""
    return [next(case for case in find_cases(folder.parent) if case.case_id == folder.name) for folder in folders]


def _features(case: CaseVolumes, normalization: NormalizationConfig) -> np.ndarray:
    """(brain voxels, sources + 1): each source on the unit scale the models see, and a bias column."""
    columns = [real_on_unit_scale(volume, case.mask, normalization)[case.mask] for volume in case.sources.values()]
    return np.stack([*columns, np.ones(np.count_nonzero(case.mask))], axis=1)


def _learned_linear(fitted: list[CaseVolumes], case: CaseVolumes, normalization: NormalizationConfig) -> np.ndarray:
    """Least squares of the normalized sources onto the normalized target in ``fitted``, applied to ``case``."""
    features = np.concatenate([_features(other, normalization) for other in fitted])
    targets = np.concatenate([other.target[other.mask] for other in fitted])
    weights, *_ = np.linalg.lstsq(features, targets, rcond=None)
    prediction = np.zeros(case.mask.shape)
    prediction[case.mask] = _features(case, normalization) @ weights
    return prediction


def _picture(t1: np.ndarray, volumes: dict[str, np.ndarray], real: np.ndarray, brain: np.ndarray, path: Path) -> None:
    """T1, the real T1ce, the resampled and the prepared synthesis on three axial slices through the brain."""
    counts = brain.sum(axis=(1, 2))
    slices = np.flatnonzero(counts > counts.max() * 0.5)[[2, -1]].tolist()
    slices.insert(1, (slices[0] + slices[1]) // 2)
    columns = {
        "T1 (acquired)": t1,
        "T1ce (acquired)": real,
        "synthesized, --resample": volumes["--resample"],
        "synthesized, --prepare": volumes["--prepare"],
    }
    figure, axes = plt.subplots(len(slices), len(columns), figsize=(3.2 * len(columns), 3.2 * len(slices)))
    for row, index in enumerate(slices):
        for column, (title, volume) in enumerate(columns.items()):
            shown = normalize_by_own_percentiles(volume, brain) if "synthesized" in title else volume
            top = np.percentile(shown[index], 99.5)
            axes[row, column].imshow(np.flipud(shown[index]), cmap="gray", vmin=0, vmax=top)
            axes[row, column].set_axis_off()
            if row == 0:
                axes[row, column].set_title(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


if __name__ == "__main__":
    sys.exit(main())
