"""Background skipping benchmark: whole slices (the authors' protocol) against brain pixels only, side by side.

Synthesizes one phantom volume (:func:`cones.bench.phantom_volume`) with the neural field on whole
slices and on the foreground pixels alone, alternating the two ``--rounds`` times in one process so
that both share the machine's load, on the path ``--precision`` and ``--channels-last`` give
(default: fp32 NCHW, the authors' number format), after one untimed slice of each. Prints the
seconds of every run, the speed-up of the medians, the load average before and after, and the PSNR
of the brain-pixel output against the whole-slice one. Timings are reported, never asserted. Without
``--model`` the preset's random weights are timed (the paper preset's 45 M parameters are not
trained here); the PSNR is then left out.

Usage::

    python Testing/benchmarks/background_skipping.py --preset paper --size 240x240x10 --rounds 2
    python Testing/benchmarks/background_skipping.py --model Resources/Models/cones-lite-t1ce.pt --channels-last
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
import torch

from cones.bench import phantom_volume
from cones.checkpoint import load_model
from cones.config import NormalizationConfig
from cones.inference import SynthesisOptions, synthesize_volume
from cones.metrics import psnr, rescale_pair
from cones.model import build_generator
from cones.sequences import Sequence

SOURCES, TARGET = (Sequence.T1, Sequence.T2, Sequence.FLAIR), Sequence.T1CE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="lite", choices=["lite", "paper"])
    parser.add_argument("--model", help="a trained model (replaces --preset; adds the PSNR)")
    parser.add_argument("--size", default="240x240x155", help="phantom volume (x, y, z)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--channels-last", action="store_true")
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    if args.model:
        model = load_model(args.model)
        generator, sources, target, normalization = (
            model.generator,
            model.card.sources,
            model.card.targets[0],
            model.card.normalization,
        )
    else:
        generator, sources, target = build_generator(args.preset, len(SOURCES), 1), SOURCES, TARGET
        normalization = NormalizationConfig()
    shape = tuple(int(n) for n in args.size.split("x"))
    volumes = {sequence: phantom_volume(shape, seed) for seed, sequence in enumerate(sources)}
    seconds: dict[str, list[float]] = {"whole slices": [], "brain pixels": []}
    outputs = {}
    middle = shape[2] // 2
    warm_up = {sequence: volume[middle : middle + 1] for sequence, volume in volumes.items()}
    paths = {
        name: SynthesisOptions("cpu", precision=args.precision, channels_last=args.channels_last, skip_background=skip)
        for name, skip in (("whole slices", False), ("brain pixels", True))
    }
    for options in paths.values():  # oneDNN builds its kernels on the first slice of each shape
        synthesize_volume(generator, warm_up, sources, (target,), normalization, options)
    load_before = os.getloadavg()
    for _ in range(args.rounds):
        for name, options in paths.items():
            start = time.perf_counter()
            outputs[name] = synthesize_volume(generator, volumes, sources, (target,), normalization, options)[target]
            seconds[name].append(round(time.perf_counter() - start, 2))
    foreground = np.any([volume > 0 for volume in volumes.values()], axis=0)
    report = {
        "model": args.model or f"{args.preset} (random weights)",
        "size": args.size,
        "path": f"{args.precision}{' + channels_last' if args.channels_last else ''}",
        "threads": torch.get_num_threads(),
        "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "seconds": seconds,
        "speed_up_of_medians": round(
            statistics.median(seconds["whole slices"]) / statistics.median(seconds["brain pixels"]), 2
        ),
    }
    if args.model:
        reference = outputs["whole slices"]
        report["psnr_db"] = round(psnr(*rescale_pair(outputs["brain pixels"], reference), mask=foreground), 1)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
