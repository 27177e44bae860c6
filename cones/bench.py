"""Speed and memory benchmarks of the generator, as reported in the closing notes and README.

Timings are measured, never asserted in tests: they depend on the machine. ``cones bench`` prints
one row per preset and architecture: parameters, GFLOP per slice (counted by torch's FLOP counter), seconds per
slice, seconds per whole volume through :func:`~cones.inference.synthesize_volume` (background
slices skipped, as in real use), and peak memory: on CUDA the GPU memory allocated for that row; on
the CPU the process's peak resident memory, which only ever grows within a process, so a row
measured after a bigger model reports that model's peak: run one preset and architecture per process
for per-row CPU memory figures.
"""

from __future__ import annotations

import resource
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from cones.config import NormalizationConfig
from cones.device import resolve_device
from cones.inference import SynthesisOptions, synthesize_volume
from cones.model import Architecture, Preset, build_generator
from cones.sequences import Sequence

__all__ = ["BenchmarkResult", "benchmark_preset", "format_table", "phantom_volume"]

_SOURCES = (Sequence.T1, Sequence.T2, Sequence.FLAIR)


@dataclass(frozen=True)
class BenchmarkResult:
    """One row of the benchmark table."""

    preset: str
    arch: str
    device: str
    dtype: str
    parameters: int
    gflop_per_slice: float
    seconds_per_slice: float
    seconds_per_volume: float | None
    volume_shape: tuple[int, int, int]
    peak_memory_mb: float


def phantom_volume(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """A skull-stripped-like volume: noise inside an ellipsoid, exactly 0 outside.

    Its foreground covers about as many slices as a BraTS brain, so the per-volume time reflects
    the background-slice skipping of real data. ``shape`` is (x, y, z) like the NIfTI size.
    """
    x, y, z = (np.linspace(-1, 1, n) for n in shape)
    inside = (x[:, None, None] / 0.7) ** 2 + (y[None, :, None] / 0.85) ** 2 + (z[None, None, :] / 0.8) ** 2 < 1
    values = np.random.default_rng(seed).uniform(100, 1000, size=shape).astype(np.float32)
    return np.transpose(np.where(inside, values, 0.0), (2, 1, 0))  # (z, y, x) like SimpleITK arrays


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 1024**2
    scale = 1024**2 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def benchmark_preset(
    preset: Preset | str,
    device: str = "cpu",
    volume_shape: tuple[int, int, int] | None = (240, 240, 155),
    slice_shape: tuple[int, int] = (240, 240),
    repeats: int = 3,
    bfloat16: bool = False,
    batch_size: int | None = None,
    arch: Architecture | str = Architecture.CONES,
) -> BenchmarkResult:
    """Time one preset with 3 sources and 1 target on random weights (speed does not depend on them).

    Args:
        preset: the model size.
        device: ``cpu``, ``cuda`` or ``auto``.
        volume_shape: (x, y, z) of the whole-volume run; ``None`` skips it.
        slice_shape: (rows, columns) of the per-slice timing.
        repeats: timed forward passes after one warm-up.
        bfloat16: autocast to bfloat16 (CUDA).
        batch_size: slices per forward pass in the whole-volume run (``None``: synthesis's default).
        arch: the generator architecture (CoNeS or a baseline).
    """
    torch_device = resolve_device(device)
    if torch_device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(torch_device)  # each row its own peak; the CPU's cannot be reset
    generator = build_generator(preset, len(_SOURCES), 1, arch).to(torch_device).eval()
    batch = torch.randn(1, len(_SOURCES), *slice_shape, device=torch_device)
    autocast = torch.autocast(torch_device.type, dtype=torch.bfloat16, enabled=bfloat16)
    with torch.inference_mode(), autocast:
        with FlopCounterMode(display=False) as counter:
            generator(batch)
        times = []
        for _ in range(repeats):
            _synchronize(torch_device)
            start = time.perf_counter()
            generator(batch)
            _synchronize(torch_device)
            times.append(time.perf_counter() - start)
    seconds_per_volume = None
    if volume_shape is not None:
        sources = {seq: phantom_volume(volume_shape, seed) for seed, seq in enumerate(_SOURCES)}
        options = SynthesisOptions(device=str(torch_device), batch_size=batch_size, bfloat16=bfloat16)
        start = time.perf_counter()
        synthesize_volume(generator, sources, _SOURCES, (Sequence.T1CE,), NormalizationConfig(), options)
        _synchronize(torch_device)
        seconds_per_volume = time.perf_counter() - start
    return BenchmarkResult(
        preset=str(preset),
        arch=str(arch),
        device=str(torch_device),
        dtype="bfloat16" if bfloat16 else "float32",
        parameters=sum(p.numel() for p in generator.parameters()),
        gflop_per_slice=counter.get_total_flops() / 1e9,
        seconds_per_slice=float(np.median(times)),
        seconds_per_volume=seconds_per_volume,
        volume_shape=volume_shape or (0, 0, 0),
        peak_memory_mb=_peak_memory_mb(torch_device),
    )


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def format_table(results: list[BenchmarkResult]) -> str:
    """Markdown table of benchmark rows."""
    lines = [
        "| arch | preset | device | dtype | parameters | GFLOP/slice | s/slice | volume | s/volume "
        "| peak memory (MB) |",
        "|---|---|---|---|---:|---:|---:|---|---:|---:|",
    ]
    for r in results:
        volume = "x".join(map(str, r.volume_shape)) if r.seconds_per_volume is not None else "-"
        per_volume = f"{r.seconds_per_volume:.1f}" if r.seconds_per_volume is not None else "-"
        lines.append(
            f"| {r.arch} | {r.preset} | {r.device} | {r.dtype} | {r.parameters:,} | {r.gflop_per_slice:.1f} | "
            f"{r.seconds_per_slice:.3f} | {volume} | {per_volume} | {r.peak_memory_mb:.0f} |"
        )
    return "\n".join(lines)
