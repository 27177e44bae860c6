"""Choosing the compute device: CUDA when present and usable, then Apple's MPS, the CPU otherwise.

A CUDA build of PyTorch carries compiled kernels for a list of GPU architectures only. On a GPU
outside that list (a newer card than the build knows, or an old one the build dropped),
``torch.cuda.is_available()`` is still True and the run fails at the first kernel, minutes into a
job. The device is therefore checked against the build's architecture list when it is resolved,
before any data is read.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import torch

__all__ = ["DEVICE_CHOICES", "cuda_architecture_supported", "resolve_device"]

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
"""The device names the command line accepts (``cuda:N`` too)."""

logger = logging.getLogger(__name__)


def cuda_architecture_supported(capability: tuple[int, int], architectures: Iterable[str]) -> bool:
    """Whether a build with ``architectures`` (``torch.cuda.get_arch_list()``) runs on a GPU of ``capability``.

    A binary kernel (``sm_86``) runs on its own architecture only (and on a later minor version of the
    same major, e.g. ``sm_86`` on 8.9); PTX (``compute_80``) is compiled by the driver for any later GPU.
    """
    major, minor = capability
    for architecture in architectures:
        kind, _, number = architecture.partition("_")
        if not number.isdigit():
            continue
        built = (int(number[:-1]), int(number[-1]))
        if kind == "sm" and built[0] == major and built[1] <= minor:
            return True
        if kind == "compute" and built <= (major, minor):
            return True
    return False


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return backend is not None and backend.is_available()


def _cuda_problem(device: torch.device) -> str | None:
    """Why CUDA ``device`` cannot run this torch build's kernels, or None when it can."""
    if not torch.cuda.is_available():
        return "CUDA is not available on this machine"
    index = device.index if device.index is not None else torch.cuda.current_device()
    if index >= torch.cuda.device_count():
        return f"there is no CUDA device {index} (this machine has {torch.cuda.device_count()})"
    capability = torch.cuda.get_device_capability(index)
    architectures = torch.cuda.get_arch_list()
    if cuda_architecture_supported(capability, architectures):
        return None
    name = torch.cuda.get_device_name(index)
    return (
        f"this PyTorch {torch.__version__} build has kernels for {', '.join(architectures) or 'no GPU'} but not for "
        f"the {name} (sm_{capability[0]}{capability[1]}); install a PyTorch build for this GPU "
        "(in Slicer: the PyTorch Utils module)"
    )


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"`` into a usable :class:`torch.device`.

    ``auto`` takes a CUDA GPU this torch build can run on, then Apple's MPS, then the CPU; it logs
    why it passed over a GPU it found.

    Raises:
        ValueError: the name is not a device, or CUDA or MPS was asked for but cannot run here (an
            explicit request must not silently fall back to a CPU run that takes 50x longer).
    """
    if isinstance(device, torch.device):
        resolved = device
    elif device == "auto":
        return _automatic_device()
    else:
        try:
            resolved = torch.device(device)
        except RuntimeError:
            raise ValueError(f"unknown device {device!r}; use {', '.join(DEVICE_CHOICES)}") from None
    if resolved.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unsupported device {device!r}; use {', '.join(DEVICE_CHOICES)}")
    if resolved.type == "cuda" and (problem := _cuda_problem(resolved)) is not None:
        raise ValueError(f"device {str(device)!r} was requested but {problem}")
    if resolved.type == "mps" and not _mps_available():
        raise ValueError(
            f"device {str(device)!r} was requested but Apple's MPS is not available (it needs an Apple silicon Mac "
            "and a PyTorch build with MPS)"
        )
    return resolved


def _automatic_device() -> torch.device:
    if torch.cuda.is_available():
        cuda = torch.device("cuda")
        problem = _cuda_problem(cuda)
        if problem is None:
            return cuda
        logger.warning("not using the GPU: %s; running on the CPU", problem)
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")
