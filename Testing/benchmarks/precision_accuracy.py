"""Accuracy guard of a briefly trained generator (the paper preset): PSNR of each reduced-precision path vs fp32.

Trains a generator of ``--preset`` briefly (foreground L1, ``Testing/core/brief_training.py``) on a
generated case, then synthesizes that case and, when given, the central slices of real
co-registered cases through every compute path of :data:`cones.precision.CANDIDATE_PATHS`, and
prints one JSON object: the fit (L1 before, after, and of the best constant), the training time,
and per case the PSNR (dB) of each path against plain fp32 NCHW, over the source foreground, in the
fp32 volume's value range. A path under 40 dB must not be chosen by ``--precision auto``.
``Testing/core/test_precision.py`` runs the same guard on the bundled lite model; the paper preset's
lives here because its training takes minutes. ``learned_beyond_a_constant`` says whether the
network's foreground L1 ended under 0.9x that of the best constant output: a network that did not
learn outputs a near-constant field, and its PSNR says nothing. Training at this learning rate is
noisy: one 60-step run reached L1 0.16 (constant: 0.22), another 0.22; hence 100 steps.

Usage::

    python Testing/benchmarks/precision_accuracy.py --preset paper --iterations 100 \
        --real ../shared/data/coregistered/TCGA-DU-7294
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))  # the generated cases of the core tests
from brief_training import normalized_case, train_briefly
from test_precision import SOURCES, central_slices, generated_case, guard_psnrs

from cones.data import find_cases
from cones.model import build_generator
from cones.sequences import Sequence


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="paper", choices=["lite", "paper"])
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--crop", type=int, default=48)
    parser.add_argument("--shape", type=int, nargs=3, default=(6, 48, 48), metavar=("Z", "Y", "X"))
    parser.add_argument("--real", type=Path, nargs="*", default=[], help="co-registered case folders")
    parser.add_argument("--real-slices", type=int, default=8)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    volumes = generated_case(tuple(args.shape), seed=3)
    generator = build_generator(args.preset, len(SOURCES), 1)
    start = time.perf_counter()
    fit = train_briefly(
        generator, *normalized_case(volumes, SOURCES, Sequence.T1CE), iterations=args.iterations, crop=args.crop
    )
    report = {
        "preset": args.preset,
        "fit": vars(fit),
        "learned_beyond_a_constant": fit.final_l1 < 0.9 * fit.constant_l1,
        "training_s": round(time.perf_counter() - start, 1),
    }
    real = [case for folder in args.real for case in find_cases(folder.parent) if case.case_id == folder.name]
    cases = {"generated": volumes} | {case.case_id: central_slices(case, args.real_slices) for case in real}
    report["psnr_against_fp32_db"] = {
        name: guard_psnrs(generator, case, SOURCES, Sequence.T1CE) for name, case in cases.items()
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
