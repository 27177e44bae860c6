"""Device resolution: names, Apple MPS, and whether a CUDA build has kernels for the GPU."""

from __future__ import annotations

import pytest
import torch

from cones.device import cuda_architecture_supported, resolve_device


@pytest.mark.parametrize(
    ("capability", "architectures", "supported"),
    [
        ((8, 6), ["sm_50", "sm_80", "sm_86", "sm_90"], True),
        ((8, 9), ["sm_80", "sm_86"], True),  # a cubin runs on later minor versions of its major
        ((12, 0), ["sm_50", "sm_80", "sm_86", "sm_90"], False),  # a newer GPU than the build knows
        ((12, 0), ["sm_80", "compute_90"], True),  # PTX is compiled by the driver for later GPUs
        ((7, 0), ["sm_80", "compute_80"], False),  # PTX never runs on an older GPU
        ((3, 7), ["sm_50", "sm_60"], False),  # an old GPU the build dropped
        ((9, 0), ["sm_90a"], False),  # arch-specific kernels are not counted
        ((8, 0), [], False),
    ],
)
def test_cuda_architecture_supported(capability, architectures, supported) -> None:
    assert cuda_architecture_supported(capability, architectures) is supported


def test_cpu_and_auto_resolve_on_any_machine() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has MPS")
def test_mps_without_mps_is_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="Apple's MPS is not available"):
        resolve_device("mps")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_refused() -> None:
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda")


@pytest.mark.parametrize("name", ["tpu", "vulkan", "nonsense"])
def test_unknown_devices_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="device"):
        resolve_device(name)
