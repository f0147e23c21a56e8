"""Joining the process group torchrun sets up (RANK / WORLD_SIZE / LOCAL_RANK + MASTER_ADDR and
MASTER_PORT): nccl on GPUs, gloo on CPU. One process: a plain single-rank context."""

from __future__ import annotations

import os
from typing import Any

from cea.train.loop import DistContext


def dist_from_env() -> DistContext:
    """The rank this process has under torchrun (joining its process group), or rank 0 of 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    import torch
    import torch.distributed

    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local)
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend=backend)
    return DistContext(rank=rank, world_size=world, local_rank=local)


def same_on_all_ranks(value: Any, dist: DistContext) -> Any:
    """Rank 0's value (e.g. the run folder, named by a timestamp) on every rank."""
    if dist.world_size <= 1:
        return value
    import torch.distributed

    box = [value]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def leave(dist: DistContext) -> None:
    """Leave the process group at the end of a distributed run."""
    if dist.world_size > 1:
        import torch.distributed

        torch.distributed.destroy_process_group()
