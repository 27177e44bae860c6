"""Speed and memory benchmarks of the generator, as reported in the closing notes and README.

Timings are measured, never asserted in tests: they depend on the machine. ``cones bench`` prints
one row per preset and architecture: parameters, GFLOP per slice (counted by torch's FLOP counter), seconds per
slice, seconds per whole volume through :func:`~cones.inference.synthesize_volume` (background
slices skipped, as in real use), and peak memory: on CUDA the GPU memory allocated for that row; on
the CPU the process's peak resident memory, reset before each row on Linux (elsewhere it only grows
within a process: run one row per process there). ``--compare`` times every compute path of
:mod:`cones.precision` side by side in one process, so their ratios share the machine's load; for
CoNeS its first row is the authors' protocol (fp32, NCHW, the neural field on whole slices), the
others run the field on the foreground pixels only, as synthesis does.
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from cones.checkpoint import LoadedModel
from cones.config import NormalizationConfig
from cones.device import resolve_device
from cones.inference import SynthesisOptions, slice_network, synthesize_volume
from cones.metrics import psnr, rescale_pair
from cones.model import Architecture, CoNeSGenerator, Preset, build_generator
from cones.precision import CANDIDATE_PATHS, REFERENCE_PATH, ComputePath, Precision, calibrated_path, choose_path
from cones.sequences import Sequence

__all__ = ["BenchmarkResult", "benchmark_preset", "format_table", "phantom_volume"]

_SOURCES = (Sequence.T1, Sequence.T2, Sequence.FLAIR)


@dataclass(frozen=True)
class BenchmarkResult:
    """One row of the benchmark table."""

    preset: str
    arch: str
    device: str
    path: str
    parameters: int
    gflop_per_slice: float
    seconds_per_slice: float
    seconds_per_volume: float | None
    volume_shape: tuple[int, int, int]
    peak_memory_mb: float
    psnr_against_fp32: float | None = None


def phantom_volume(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """A skull-stripped-like volume: noise inside an ellipsoid, exactly 0 outside.

    Its foreground covers about as many slices as a BraTS brain, so the per-volume time reflects
    the background-slice skipping of real data. ``shape`` is (x, y, z) like the NIfTI size.
    """
    x, y, z = (np.linspace(-1, 1, n) for n in shape)
    inside = (x[:, None, None] / 0.7) ** 2 + (y[None, :, None] / 0.85) ** 2 + (z[None, None, :] / 0.8) ** 2 < 1
    values = np.random.default_rng(seed).uniform(100, 1000, size=shape).astype(np.float32)
    return np.transpose(np.where(inside, values, 0.0), (2, 1, 0))  # (z, y, x) like SimpleITK arrays


def _phantom_slice_foreground(slice_shape: tuple[int, int]) -> torch.Tensor:
    """``(1, rows, cols)``: the phantom's central axial slice outline, 47 % of the slice (a BraTS slice: 30-45 %)."""
    rows, cols = (torch.linspace(-1, 1, n) for n in slice_shape)
    return ((rows[:, None] / 0.85) ** 2 + (cols[None, :] / 0.7) ** 2 < 1)[None]


_PROC_STATUS = Path("/proc/self/status")
_PROC_CLEAR_REFS = Path("/proc/self/clear_refs")


