"""One rank of tests/engine/test_gather.py's 2-process gloo group: uneven shards of one test set."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from densenet.engine.distributed import DistContext, gather_rows
from densenet.engine.evaluate import evaluate

N, CLASSES = 11, 3
SPLIT = 4  # rank 0 holds the first 4 pictures, rank 1 the other 7


def model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, CLASSES))


def dataset() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pictures, single labels and multi-labels (every class with positives and negatives)."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(N, 3, 4, 4, generator=g)
    labels = torch.arange(N) % CLASSES
    multi = (torch.arange(N * CLASSES).view(N, CLASSES) % 4 == 0).float()
    return x, labels, multi


def shards(rank: int) -> slice:
    return slice(0, SPLIT) if rank == 0 else slice(SPLIT, N)


def run(rank: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        ctx = DistContext(rank, 2)
        x, labels, multi = dataset()
        part = shards(rank)
        net = model()
        out = {
            "rows": gather_rows(torch.arange(10.0).view(5, 2)[:2] if rank == 0 else torch.arange(10.0).view(5, 2)[2:],
                                ctx),
            "empty": gather_rows(torch.zeros(0, 2) if rank == 0 else torch.ones(3, 2), ctx),
            "single": evaluate(net, [(x[part], labels[part])], CLASSES, ctx=ctx),
            "multi": evaluate(net, [(x[part], multi[part])], CLASSES, ctx=ctx, multilabel=True, tta="flip"),
        }
        torch.save(out, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()
