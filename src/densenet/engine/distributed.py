"""torch.distributed set-up for runs launched by ``torchrun`` (DDP), and no-ops otherwise."""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from densenet.engine.config import DEVICE_PATTERN, DEVICES
from densenet.errors import ConfigError


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a (possibly single-process) run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """Only the main process writes logs, checkpoints and weights."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """The one reading of ``--device`` for every command: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.

    ``auto`` picks GPU ``local_rank`` when there is one (the textbook's ``try_gpu``), else the CPU;
    plain ``cuda`` means GPU ``local_rank`` (each torchrun rank its own).

    Raises:
        ConfigError: a CUDA device that this machine does not have, or a name that is no device.
    """
    if name == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if DEVICE_PATTERN.fullmatch(name) is None:
        raise ConfigError(f"--device must be {DEVICES}, got {name!r}")
    if not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: no CUDA device is available here; use --device cpu or auto")
    index = int(name.partition(":")[2] or local_rank)
    count = torch.cuda.device_count()
    if index >= count:
        raise ConfigError(f"--device {name}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
    return torch.device(f"cuda:{index}")


def init_distributed(device_preference: str) -> DistContext:
    """Join the process group when launched by torchrun (``WORLD_SIZE`` > 1), else run alone.

    gloo is used on CPU and nccl on CUDA. Each rank uses GPU ``LOCAL_RANK``.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_preference, local_rank)
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=30))
    return DistContext(rank, world_size, local_rank, device)


def all_reduce_sum(values: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum a tensor over all ranks (identity when running alone)."""
    if ctx.enabled:
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def gather_rows(rows: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Every rank's rows, concatenated in rank order (``rows`` itself when running alone).

    Ranks may hold different numbers of rows (uneven shards of a test set): the counts are gathered
    first, each rank pads to the longest, and the padding is cut off again. Every rank gets the result.

    Args:
        rows: ``(n_rank, ...)``; the trailing shape and dtype must agree across ranks.
        ctx: Where this process stands.

    Returns:
        ``(sum of n_rank, ...)`` on ``rows``' device.
    """
    if not ctx.enabled:
        return rows
    count = torch.tensor([len(rows)], dtype=torch.int64, device=rows.device)
    counts = [torch.empty_like(count) for _ in range(ctx.world_size)]
    dist.all_gather(counts, count)
    sizes = [int(c.item()) for c in counts]
    padded = rows.new_zeros((max(sizes), *rows.shape[1:]))
    padded[: len(rows)] = rows
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded)
    return torch.cat([part[:n] for part, n in zip(parts, sizes)])


def union_over_ranks(items: set[str], ctx: DistContext) -> set[str]:
    """The union of a set of strings over all ranks (the set itself when running alone)."""
    if not ctx.enabled:
        return set(items)
    gathered: list[set[str] | None] = [None] * ctx.world_size
    dist.all_gather_object(gathered, set(items))
    return set().union(*(g or set() for g in gathered))


def broadcast_flag(flag: bool, ctx: DistContext) -> bool:
    """True on every rank if ``flag`` is true on any rank (used to stop all ranks together)."""
    if not ctx.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def shutdown(ctx: DistContext) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()
