"""Choosing how the network computes: number format (fp32 or bfloat16) and memory layout.

bfloat16 halves the bytes every convolution moves and, on hardware with bfloat16 units, doubles
the multiply throughput; where those units are missing it is emulated and slower. CPUs differ in
this (AVX512-BF16 and AMX on recent x86, the BF16 extension on recent ARM), so ``auto`` detects
the units instead of assuming.

The memory layout is measured, not assumed: on a quiet 2-core AMD EPYC with AVX512-BF16 (torch
2.13, whole volumes) channels_last made the lite preset faster (bf16 6.1 s against 8.5 s NCHW) and
the paper preset slower (bf16 24.6 s against 19.2 s for 20 slices). So on the CPU the first
synthesis of a network times one slice in both layouts (:func:`calibrated_path`) and the process
keeps the faster for that network and number format.

Whether reduced precision is accurate enough is checked by the accuracy guard
(``Testing/core/test_precision.py``): PSNR >= 40 dB against the fp32 output, or ``auto`` must not
pick it. torch is imported inside the functions, so that the command line and Slicer's panel can
name precisions without loading it.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import platform
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from torch import nn

logger = logging.getLogger(__name__)

__all__ = [
    "CANDIDATE_PATHS",
    "REFERENCE_PATH",
    "ComputePath",
    "Precision",
    "calibrated_path",
    "choose_path",
    "cpu_has_native_bfloat16",
    "parse_precision",
]


class Precision(StrEnum):
    """The number format asked for; the values are the command line's ``--precision`` values."""

    AUTO = "auto"
    """bfloat16 where the device has native bfloat16 units, fp32 elsewhere."""
    FP32 = "fp32"
    BF16 = "bf16"

    @staticmethod
    def label(precision: Precision) -> str:
        """The text of a precision in a combo box (Slicer's parameter node GUI connector calls this)."""
        return _PRECISION_LABELS[precision]


_PRECISION_LABELS = {
    Precision.AUTO: "Automatic (bf16 where the hardware has it)",
    Precision.FP32: "FP32 (32-bit float)",
    Precision.BF16: "BF16 (bfloat16, faster)",
}


def parse_precision(value: Precision | str) -> Precision:
    """The :class:`Precision` named by ``value``.

    Raises:
        ValueError: ``value`` is not ``auto``, ``fp32`` or ``bf16``.
    """
    try:
        return Precision(value)
    except ValueError:
        choices = ", ".join(precision.value for precision in Precision)
        raise ValueError(f"unknown precision {value!r}; use {choices}") from None


@dataclass(frozen=True)
class ComputePath:
    """One way of running the network: bfloat16 autocast or fp32, channels_last or contiguous NCHW."""

    bfloat16: bool
    channels_last: bool

    @property
    def name(self) -> str:
        """``fp32``, ``bf16``, ``fp32+channels_last`` or ``bf16+channels_last`` (as the benchmark prints it)."""
        number_format = "bf16" if self.bfloat16 else "fp32"
        return f"{number_format}+channels_last" if self.channels_last else number_format

    @property
    def precision(self) -> Precision:
        """The explicit precision that selects this path's number format."""
        return Precision.BF16 if self.bfloat16 else Precision.FP32

    @property
    def memory_format(self) -> torch.memory_format:
        import torch

        return torch.channels_last if self.channels_last else torch.contiguous_format

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        """The autocast context of this path on ``device`` (a no-op for fp32)."""
        import torch

        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.bfloat16)


REFERENCE_PATH = ComputePath(bfloat16=False, channels_last=False)
"""Plain fp32 in NCHW: the authors' protocol, and the reference of the accuracy guard."""

CANDIDATE_PATHS = (
    REFERENCE_PATH,
    ComputePath(bfloat16=False, channels_last=True),
    ComputePath(bfloat16=True, channels_last=False),
    ComputePath(bfloat16=True, channels_last=True),
)
"""Every path ``cones bench --compare`` times side by side."""


@functools.cache
def cpu_has_native_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (detected once per process).

    On x86 that is AVX512-BF16 or AMX tiles, as torch's own cpuinfo reports them
    (``torch.cpu._is_avx512_bf16_supported``, ``_is_amx_tile_supported``). oneDNN's
    ``torch.ops.mkldnn._is_mkldnn_bf16_supported()`` is not used there: on x86 it is also true
    for plain AVX-512, where bfloat16 is emulated. On ARM it is the right test (it checks the
    BF16 extension); other CPUs get fp32.
    """
    import torch

    if platform.machine().lower() in ("x86_64", "amd64"):
        return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    if platform.machine().lower() in ("aarch64", "arm64") and torch.backends.mkldnn.is_available():
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def choose_path(precision: Precision | str, device: torch.device, channels_last: bool | None = None) -> ComputePath:
    """The compute path for ``precision`` on ``device``.

    ``auto`` is bfloat16 where the device has bfloat16 units (CUDA: compute capability 8.0 and
    later, not emulation; CPU: :func:`cpu_has_native_bfloat16`) and fp32 elsewhere. An explicit
    ``bf16`` is honoured even where it is emulated. ``channels_last`` ``None`` means NCHW here;
    on the CPU :func:`calibrated_path` then measures which layout is faster for the network.

    Raises:
        ValueError: ``precision`` is not a :class:`Precision`.
    """
    import torch

    precision = parse_precision(precision)
    if precision is Precision.AUTO:
        if device.type == "cuda":
            bfloat16 = torch.cuda.is_bf16_supported(including_emulation=False)
        else:
            bfloat16 = device.type == "cpu" and cpu_has_native_bfloat16()
    else:
        bfloat16 = precision is Precision.BF16
    return ComputePath(bfloat16=bfloat16, channels_last=bool(channels_last))


_CALIBRATED_LAYOUTS: dict[tuple[str, bool], bool] = {}
"""Per network (its class and config) and number format: whether channels_last was the faster layout."""


def calibrated_path(generator: nn.Module, sample: torch.Tensor, path: ComputePath, device: torch.device) -> ComputePath:
    """``path`` in the faster memory layout for ``generator`` on the CPU, timed once per process.

    The first call for a network and number format runs ``sample`` (one batch of the volume) twice in
    each layout, times the second run (the first builds oneDNN's kernels) and remembers the faster;
    later calls, whatever their number or size of slices, reuse that choice. The generator is left in
    the chosen layout. On other devices ``path`` is returned as it is.
    """
    import torch

    if device.type != "cpu":
        return path
    key = (f"{type(generator).__name__}:{getattr(generator, 'config', id(generator))!r}", path.bfloat16)
    if key not in _CALIBRATED_LAYOUTS:
        seconds = {}
        for channels_last in (False, True):
            candidate = ComputePath(path.bfloat16, channels_last)
            generator.to(memory_format=candidate.memory_format)
            batch = sample.contiguous(memory_format=candidate.memory_format)
            with torch.inference_mode(), candidate.autocast(device):
                generator(batch)
                started = time.perf_counter()
                generator(batch)
                seconds[channels_last] = time.perf_counter() - started
        _CALIBRATED_LAYOUTS[key] = seconds[True] < seconds[False]
        logger.info(
            "memory layout timed on one batch: NCHW %.3f s, channels_last %.3f s", seconds[False], seconds[True]
        )
    chosen = ComputePath(path.bfloat16, _CALIBRATED_LAYOUTS[key])
    generator.to(memory_format=chosen.memory_format)
    return chosen
