"""One model trained by several processes, through PyTorch's own engine: ``torchrun`` starts
the processes, ``torch.distributed`` connects them, ``DistributedDataParallel`` averages the
gradients, ``DistributedSampler`` shards the data and ``SyncBatchNorm`` shares the batch
statistics on GPUs.

``python -m fusionlab train`` and ``experiment run`` need nothing more than being started by
``torchrun --nproc_per_node=N``: ``train`` reads the process's place from the environment
torchrun sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``) and connects on first use.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    """This process's place among those that train one model.

    Attributes:
        rank: 0..size-1; rank 0 writes checkpoints, results and logs.
        size: the number of processes (1: no distribution).
        local_rank: the process's index on its machine (its GPU with CUDA).
    """

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def world() -> World:
    """The current process's ``World`` once connected (``connect``), else one process."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(),
                     int(os.environ.get("LOCAL_RANK", 0)))
    return World()


def launched_main() -> bool:
    """Whether this process is the first of a ``torchrun`` launch (``RANK`` 0) or was not
    launched by ``torchrun``: readable before ``connect``, where ``world()`` still says one
    process."""
    return int(os.environ.get("RANK", 0)) == 0


def connect(device_type: str) -> World:
    """Join the process group when torchrun started several processes (its ``WORLD_SIZE``
    above 1): NCCL for CUDA, Gloo for the CPU; a no-op for one process or when connected.

    Raises:
        RuntimeError: ``torch.distributed`` is not available in this build of PyTorch.
    """
    if int(os.environ.get("WORLD_SIZE", 1)) > 1 and not (dist.is_available()
                                                         and dist.is_initialized()):
        if not dist.is_available():
            raise RuntimeError("torchrun started several processes, but this PyTorch has no "
                               "torch.distributed")
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return world()


def sum_over_processes(t: torch.Tensor) -> torch.Tensor:
    """``t`` summed over the processes, in place and returned (``t`` itself for one process);
    with NCCL the sum travels through this process's GPU and comes back to ``t``'s device.

    Shape:
        any shape; every process passes the same shape and dtype.
    """
    if not world().distributed:
        return t
    if dist.get_backend() == "nccl" and t.device.type != "cuda":
        on_gpu = t.to(f"cuda:{world().local_rank}")
        dist.all_reduce(on_gpu)
        t.copy_(on_gpu)
    else:
        dist.all_reduce(t)
    return t


def mean_over_processes(value: float) -> float:
    """The mean of ``value`` over the processes (itself for one process)."""
    if not world().distributed:
        return value
    return float(sum_over_processes(torch.tensor([value], dtype=torch.float64))) / world().size


def barrier() -> None:
    """Wait until every process gets here (nothing for one process)."""
    if world().distributed:
        dist.barrier()
