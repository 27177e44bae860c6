"""Multi-process training through ``torchrun``: process-group setup and teardown.

``torchrun --nproc_per_node N -m cones.cli train ...`` starts N copies of the trainer and sets
``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``. Each copy trains on its own samples, DDP averages the
gradients, and only rank 0 validates and writes checkpoints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistributedContext", "init_distributed", "shutdown_distributed"]


@dataclass(frozen=True)
class DistributedContext:
    """Where this process sits in the run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 owns validation, logging and checkpoints."""
        return self.rank == 0


def init_distributed(device: torch.device) -> DistributedContext:
    """Join the process group that ``torchrun`` describes in the environment, if any.

    NCCL on CUDA (each rank takes the GPU of its local rank), gloo on the CPU.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistributedContext()
    context = DistributedContext(
        rank=int(os.environ["RANK"]), world_size=world_size, local_rank=int(os.environ.get("LOCAL_RANK", "0"))
    )
    if device.type == "cuda":
        torch.cuda.set_device(context.local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return context


def shutdown_distributed(context: DistributedContext) -> None:
    """Leave the process group (a no-op for single-process runs)."""
    if context.enabled and dist.is_initialized():
        dist.destroy_process_group()
