"""Multi-GPU training under ``torchrun``: PyTorch DDP inside the one engine of :mod:`reprolib.engine`.

Launch any entry point of this repo with torchrun and :func:`reprolib.engine.fit` trains data-parallel:

    torchrun --standalone --nproc_per_node 4 -m reprolib sweep --method clef --size full

torchrun starts one process per GPU and sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``. Every
process runs the same script. :func:`reprolib.engine.fit` wraps the model in DistributedDataParallel,
gives each process its own shard of the training set (``batch_size`` stays the global batch), and lets
every process validate the same synchronised weights, so all ranks choose the same best epoch. Only
rank 0 writes checkpoints, results and figures and shows progress bars. Generated data is written by
rank 0 first (:func:`main_process_first`). Without torchrun (WORLD_SIZE unset or 1) nothing here does
anything, and single-process runs are unchanged. The backend is NCCL on GPUs and gloo on the CPU,
which is how the tests run two processes on a laptop.
"""

from __future__ import annotations

import atexit
import os
from contextlib import contextmanager

import torch
import torch.distributed as dist


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def active() -> bool:
    """True inside a torchrun launch with more than one process."""
    return world_size() > 1


def is_main() -> bool:
    """Rank 0, or the only process: the one that writes files and prints progress."""
    return rank() == 0


def init() -> None:
    """Join the process group once (NCCL on CUDA, gloo otherwise); a no-op outside torchrun."""
    if not active() or dist.is_initialized():
        return
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this PyTorch build has no torch.distributed")
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank())
    dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    atexit.register(_shutdown)


def _shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def device() -> torch.device:
    """This process's device: its own GPU under torchrun (LOCAL_RANK), else the CPU."""
    return torch.device("cuda", local_rank()) if torch.cuda.is_available() else torch.device("cpu")


def barrier() -> None:
    if active():
        init()
        dist.barrier()


@contextmanager
def main_process_first():
    """Rank 0 runs the block first (e.g. writes a dataset cache), then the others run it (and reuse it)."""
    if not active():
        yield
        return
    init()
    if not is_main():
        dist.barrier()
    try:
        yield
    finally:
        if is_main():
            dist.barrier()


def average_buffers(module: torch.nn.Module) -> None:
    """Average floating-point buffers (BatchNorm running statistics) over the processes, so that every
    rank validates the same model; DDP keeps parameters in step but each rank updates its own buffers."""
    if not active():
        return
    for buffer in module.buffers():
        if buffer.is_floating_point():
            dist.all_reduce(buffer, op=dist.ReduceOp.SUM)
            buffer.div_(world_size())
