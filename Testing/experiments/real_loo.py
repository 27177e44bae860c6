"""The real-scan yardstick: leave one real case out, train on the rest, score on the one left out.

Every recipe decision about real-scan quality is taken on this benchmark, never on a left-out case
alone. For each real co-registered case (a fold), a model is trained with one recipe on the
generated cases plus the *other* real cases, then ``cones evaluate`` scores it on the case left out
beside copy-T1, mean imputation and the learned-linear map, both fitted on the same real training
cases (``--fit-from``), under both normalization protocols, with the uncertainty calibration. It
also scores ``linear_ceiling``, the linear map fitted on the left-out case itself: not a method, but
how far a per-case intensity recalibration could go. The gap from linear to the ceiling is what two
training cases cannot tell about a third; a model above the ceiling gains from spatial context.
The script writes ``real_loo.md`` (one row per fold and method, whole brain and tumour box, every
fold including those the model loses) and ``real_loo.json``, with the exact commands it ran.

Example (the recipe of the held-out model of the README, 700 iterations per fold)::

    python Testing/experiments/real_loo.py --real ../shared/data/coregistered --output runs/real-loo

A fold whose ``cones.pt`` exists is not trained again, so an interrupted run continues where it
stopped (a fold's training itself restarts). Nothing here is committed data: case folders are
linked, and the models stay in ``--output``.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import shlex
import subprocess
import sys
from collections.abc import Sequence as SequenceOf
from dataclasses import asdict, dataclass
from pathlib import Path

from cones.data import find_cases

logger = logging.getLogger("real_loo")

VALIDATION_CASE = "CONES-SAMPLE-015"
"""The generated case every fold validates on (never a real one: the real cases are the folds)."""


@dataclass(frozen=True)
class Recipe:
    """How each fold's model is trained: the generated data, how often real cases are drawn, the budget.

    Attributes:
        iterations: training iterations per fold.
        generated_cases: how many cases ``cones sample-data`` generates (the last validates).
        generated_seed: their seed.
        acquisition_variation: their domain randomization (``cones sample-data --acquisition-variation``).
        generated_training_cases: how many of them (the first ones) enter training; 0 trains on
            the real cases alone, still validating on the generated validation case.
        real_copies: each real training case is listed this many times, so real slices are drawn
            that much more often.
        bright_crop_fraction: share of each batch's crops centred on bright target pixels.
        seed: the training seed (the same for every fold).
    """

    iterations: int = 700
    generated_cases: int = 16
    generated_seed: int = 1000
    acquisition_variation: float = 0.0
    generated_training_cases: int = 15
    real_copies: int = 3
    bright_crop_fraction: float = 0.25
    seed: int = 0


def run(command: SequenceOf[str], log: Path) -> None:
    """Run one command, its output appended to ``log``; stop the experiment when it fails."""
    logger.info("%s", shlex.join(command))
    with log.open("a") as stream:
        stream.write(f"$ {shlex.join(command)}\n")
        stream.flush()
        subprocess.run(command, stdout=stream, stderr=subprocess.STDOUT, check=True)


def link(target: Path, link_path: Path) -> None:
    """A symbolic link to a case folder; an existing one must already point there."""
    if link_path.is_symlink():
        if link_path.resolve() != target.resolve():
            raise ValueError(f"{link_path} already links to {link_path.resolve()}, not {target}")
        return
    link_path.symlink_to(target.resolve(), target_is_directory=True)


def fold_data(generated: Path, real_training: SequenceOf[Path], recipe: Recipe, folder: Path) -> Path:
    """The fold's training folder: generated training and validation cases once, real ones ``real_copies`` times."""
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    generated_cases = find_cases(generated)
    validation = [case for case in generated_cases if case.case_id == VALIDATION_CASE]
    training = [case for case in generated_cases if case.case_id != VALIDATION_CASE]
    for case in [*training[: recipe.generated_training_cases], *validation]:
        link(next(iter(case.sequences.values())).parent, data / case.case_id)
    for case in real_training:
        for copy in range(1, recipe.real_copies + 1):
            link(case, data / f"{case.name}-copy{copy}")
    return data


def fit_cases(real_training: SequenceOf[Path], folder: Path) -> Path:
    """The real training cases alone: what the baselines are fitted on, as the model was trained on them."""
    fit_from = folder / "fit-from"
    fit_from.mkdir(parents=True, exist_ok=True)
    for case in real_training:
        link(case, fit_from / case.name)
    return fit_from


