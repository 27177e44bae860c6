"""Cost of the uncertainty map: synthesis with it against plain synthesis, side by side in one process.

Synthesizes one case (a co-registered case folder, or a generated 240 x 240 x 155 case) with a
model, alternating plain synthesis (:func:`cones.inference.synthesize_images`) and synthesis with
the uncertainty map (:func:`cones.inference.synthesize_images_with_uncertainty`), each
``--repeats`` times after one warm-up of each, and prints one JSON object: every time, the fastest
of each and their ratio (the fastest run is the one least slowed by other processes: on two cores
another busy process can triple a multi-threaded synthesis). The budget on the CPU is a ratio of
at most 4: one extra network pass per source makes about 4 for three sources, less the shared
reading and normalization.

Usage::

    python Testing/benchmarks/uncertainty_cost.py --model Resources/Models/cones-lite-t1ce.pt \\
        [--case ../shared/data/coregistered/TCGA-FG-6692] [--device cpu] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from cones.checkpoint import load_model
from cones.data import find_cases, load_case
from cones.inference import SynthesisOptions, synthesize_images, synthesize_images_with_uncertainty
from cones.sample_data import write_sample_dataset


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--case", type=Path, help="a case folder (default: one generated case, seed 2026)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    model = load_model(args.model)
    with tempfile.TemporaryDirectory() as work:
        folder = args.case.parent if args.case else Path(work)
        if args.case is None:
            write_sample_dataset(folder, num_cases=1, seed=2026)
        case = next(c for c in find_cases(folder) if args.case is None or c.case_id == args.case.name)
        images = load_case(case, model.card.sources)
    options = SynthesisOptions(device=args.device, precision=args.precision)
    runs = {"plain": lambda: synthesize_images(model, images, options=options, input_checks=False)}
    runs["with_uncertainty"] = lambda: synthesize_images_with_uncertainty(
        model, images, options=options, input_checks=False
    )
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for repeat in range(args.repeats + 1):
        for name, run in runs.items():
            started = time.perf_counter()
            run()
            if repeat:  # the first round warms up (layout calibration, allocator)
                seconds[name].append(time.perf_counter() - started)
    fastest = {name: min(values) for name, values in seconds.items()}
    print(
        json.dumps(
            {
                "case": case.case_id,
                "model": str(args.model),
                "device": args.device,
                "threads": torch.get_num_threads(),
                "cpu": platform.processor() or platform.machine(),
                "seconds": {name: [round(value, 2) for value in values] for name, values in seconds.items()},
                "fastest_seconds": {name: round(value, 2) for name, value in fastest.items()},
                "ratio": round(fastest["with_uncertainty"] / fastest["plain"], 2),
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
