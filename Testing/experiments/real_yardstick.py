"""The real-data yardstick: a model against the baselines on the recorded validation split of the 39 real cases.

Every recipe decision about real-scan quality is taken here. ``real_split.tsv`` (beside this
script) fixes which of the 39 real cases train and which validate: the 36 public BraTS 2018 cases
of ``../shared/data/public-brats`` (every fourth case of each institution's sorted list validates:
BraTS 2013, CBICA and TCIA all appear) and the three co-registered cases of
``../shared/data/coregistered`` (training). The script links the two halves into ``OUTPUT``, runs
``cones evaluate`` on the validation cases with mean imputation and the learned-linear map fitted
on the training cases (``--fit-from``: the same cases the model was trained on), copy-T1, both
intensity protocols, the brain and the BraTS label regions, the brain median, the
enhancement contrast, BraSyn's SSIM and (``--uncertainty``) the uncertainty map, then writes
``yardstick.md`` and ``yardstick.json``: a row per case and method, the means, every case each model
loses, and the verdict of each acceptance criterion per model. Several ``--model`` files (same
target and normalization) are scored in one pass, so recipes are compared on identical baselines.

The public cases are not in the repository; extract them first (it verifies every file)::

    ../shared/data/public-brats/extract --mirror <BioExp git dir> --mirror <DeepBrainSeg git dir> --out DIR

Example::

    python Testing/experiments/real_yardstick.py --public DIR --output runs/yardstick \\
        --model Resources/Models/cones-lite-t1ce.pt --uncertainty
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import subprocess
import sys
from collections.abc import Mapping
from collections.abc import Sequence as SequenceOf
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SPLIT = Path(__file__).with_name("real_split.tsv")
EXTRACT_HINT = (
    "extract them with ../shared/data/public-brats/extract --mirror <BioExp git dir> "
    "--mirror <DeepBrainSeg git dir> --out DIR (fetch github:koriavinash1/BioExp and github:koriavinash1/DeepBrainSeg)"
)
BASELINES = ("linear", "copy_t1", "mean_imputation")
NOT_MODELS = frozenset({*BASELINES, "zero_imputation", "linear_ceiling"})
"""The methods of ``cones evaluate`` that are not model files."""
PROTOCOLS = ("model_scale", "own_percentiles")
LABEL_REGIONS = ("enhancing_tumour", "tumour_core", "whole_tumour")
MARGIN_DB = 1.0
"""What the model must beat the learned-linear map by, mean PSNR inside the brain, under both protocols."""


@dataclass(frozen=True)
class SplitCase:
    """One row of ``real_split.tsv``."""

    case: str
    role: str
    institution: str
    folder: str


def read_split(path: Path = SPLIT) -> list[SplitCase]:
    """The recorded split; refuses a file whose roles are not ``training`` / ``validation``."""
    with path.open(newline="") as handle:
        cases = [SplitCase(**row) for row in csv.DictReader(handle, delimiter="\t")]
    roles = {case.role for case in cases}
    if not cases or not roles <= {"training", "validation"}:
        raise ValueError(f"{path}: expected training and validation rows, got roles {sorted(roles)}")
    return cases


def case_folders(split: SequenceOf[SplitCase], folders: Mapping[str, Path]) -> dict[str, Path]:
    """Each split case's folder; raises ``FileNotFoundError`` naming what is missing and how to get it."""
    located = {case.case: folders[case.folder] / case.case for case in split}
    missing = sorted(case for case, path in located.items() if not path.is_dir())
    if missing:
        raise FileNotFoundError(f"{len(missing)} real case(s) not found (first: {located[missing[0]]}); {EXTRACT_HINT}")
    return located