def train_fold(cones: list[str], data: Path, left_out: str, recipe: Recipe, folder: Path, device: str) -> list[str]:
    """Train and export the fold's model (skipped when ``cones.pt`` exists); returns the commands."""
    model = folder / f"{MODEL}.pt"
    commands = [
        [
            *cones, "train", "--data", str(data), "--sources", "t1", "t2", "flair", "--target", "t1ce",
            "--preset", "lite", "--iterations", str(recipe.iterations), "--device", device,
            "--output", str(folder / "run"), "--validation-case-ids", VALIDATION_CASE,
            "--validation-interval", str(max(recipe.iterations // 2, 1)), "--checkpoint-interval", "100",
            "--log-interval", "50", "--seed", str(recipe.seed),
            "--bright-crop-fraction", str(recipe.bright_crop_fraction), "--bright-crop-threshold", "0.5",
            "--data-description", f"real leave-one-out fold holding out {left_out}: {asdict(recipe)}",
        ],
        [*cones, "export", str(folder / "run" / "last.pt"), "--output", str(model)],
    ]  # fmt: skip
    if not model.exists():
        for command in commands:
            run(command, folder / "log.txt")
    return [shlex.join(command) for command in commands]


def evaluate_fold(cones: list[str], real: Path, left_out: str, fit_from: Path, folder: Path) -> list[str]:
    """Score the fold's model and the baselines on the case left out (both protocols, uncertainty)."""
    command = [
        *cones, "evaluate", "--model", str(folder / f"{MODEL}.pt"), "--data", str(real), "--cases", left_out,
        "--fit-from", str(fit_from), "--output", str(folder / "evaluation"), "--uncertainty", "--ceiling",
        "--overwrite",
    ]  # fmt: skip
    run(command, folder / "log.txt")
    return [shlex.join(command)]


def read_csv(folder: Path, name: str) -> list[dict[str, str]]:
    """One of the fold's evaluation tables (``metrics.csv``, ``calibration.csv``, ``uncertainty.csv``)."""
    with (folder / "evaluation" / name).open(newline="") as stream:
        return list(csv.DictReader(stream))


def fold_results(folder: Path) -> dict[str, list[dict[str, str]]]:
    """Everything the table reads of one fold's evaluation."""
    return {name: read_csv(folder, f"{name}.csv") for name in ("metrics", "calibration", "uncertainty")}


MODEL = "cones"
"""The fold model's method name in ``cones evaluate`` (its architecture's name)."""
METHODS = (MODEL, "linear", "copy_t1", "mean_imputation", "linear_ceiling")
PROTOCOLS = {"model_scale": "(b) model scale", "own_percentiles": "(a) own percentiles"}
REGIONS = {"brain": "brain", "tumour_bbox": "tumour box"}
MARGIN_DB = 1.0
"""What the recipe must beat the learned-linear map by, in PSNR, on every fold and under both protocols."""


def render_table(results: dict[str, dict[str, list[dict[str, str]]]], recipe: Recipe) -> str:
    """``real_loo.md``: per fold and method, PSNR / SSIM under both protocols, the brain median, the uncertainty.

    Every fold is listed, also those the model loses; the last column says whether the fold meets
    the bar (>= 1 dB over linear under both protocols in the brain, SSIM above linear's, and above
    copy-T1 and mean imputation).
    """
    header = ["fold (left out)", "method"]
    for protocol in PROTOCOLS.values():
        header += [f"PSNR {region} {protocol[:3]}" for region in REGIONS.values()]
        header.append(f"SSIM brain {protocol[:3]}")
    header += ["brain median (b)", "uncertainty Spearman / top-10 % ratio", "bar"]
    lines = [
        f"Recipe: {asdict(recipe)}; (b) output / 1000 against the normalized real T1ce, (a) each image on its own "
        "0.5-99.5 brain percentiles; brain median: the prediction's median inside the brain, real in brackets.",
        "",
        "| " + " | ".join(header) + " |",
        "|---|---|" + "---:|" * (len(header) - 2),
    ]
    for fold, tables in results.items():
        scores = {
            (row["method"], row["protocol"], row["region"]): row for row in tables["metrics"] if row["case"] == fold
        }
        medians = {row["method"]: float(row["median"]) for row in tables["calibration"] if row["case"] == fold}
        uncertainty = {row["method"]: row for row in tables["uncertainty"] if row["case"] == fold}
        for method in METHODS:
            cells = [fold, method]
            for protocol in PROTOCOLS:
                cells += [_score(scores, method, protocol, region, "psnr") for region in REGIONS]
                cells.append(_score(scores, method, protocol, "brain", "ssim"))
            median = medians.get(method)
            cells.append("n/a" if median is None else f"{median:.3f} ({medians.get('real', float('nan')):.3f})")
            row = uncertainty.get(method)
            cells.append("" if row is None else f"{float(row['spearman']):.3f} / {float(row['top_decile_ratio']):.2f}")
            cells.append(_meets_bar(scores) if method == MODEL else "")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _score(scores: dict, method: str, protocol: str, region: str, metric: str) -> str:
    row = scores.get((method, protocol, region))
    if row is None or not row[metric]:
        return "n/a"
    return f"{float(row[metric]):.3f}" if metric == "ssim" else f"{float(row[metric]):.2f}"


def _meets_bar(scores: dict) -> str:
    """ "yes", or what the fold's model misses (brain region)."""

    def value(method: str, protocol: str, metric: str) -> float:
        row = scores.get((method, protocol, "brain"))
        return float(row[metric]) if row is not None and row[metric] else float("nan")

    misses = []
    for protocol, label in PROTOCOLS.items():
        margin = value(MODEL, protocol, "psnr") - value("linear", protocol, "psnr")
        if not margin >= MARGIN_DB:
            misses.append(f"{label[:3]} {margin:+.2f} dB vs linear")
        if not value(MODEL, protocol, "ssim") > value("linear", protocol, "ssim"):
            misses.append(f"{label[:3]} SSIM vs linear")
        for baseline in ("copy_t1", "mean_imputation"):
            if not value(MODEL, protocol, "psnr") > value(baseline, protocol, "psnr"):
                misses.append(f"{label[:3]} PSNR vs {baseline}")
    return "yes" if not misses else "no: " + "; ".join(misses)


def parse_arguments(argv: SequenceOf[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, required=True, help="folder of the real co-registered cases")
    parser.add_argument("--output", type=Path, required=True, help="experiment folder (data links, runs, models)")
    parser.add_argument("--folds", nargs="+", help="cases to leave out (default: every real case)")
    parser.add_argument("--iterations", type=int, default=Recipe.iterations)
    parser.add_argument(
        "--generated-training-cases", type=int, default=Recipe.generated_training_cases,
        help="generated cases in each fold's training data (0: the real cases alone)",
    )  # fmt: skip
    parser.add_argument(
        "--acquisition-variation", type=float, default=Recipe.acquisition_variation,
        help="domain randomization of the generated cases (see cones sample-data)",
    )  # fmt: skip
    parser.add_argument("--real-copies", type=int, default=Recipe.real_copies)
    parser.add_argument("--bright-crop-fraction", type=float, default=Recipe.bright_crop_fraction)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--train-only", action="store_true", help="train the folds' models, evaluate nothing")
    return parser.parse_args(argv)


def main(argv: SequenceOf[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    args = parse_arguments(argv)
    recipe = Recipe(
        args.iterations,
        acquisition_variation=args.acquisition_variation,
        generated_training_cases=args.generated_training_cases,
        real_copies=args.real_copies,
        bright_crop_fraction=args.bright_crop_fraction,
    )
    real_cases = {case.case_id: next(iter(case.sequences.values())).parent for case in find_cases(args.real)}
    folds = args.folds or sorted(real_cases)
    unknown = sorted(set(folds) - set(real_cases))
    if len(real_cases) < 2 or unknown:
        print(f"error: {args.real}: needs two real cases or more, and every fold among them (unknown: {unknown})")
        return 2
    cones = [str(Path(sys.executable).with_name("cones"))]  # the console script of this interpreter's environment
    generated = args.output / "generated"
    commands = []
    if not (generated / VALIDATION_CASE).exists():
        command = [
            *cones, "sample-data", "--out", str(generated), "--cases", str(recipe.generated_cases),
            "--seed", str(recipe.generated_seed), "--acquisition-variation", str(recipe.acquisition_variation),
        ]  # fmt: skip
        args.output.mkdir(parents=True, exist_ok=True)
        run(command, args.output / "log.txt")
        commands.append(shlex.join(command))
    results = {}
    for left_out in folds:
        folder = args.output / left_out
        real_training = [path for case_id, path in sorted(real_cases.items()) if case_id != left_out]
        data = fold_data(generated, real_training, recipe, folder)
        commands += train_fold(cones, data, left_out, recipe, folder, args.device)
        if args.train_only:
            continue
        commands += evaluate_fold(cones, args.real, left_out, fit_cases(real_training, folder), folder)
        results[left_out] = fold_results(folder)
    (args.output / "real_loo.json").write_text(
        json.dumps({"recipe": asdict(recipe), "commands": commands, "metrics": results}, indent=2) + "\n"
    )
    if results:
        (args.output / "real_loo.md").write_text(render_table(results, recipe))
        print((args.output / "real_loo.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
