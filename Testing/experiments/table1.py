"""The Table-1 experiment: CoNeS against pix2pix, ASAP-Net-style, pGAN and ResViT generators on held-out cases.

All five generators are trained by the same trainer (``cones.training.train``) on the same
training cases, with the same iteration budget, batch, crops, schedule, discriminator and seed;
only the generator and its published loss weights differ. ``cones.evaluation.evaluate`` then scores
them, together with the baselines (copy the first source, zero and mean imputation, and the
learned-linear map, the last two fitted on the same training cases), on the held-out cases, and this
script writes ``table1.md``: the paper's Table 1/2 columns (PSNR and SSIM of the whole image and of
the tumour's bounding box, Wilcoxon p-values against CoNeS) under both intensity protocols, the
budget, the split and the training times, next to ``evaluation/spectrum.png`` (the paper's Fig. 4),
and, where the held-out cases have labels, PSNR and SSIM inside the brain and the BraTS label
regions (enhancing tumour, tumour core, whole tumour) under both protocols.

``--real-split DIR`` trains and evaluates on the recorded split of the 39 real cases
(``real_split.tsv``: 30 training, 9 validation; the public BraTS cases extracted to ``DIR``, see
``real_yardstick.py``) instead of ``--train-data`` / ``--test-data``::

    python Testing/experiments/table1.py --real-split brats36 --output runs/table1-real --iterations 300 \
        --batch-size 8 --crop-size 160 128 --bright-crop-fraction 0.25

Example (generated cases on a reduced 2 mm grid)::

    cones sample-data --out /tmp/t1-train --cases 8 --seed 3000 --size 120x120x78 --spacing 2
    cones sample-data --out /tmp/t1-test --cases 4 --seed 4000 --size 120x120x78 --spacing 2
    python Testing/experiments/table1.py --train-data /tmp/t1-train --test-data /tmp/t1-test \\
        --iterations 400 --batch-size 4 --crop-size 96 96 --output /tmp/table1-sample

Nothing here is committed data: case folders are linked (not copied) into ``OUTPUT/train-data``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence as SequenceOf
from pathlib import Path

from real_yardstick import EXTRACT_HINT, link_recorded_split

from cones.checkpoint import load_training_state
from cones.data import find_cases
from cones.evaluation import evaluate, markdown_table
from cones.evaluation.protocols import IntensityProtocol
from cones.metrics import Region
from cones.model import Architecture
from cones.training.config import TrainConfig, default_loss_weights
from cones.training.run import LAST, train

logger = logging.getLogger("table1")

LABEL_REGIONS = (Region.BRAIN, Region.ENHANCING_TUMOUR, Region.TUMOUR_CORE, Region.WHOLE_TUMOUR)
"""The regions of the second table: the brain and the BraTS label regions, where the tissue itself is scored."""


def link_training_cases(folders: SequenceOf[Path], exclude: SequenceOf[str], destination: Path) -> list[str]:
    """Link the case folders of several datasets into one dataset folder (case ids must be unique)."""
    destination.mkdir(parents=True, exist_ok=True)
    linked = []
    for folder in folders:
        for case in find_cases(folder):
            if case.case_id in exclude:
                continue
            if case.case_id in linked:
                raise ValueError(f"case {case.case_id} appears in two training folders")
            link = destination / case.case_id
            source = next(iter(case.sequences.values())).parent.resolve()
            if link.is_symlink() and link.resolve() != source:
                raise ValueError(f"{link} already links to another case folder")
            if not link.exists():
                link.symlink_to(source, target_is_directory=True)
            linked.append(case.case_id)
    if not linked:
        raise ValueError("no training case left")
    return sorted(linked)


def train_all(args: argparse.Namespace, data: Path, output: Path) -> dict[str, dict[str, float | str]]:
    """Train every architecture with one budget; a finished run of that budget is kept (the script can be re-run)."""
    runs = {}
    for arch in args.archs:
        run_dir = output / "runs" / arch
        config = TrainConfig(
            sources=tuple(args.sources),
            targets=(args.target,),
            preset=args.preset,
            arch=arch,
            loss_weights=default_loss_weights(arch),
            iterations=args.iterations,
            batch_size=args.batch_size,
            crop_size=tuple(args.crop_size),
            validation_cases=0,
            validation_interval=args.iterations,
            checkpoint_interval=args.iterations,
            log_interval=max(1, args.iterations // 20),
            seed=args.seed,
            bright_crop_fraction=args.bright_crop_fraction,
        )
        started = time.perf_counter()
        if (run_dir / LAST).exists():
            trained = load_training_state(run_dir / LAST)["iteration"]
            if trained != args.iterations:
                raise ValueError(f"{run_dir} holds a run of {trained} iterations, not {args.iterations}")
        else:
            train(
                config,
                data,
                run_dir,
                device=args.device,
                command=" ".join(sys.argv),
                cache_dir=output / "cache",
                data_description=args.data_description,
                show_progress=False,
            )
            (run_dir / "wall_seconds.txt").write_text(f"{time.perf_counter() - started:.1f}\n")
        seconds = float((run_dir / "wall_seconds.txt").read_text())
        runs[arch] = {"model": str(run_dir / LAST), "training_seconds": seconds}
        logger.info("%s: %d iterations in %.0f s", arch, args.iterations, seconds)
    return runs


def write_table(
    args: argparse.Namespace, output: Path, training: list[str], runs: dict, summary: dict, evaluation_seconds: float
) -> Path:
    """``table1.md``: the setting (data, split, budget, times) and the evaluation's Table-1."""
    evaluation = output / "evaluation"
    lines = [
        f"# {args.target} from {', '.join(args.sources)}: CoNeS vs baselines ({args.preset} preset)",
        "",
        f"- training cases ({len(training)}): {', '.join(training)}",
        f"- held-out cases ({len(summary['cases'])}): {', '.join(summary['cases'])}",
        f"- budget per model: {args.iterations} iterations, batch {args.batch_size}, crops "
        f"{args.crop_size[0]}x{args.crop_size[1]}, seed {args.seed}, device {args.device}, no validation (last.pt)",
        "- wall time: training "
        + ", ".join(f"{a} {r['training_seconds']:.0f} s" for a, r in runs.items())
        + f"; evaluation {evaluation_seconds:.0f} s",
        "- scores: mean ± std over held-out cases, under two protocols (model scale: the models' output scale "
        "divided by itself; own percentiles: each image normalized by its own 0.5-99.5 brain percentiles); "
        "whole = the brain's bounding box; SSIM in 2D per slice, averaged; p: two-sided Wilcoxon signed-rank "
        f"against {args.archs[0]} (per case; no p-value with a single case)",
        "",
        (evaluation / "table.md").read_text().rstrip(),
        "",
        "Spectra: `evaluation/spectrum.png`, `evaluation/spectrum.csv`; examples: `evaluation/examples.png`; "
        "brain intensities per method: `evaluation/calibration.csv`, `evaluation/calibration.png`.",
    ]
    scored = summary["protocols"][IntensityProtocol.MODEL_SCALE.value]["scores"]
    if any(region.value in scored for region in LABEL_REGIONS[1:]):
        lines += ["", "## Inside the brain and the label regions", ""]
        for protocol in IntensityProtocol:
            table = markdown_table(summary, next(iter(summary["methods"])), protocol, regions=LABEL_REGIONS)
            lines += [f"### {protocol.title}", "", table, ""]
    path = output / "table1.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main(argv: SequenceOf[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-data", nargs="+", type=Path, help="dataset folder(s) to train on")
    parser.add_argument("--exclude-cases", nargs="+", default=(), help="cases of --train-data not to train on")
    parser.add_argument("--test-data", type=Path, help="dataset folder with the held-out cases")
    parser.add_argument(
        "--real-split", type=Path, metavar="PUBLIC", help="train and test on real_split.tsv (public cases in PUBLIC)"
    )
    parser.add_argument("--coregistered", type=Path, default=Path("../shared/data/coregistered"))
    parser.add_argument("--test-cases", nargs="+", default=(), help="evaluate only these cases of --test-data")
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--iterations", type=int, default=400, help="the budget: iterations per model")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--crop-size", type=int, nargs=2, default=(96, 96))
    parser.add_argument("--preset", default="lite", choices=["lite", "paper"])
    parser.add_argument(
        "--archs",
        nargs="+",
        default=[arch.value for arch in Architecture],
        choices=[arch.value for arch in Architecture],
        help="the first is the p-value reference",
    )
    parser.add_argument("--sources", nargs="+", default=["t1", "t2", "flair"])
    parser.add_argument("--target", default="t1ce")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--bright-crop-fraction", type=float, default=0.0, help="share of crops around bright target pixels (recipe)"
    )
    parser.add_argument("--train-only", action="store_true", help="train (or keep) the models, evaluate nothing")
    parser.add_argument("--data-description", help="recorded in the models' provenance")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.real_split is not None:
        try:
            halves = link_recorded_split(args.real_split, args.coregistered, args.output / "split")
        except FileNotFoundError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        args.train_data, args.test_data = [halves["training"]], halves["validation"]
    elif args.train_data is None or args.test_data is None:
        parser.error(f"give --train-data and --test-data, or --real-split ({EXTRACT_HINT})")

    training = link_training_cases(args.train_data, args.exclude_cases, args.output / "train-data")
    runs = train_all(args, args.output / "train-data", args.output)
    if args.train_only:
        return 0
    started = time.perf_counter()
    result = evaluate(
        [run["model"] for run in runs.values()],
        args.test_data,
        args.output / "evaluation",
        case_ids=tuple(args.test_cases),
        fit_from=args.output / "train-data",
        device=args.device,
        overwrite=True,
    )
    evaluation_seconds = time.perf_counter() - started
    (args.output / "runs.json").write_text(json.dumps(runs, indent=2) + "\n")
    table = write_table(args, args.output, training, runs, result.summary, evaluation_seconds)
    print(table.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