def link_split(split: SequenceOf[SplitCase], located: Mapping[str, Path], output: Path) -> dict[str, Path]:
    """``output/training`` and ``output/validation``: symbolic links to the case folders of each role."""
    halves = {}
    for role in ("training", "validation"):
        folder = output / role
        folder.mkdir(parents=True, exist_ok=True)
        for case in (case for case in split if case.role == role):
            link = folder / case.case
            if link.is_symlink() and link.resolve() != located[case.case].resolve():
                raise ValueError(f"{link} links to {link.resolve()}, not {located[case.case]}")
            if not link.is_symlink():
                link.symlink_to(located[case.case].resolve(), target_is_directory=True)
        halves[role] = folder
    return halves


def link_recorded_split(public: Path, coregistered: Path, output: Path) -> dict[str, Path]:
    """Both halves of ``real_split.tsv`` linked into ``output`` (see :func:`link_split`).

    Raises:
        FileNotFoundError: a case is missing; the message says how to extract the public cases.
    """
    split = read_split()
    located = case_folders(split, {"public-brats": public, "coregistered": coregistered})
    return link_split(split, located, output)


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _float(value: str | None) -> float:
    return float(value) if value not in (None, "") else float("nan")


def collect(evaluation: Path, uncertainty: bool) -> dict[str, dict[str, dict[str, float]]]:
    """By case and method: every figure the table shows, read from ``cones evaluate``'s files."""
    figures: dict[str, dict[str, dict[str, float]]] = {}

    def cell(case: str, method: str) -> dict[str, float]:
        return figures.setdefault(case, {}).setdefault(method, {})

    for row in read_rows(evaluation / "metrics.csv"):
        protocol = "b" if row["protocol"] == "model_scale" else "a"
        for metric in ("psnr", "ssim"):
            cell(row["case"], row["method"])[f"{metric} {row['region']} ({protocol})"] = _float(row[metric])
    for row in read_rows(evaluation / "calibration.csv"):
        cell(row["case"], row["method"]).update(
            median=_float(row["median"]), enhancement_contrast=_float(row["enhancement_contrast"])
        )
    for row in read_rows(evaluation / "brasyn_ssim.csv"):
        cell(row["case"], row["method"]).update(
            brasyn_tumour=_float(row["tumour"]), brasyn_non_tumour=_float(row["non_tumour"])
        )
    if uncertainty:
        for row in read_rows(evaluation / "uncertainty.csv"):
            cell(row["case"], row["method"]).update(
                spearman=_float(row["spearman"]), top_decile_ratio=_float(row["top_decile_ratio"])
            )
    return figures


def mean_of(figures: Mapping[str, Mapping[str, Mapping[str, float]]], method: str, key: str) -> float:
    """The mean over cases of one figure (cases without it, e.g. no enhancing tumour, left out)."""
    values = [cases[method][key] for cases in figures.values() if method in cases and key in cases[method]]
    values = [value for value in values if np.isfinite(value)]
    return float(np.mean(values)) if values else float("nan")


def _check(name: str, met: bool, detail: str) -> tuple[str, bool, str]:
    return name, bool(met), detail


