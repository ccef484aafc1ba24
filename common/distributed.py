"""torch.distributed under `torchrun`: the process group and the few collectives the
trainer and the run pipeline need. Outside torchrun every call is a no-op on one
process, so callers never branch on it.

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT for each
process; `start` reads them through torch's default env:// rendezvous. The backend is
NCCL on GPUs and gloo on CPUs.

    start()             join the group when launched by torchrun (idempotent)
    active() / rank() / world_size() / local_rank() / is_main()
    broadcast(value)    rank 0's value on every rank (any picklable object)
    gather(value)       every rank's value, as a list on rank 0 (None elsewhere)
    all_gather(value)   every rank's value, as a list on every rank
    all_sum(numbers)    element-wise sum over ranks of a list of floats
    broadcast_module(module)  rank 0's parameters and buffers into every rank's module
    barrier(), stop()
"""
from __future__ import annotations

import atexit
import os
import sys
from datetime import timedelta

import torch
import torch.distributed as dist

# Rank 0 may pack shards or read a large checkpoint while the others wait at a
# collective: far longer than torch's default 10-30 minute timeout.
TIMEOUT = timedelta(hours=6)


def launched() -> bool:
    """Started by torchrun (or any launcher setting WORLD_SIZE) with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def active() -> bool:
    return dist.is_available() and dist.is_initialized()


def start() -> None:
    """Join the process group torchrun described; nothing to do on one process."""
    if active() or not launched():
        return
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(local_rank())
    dist.init_process_group("nccl" if cuda else "gloo", timeout=TIMEOUT)
    # Leave the group before the interpreter tears down: a gloo group destroyed by its
    # finaliser while its threads run aborts the process ("terminate called without an
    # active exception"), a rank dying after it finished (seen under load).
    atexit.register(stop)
    if not is_main():
        # One voice: the other ranks' stdout is dropped, as detectron2 and DeiT silence
        # print on non-master processes (their errors still reach stderr).
        sys.stdout = open(os.devnull, "w")


def stop() -> None:
    if active():
        dist.destroy_process_group()


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if active():
        dist.barrier()


def _device() -> torch.device:
    # NCCL moves only CUDA tensors; gloo only CPU ones
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def broadcast(value):
    if not active():
        return value
    box = [value if is_main() else None]
    dist.broadcast_object_list(box, src=0, device=_device())
    return box[0]


def gather(value) -> list | None:
    if not active():
        return [value]
    boxes = [None] * world_size() if is_main() else None
    if dist.get_backend() == "nccl":  # NCCL has no gather of objects: all_gather instead
        everything = all_gather(value)
        return everything if is_main() else None
    dist.gather_object(value, boxes, dst=0)
    return boxes


def all_gather(value) -> list:
    if not active():
        return [value]
    boxes = [None] * world_size()
    dist.all_gather_object(boxes, value)
    return boxes


def all_sum(numbers) -> list[float]:
    if not active():
        return [float(n) for n in numbers]
    tensor = torch.tensor([float(n) for n in numbers], dtype=torch.float64, device=_device())
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.cpu().tolist()


def broadcast_module(module: torch.nn.Module) -> torch.nn.Module:
    """Every rank ends with rank 0's weights (e.g. the best epoch, which only rank 0
    read from disk)."""
    if active():
        for tensor in module.state_dict().values():
            if dist.get_backend() == "nccl" and tensor.device.type != "cuda":
                moved = tensor.to(_device())
                dist.broadcast(moved, src=0)
                tensor.copy_(moved.cpu())
            else:
                dist.broadcast(tensor, src=0)
    return module
