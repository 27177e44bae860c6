"""Training speed benchmark: seconds per adversarial iteration of ``cones train`` and peak memory.

Times the exact step ``cones train`` runs (:class:`cones.training.step.AdversarialStep`: one
discriminator and one generator update with the paper's losses) on random crops, so the figure
isolates the network cost from data loading, which the slice cache makes negligible. Timings are
reported, never asserted: they depend on the machine. ``--precision fp32 bf16`` times both number
formats side by side in one run (``cones train`` autocasts to bf16 on CUDA only).

Usage::

    python Testing/benchmarks/training_speed.py --preset lite paper --device cpu --steps 5 --precision fp32 bf16
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

import torch

from cones.device import resolve_device
from cones.model import build_discriminator, build_generator
from cones.precision import Precision
from cones.training.config import TrainConfig
from cones.training.step import AdversarialStep

SOURCES, TARGETS = 3, 1


def seconds_per_iteration(
    preset: str, device: str, batch_size: int, crop_size: tuple[int, int], steps: int, precision: Precision
) -> float:
    """Mean wall time of ``steps`` training iterations after one warm-up iteration."""
    torch_device = resolve_device(device)
    config = TrainConfig(preset=preset, batch_size=batch_size, crop_size=crop_size)
    generator = build_generator(preset, SOURCES, TARGETS).to(torch_device)
    discriminator = build_discriminator(preset, SOURCES, TARGETS).to(torch_device)
    step = AdversarialStep(config, generator, discriminator, autocast=precision is Precision.BF16)
    sources = torch.rand(batch_size, SOURCES, *crop_size, device=torch_device) * 2 - 1
    target = torch.rand(batch_size, TARGETS, *crop_size, device=torch_device) * 2 - 1
    offsets = torch.zeros(batch_size, 2, dtype=torch.long, device=torch_device)
    noise = torch.Generator(device=torch_device).manual_seed(0)
    step(sources, target, offsets, 0, noise)
    _synchronize(torch_device)
    start = time.perf_counter()
    for iteration in range(1, steps + 1):
        step(sources, target, offsets, iteration, noise)
    _synchronize(torch_device)
    return (time.perf_counter() - start) / steps


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_memory_mb(device: str) -> float:
    """Peak GPU memory on CUDA, else the process's peak resident set (Linux reports KiB)."""
    if resolve_device(device).type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", nargs="+", default=["lite"], choices=["lite", "paper"])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=8, help="crops per iteration (paper: 8)")
    parser.add_argument("--crop-size", type=int, nargs=2, default=(160, 128), metavar=("ROWS", "COLS"))
    parser.add_argument("--steps", type=int, default=5, help="timed iterations after one warm-up")
    parser.add_argument(
        "--precision", nargs="+", type=Precision, default=[Precision.FP32], choices=[Precision.FP32, Precision.BF16]
    )
    args = parser.parse_args(argv)
    threads = torch.get_num_threads()
    print(f"torch {torch.__version__}, {threads} threads, batch {args.batch_size}, crops {tuple(args.crop_size)}")
    print("| preset | device | precision | s/iteration | iterations/s | peak memory (MB) |")
    print("|---|---|---|---:|---:|---:|")
    for preset in args.preset:
        for precision in args.precision:
            seconds = seconds_per_iteration(
                preset, args.device, args.batch_size, tuple(args.crop_size), args.steps, precision
            )
            memory = _peak_memory_mb(args.device)
            device = resolve_device(args.device)
            print(f"| {preset} | {device} | {precision} | {seconds:.2f} | {1 / seconds:.3f} | {memory:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