def verdicts(
    figures: Mapping[str, Mapping[str, Mapping[str, float]]], uncertainty: bool, model: str
) -> list[tuple[str, bool, str]]:
    """The acceptance criteria of the real-model issue for ``model``: (criterion, met, the figures behind it)."""
    checks = []
    for protocol in ("b", "a"):
        mine, linear = (mean_of(figures, name, f"psnr brain ({protocol})") for name in (model, "linear"))
        name = f"mean brain PSNR ({protocol}) >= linear + {MARGIN_DB} dB"
        checks.append(_check(name, mine - linear >= MARGIN_DB, f"{mine:.2f} vs {linear:.2f} dB"))
    wins = [cases[model]["psnr brain (b)"] > cases["linear"]["psnr brain (b)"] for cases in figures.values()]
    checks.append(
        _check("beats linear on >= 3 of 4 cases (b)", sum(wins) >= 0.75 * len(wins), f"{sum(wins)} of {len(wins)}")
    )
    for protocol in ("b", "a"):
        mine, linear = (mean_of(figures, name, f"ssim brain ({protocol})") for name in (model, "linear"))
        checks.append(
            _check(f"mean brain SSIM ({protocol}) above linear", mine > linear, f"{mine:.3f} vs {linear:.3f}")
        )
    median_error = float(
        np.mean([abs(cases[model]["median"] / cases["real"]["median"] - 1) for cases in figures.values()])
    )
    checks.append(
        _check(
            "brain median within 10 % of the real one on average", median_error <= 0.10, f"{100 * median_error:.1f} %"
        )
    )
    contrast_error = float(
        np.mean(
            [
                abs(cases[model]["enhancement_contrast"] / cases["real"]["enhancement_contrast"] - 1)
                for cases in figures.values()
                if np.isfinite(cases["real"].get("enhancement_contrast", float("nan")))
            ]
        )
    )
    real, mine = (mean_of(figures, name, "enhancement_contrast") for name in ("real", model))
    detail = f"{100 * contrast_error:.1f} % (means: real {real:.2f}, model {mine:.2f})"
    checks.append(_check("enhancement contrast within 25 % of the real one on average", contrast_error <= 0.25, detail))
    for part in ("tumour", "non_tumour"):
        key = f"brasyn_{part}"
        mine = mean_of(figures, model, key)
        others = {name: mean_of(figures, name, key) for name in ("copy_t1", "linear")}
        detail = f"{mine:.4f} vs " + ", ".join(f"{name} {value:.4f}" for name, value in others.items())
        name = f"BraSyn SSIM {part.replace('_', '-')} above copy-T1 and linear"
        checks.append(_check(name, all(mine > value for value in others.values()), detail))
    if uncertainty:
        met = [
            cases[model]["spearman"] >= 0.3 and cases[model]["top_decile_ratio"] >= 2.0
            for cases in figures.values()
            if "spearman" in cases[model]
        ]
        name = "uncertainty Spearman >= 0.3 and ratio >= 2 on >= 3 of 4 cases"
        checks.append(_check(name, sum(met) >= 0.75 * len(met), f"{sum(met)} of {len(met)}"))
    return checks


COLUMNS = (
    ("PSNR brain (b)", "psnr brain (b)", "{:.2f}"),
    ("PSNR brain (a)", "psnr brain (a)", "{:.2f}"),
    ("SSIM brain (b)", "ssim brain (b)", "{:.3f}"),
    ("SSIM brain (a)", "ssim brain (a)", "{:.3f}"),
    ("PSNR ET (b)", "psnr enhancing_tumour (b)", "{:.2f}"),
    ("PSNR TC (b)", "psnr tumour_core (b)", "{:.2f}"),
    ("PSNR WT (b)", "psnr whole_tumour (b)", "{:.2f}"),
    ("PSNR ET (a)", "psnr enhancing_tumour (a)", "{:.2f}"),
    ("brain median (b)", "median", "{:.3f}"),
    ("ET contrast", "enhancement_contrast", "{:.2f}"),
    ("BraSyn SSIM tumour", "brasyn_tumour", "{:.4f}"),
    ("BraSyn SSIM non-tumour", "brasyn_non_tumour", "{:.4f}"),
)


def _cells(values: Mapping[str, float]) -> list[str]:
    return [form.format(values[key]) if key in values and np.isfinite(values[key]) else "" for _, key, form in COLUMNS]