def _reset_peak_memory(device: torch.device) -> None:
    """Start a new peak: on CUDA the allocator's; on Linux the process's resident peak (VmHWM).

    Writing 5 to ``/proc/self/clear_refs`` resets VmHWM (Linux >= 4.0), so rows measured side by
    side in one process each get their own peak. Elsewhere the CPU peak cannot be reset.
    """
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    elif _PROC_CLEAR_REFS.exists():
        _PROC_CLEAR_REFS.write_text("5")


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 1024**2
    if _PROC_STATUS.exists():
        peak = next(line for line in _PROC_STATUS.read_text().splitlines() if line.startswith("VmHWM:"))
        return int(peak.split()[1]) / 1024  # kB
    scale = 1024**2 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB elsewhere
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def benchmark_preset(
    preset: Preset | str,
    device: str = "cpu",
    volume_shape: tuple[int, int, int] | None = (240, 240, 155),
    slice_shape: tuple[int, int] = (240, 240),
    repeats: int = 3,
    precision: Precision | str = Precision.AUTO,
    batch_size: int | None = None,
    arch: Architecture | str = Architecture.CONES,
    compare: bool = False,
    model: LoadedModel | None = None,
) -> list[BenchmarkResult]:
    """Time one generator with 3 sources and 1 target: the path ``precision`` chooses, or every path.

    Random weights time the same as trained ones, but their output is nearly constant, so the PSNR
    against fp32 (the first row of ``compare``) is only reported for a trained ``model``.

    Args:
        preset: the model size (ignored with ``model``).
        device: ``cpu``, ``cuda`` or ``auto``.
        volume_shape: (x, y, z) of the whole-volume run; ``None`` skips it.
        slice_shape: (rows, columns) of the per-slice timing.
        repeats: timed forward passes after one warm-up.
        precision: ``auto``, ``fp32`` or ``bf16``; the row is the path synthesis chooses for it.
        batch_size: slices per forward pass in the whole-volume run (``None``: synthesis's default).
        arch: the generator architecture (CoNeS or a baseline; ignored with ``model``).
        compare: one row per path of :data:`~cones.precision.CANDIDATE_PATHS` instead; for CoNeS first the
            authors' protocol (fp32 NCHW, whole slices), for other architectures fp32 first. The path
            synthesis chooses for ``precision`` is marked "(chosen)".
        model: a trained model to time (its card gives the sources and targets) instead of random weights.
    """
    torch_device = resolve_device(device)
    if model is None:
        generator = build_generator(preset, len(_SOURCES), 1, arch)
        sources, targets, normalization = _SOURCES, (Sequence.T1CE,), NormalizationConfig()
    else:
        generator, preset, arch = model.generator, model.card.preset or "-", model.card.architecture
        sources, targets, normalization = model.card.sources, model.card.targets, model.card.normalization
    generator.to(torch_device).eval()
    volumes = None
    if volume_shape is not None:
        volumes = {seq: phantom_volume(volume_shape, seed) for seed, seq in enumerate(sources)}
    batch = torch.randn(1, len(sources), *slice_shape, device=torch_device)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        generator(batch)
    # The chosen path's layout is the one synthesis times for itself once per process (the same cache).
    chosen = calibrated_path(generator, batch, choose_path(precision, torch_device), torch_device)
    rows = [(path, True) for path in (CANDIDATE_PATHS if compare else (chosen,))]
    if compare and isinstance(generator, CoNeSGenerator):
        rows.insert(0, (REFERENCE_PATH, False))
    foreground = _phantom_slice_foreground(slice_shape).to(torch_device)
    results, reference = [], None
    for path, skip_background in rows:
        _reset_peak_memory(torch_device)
        network = slice_network(generator, skip_background)
        seconds_per_slice, output = _time_slices(
            lambda batch, network=network: network(batch, foreground), generator, batch, path, torch_device, repeats
        )
        seconds_per_volume = None
        if volumes is None:
            output = np.where(foreground.cpu().numpy()[:, None], output, np.float32(-1.0))
        else:
            options = SynthesisOptions(
                str(torch_device),
                batch_size,
                precision=path.precision,
                channels_last=path.channels_last if compare else None,
                skip_background=skip_background,
            )
            start = time.perf_counter()
            output = synthesize_volume(generator, volumes, sources, targets, normalization, options)[targets[0]]
            _synchronize(torch_device)
            seconds_per_volume = time.perf_counter() - start
        reference = output if reference is None else reference
        results.append(
            BenchmarkResult(
                preset=str(preset),
                arch=str(arch),
                device=str(torch_device),
                path=_row_name(path, skip_background, chosen if compare else None),
                parameters=sum(p.numel() for p in generator.parameters()),
                gflop_per_slice=counter.get_total_flops() / 1e9,
                seconds_per_slice=seconds_per_slice,
                seconds_per_volume=seconds_per_volume,
                volume_shape=volume_shape or (0, 0, 0),
                peak_memory_mb=_peak_memory_mb(torch_device),
                psnr_against_fp32=_psnr(output, reference) if results and model is not None else None,
            )
        )
    return results


def _row_name(path: ComputePath, skip_background: bool, chosen: ComputePath | None) -> str:
    """The path's name, ", whole slices" for the authors' protocol, " (chosen)" for what synthesis takes."""
    name = path.name if skip_background else f"{path.name}, whole slices"
    return f"{name} (chosen)" if skip_background and path == chosen else name


def _time_slices(
    network: Callable[[torch.Tensor], torch.Tensor],
    generator: nn.Module,
    batch: torch.Tensor,
    path: ComputePath,
    device: torch.device,
    repeats: int,
) -> tuple[float, np.ndarray]:
    """Median seconds of one ``network(batch)`` pass on ``path`` after a warm-up, and the output image."""
    generator.to(memory_format=path.memory_format)
    batch = batch.contiguous(memory_format=path.memory_format)
    times = []
    try:
        with torch.inference_mode(), path.autocast(device):
            output = network(batch)
            for _ in range(repeats):
                _synchronize(device)
                start = time.perf_counter()
                network(batch)
                _synchronize(device)
                times.append(time.perf_counter() - start)
    finally:
        generator.to(memory_format=torch.contiguous_format)
    return float(np.median(times)), output.float().cpu().numpy()


def _psnr(output: np.ndarray, reference: np.ndarray) -> float:
    """PSNR of ``output`` against the fp32 ``reference`` over the reference's non-background, in its value range."""
    mask = reference != reference.min()
    return psnr(*rescale_pair(output, reference), mask=mask)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def format_table(results: list[BenchmarkResult]) -> str:
    """Markdown table of benchmark rows."""
    lines = [
        "| arch | preset | device | path | parameters | GFLOP/slice | s/slice | volume | s/volume "
        "| peak memory (MB) | PSNR vs fp32 (dB) |",
        "|---|---|---|---|---:|---:|---:|---|---:|---:|---:|",
    ]
    for r in results:
        volume = "x".join(map(str, r.volume_shape)) if r.seconds_per_volume is not None else "-"
        per_volume = f"{r.seconds_per_volume:.1f}" if r.seconds_per_volume is not None else "-"
        accuracy = f"{r.psnr_against_fp32:.1f}" if r.psnr_against_fp32 is not None else "-"
        lines.append(
            f"| {r.arch} | {r.preset} | {r.device} | {r.path} | {r.parameters:,} | {r.gflop_per_slice:.1f} | "
            f"{r.seconds_per_slice:.3f} | {volume} | {per_volume} | {r.peak_memory_mb:.0f} | {accuracy} |"
        )
    return "\n".join(lines)