def render(
    figures: Mapping[str, Mapping[str, Mapping[str, float]]],
    checks: Mapping[str, list[tuple[str, bool, str]]],
    command: str,
    descriptions: Mapping[str, str],
) -> str:
    """``yardstick.md``: the means, each model's verdicts and the cases it loses, then every case."""
    models = list(checks)
    methods = [*models, *BASELINES, "real"]
    header = "| method | " + " | ".join(name for name, _, _ in COLUMNS) + " |"
    rule = "|---|" + "---:|" * len(COLUMNS)
    lines = [
        "; ".join(f"`{name}`: {descriptions[name]}" for name in models)
        + f". {len(figures)} validation cases of `Testing/experiments/real_split.tsv`; baselines fitted on its "
        "training cases. (b) model scale, (a) own percentiles; ET/TC/WT: expert label regions; ET contrast: "
        "enhancing-tumour median over normal-appearing-brain median.",
        "",
        f"    {command}",
        "",
        "**Mean over the validation cases**",
        "",
        header,
        rule,
    ]
    keys = [key for _, key, _ in COLUMNS]
    for method in methods:
        lines.append(f"| {method} | " + " | ".join(_cells({key: mean_of(figures, method, key) for key in keys})) + " |")
    for model in models:
        lines += ["", f"**Acceptance of `{model}`**", "", "| criterion | met | figures |", "|---|---|---|"]
        lines += [f"| {name} | {'yes' if met else '**no**'} | {detail} |" for name, met, detail in checks[model]]
        margins = {
            case: [cases[model][f"psnr brain ({p})"] - cases["linear"][f"psnr brain ({p})"] for p in ("b", "a")]
            for case, cases in figures.items()
        }
        losses = [f"{case} ({b:+.2f} dB (b), {a:+.2f} dB (a))" for case, (b, a) in margins.items() if min(b, a) < 0]
        lines += ["", f"Cases `{model}` loses to the linear map (either protocol): {', '.join(losses) or 'none'}"]
    lines += ["", "**Every case**", "", "| case | " + header[2:], "|---" + rule]
    for case, cases in figures.items():
        for method in methods:
            if method in cases:
                lines.append(f"| {case} | {method} | " + " | ".join(_cells(cases[method])) + " |")
    return "\n".join(lines) + "\n"


def parse_arguments(argv: SequenceOf[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--public", type=Path, required=True, help="folder the public BraTS cases were extracted to")
    parser.add_argument("--coregistered", type=Path, default=Path("../shared/data/coregistered"))
    parser.add_argument("--output", type=Path, required=True, help="experiment folder (case links, evaluation, table)")
    parser.add_argument("--model", action="append", help="model file; repeat to compare (default: the bundled model)")
    parser.add_argument("--uncertainty", action="store_true", help="also score the uncertainty map (about 4x slower)")
    parser.add_argument("--device", default="cpu")
    return parser.parse_args(argv)


def main(argv: SequenceOf[str] | None = None) -> int:
    args = parse_arguments(argv)
    try:
        halves = link_recorded_split(args.public, args.coregistered, args.output)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    cones = str(Path(sys.executable).with_name("cones"))  # the console script of this interpreter's environment
    evaluation = args.output / "evaluation"
    models = args.model or ["Resources/Models/cones-lite-t1ce.pt"]
    command = [
        cones, "evaluate", *(part for model in models for part in ("--model", model)),
        "--data", str(halves["validation"]), "--fit-from", str(halves["training"]), "--output", str(evaluation),
        "--device", args.device, "--overwrite",
        *(["--uncertainty"] if args.uncertainty else []),
    ]  # fmt: skip
    subprocess.run(command, check=True)
    figures = collect(evaluation, args.uncertainty)
    descriptions = json.loads((evaluation / "summary.json").read_text())["methods"]
    checks = {name: verdicts(figures, args.uncertainty, name) for name in descriptions if name not in NOT_MODELS}
    shown = shlex.join(
        ["python", "Testing/experiments/real_yardstick.py", *(argv if argv is not None else sys.argv[1:])]
    )
    (args.output / "yardstick.md").write_text(render(figures, checks, shown, descriptions))
    (args.output / "yardstick.json").write_text(
        json.dumps(
            {"command": shown, "evaluate": shlex.join(command), "verdicts": checks, "figures": figures}, indent=2
        )
        + "\n"
    )
    print((args.output / "yardstick.md").read_text())
    return 0 if all(met for model_checks in checks.values() for _, met, _ in model_checks) else 1


if __name__ == "__main__":
    sys.exit(main())
