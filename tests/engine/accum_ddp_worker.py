"""Run under torchrun (2 ranks): gradient accumulation on a DDP model all-reduces once per optimizer step
(``no_sync`` before each step's last micro-batch), and its steps equal one process's on the global batches.
Each rank writes ``<out>/accum<rank>.json``: the all-reduces counted by a DDP comm hook, and the largest
difference from the single-process reference."""

import argparse
import copy
import json
import os

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

from densenet.engine.distributed import init_distributed, shutdown
from densenet.engine.performance import PerfOptions, resolve
from densenet.engine.step import train_step

parser = argparse.ArgumentParser()
parser.add_argument("--out", required=True)
args = parser.parse_args()
STEPS, MICRO, SIZE = 2, 3, 4  # optimizer steps; micro-batches per step; examples per micro-batch and rank

ctx = init_distributed("cpu")
perf = resolve(PerfOptions(precision="fp32", compile=False, channels_last=False), "cpu")
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
reference = copy.deepcopy(model)
net = nn.parallel.DistributedDataParallel(model)
calls = []


def counting_allreduce(state, bucket):
    calls.append(1)
    return allreduce_hook(state, bucket)


net.register_comm_hook(None, counting_allreduce)
g = torch.Generator().manual_seed(1)
x = torch.rand(STEPS, MICRO, ctx.world_size, SIZE, 6, generator=g)  # step, micro-batch, rank, example
y = torch.randint(0, 3, (STEPS, MICRO, ctx.world_size, SIZE), generator=g)
optimizer = torch.optim.SGD(net.parameters(), lr=1.0)
for s in range(STEPS):
    for m in range(MICRO):
        train_step(net, optimizer, x[s, m, ctx.rank], y[s, m, ctx.rank], perf, accumulate=MICRO, step=m == MICRO - 1)

ref_opt = torch.optim.SGD(reference.parameters(), lr=1.0)
for s in range(STEPS):  # one process, each step on all micro-batches of all ranks at once
    F.cross_entropy(reference(x[s].reshape(-1, 6)), y[s].reshape(-1)).backward()
    ref_opt.step()
    ref_opt.zero_grad()
diff = max((a - b).abs().max().item() for a, b in zip(model.parameters(), reference.parameters()))
with open(os.path.join(args.out, f"accum{ctx.rank}.json"), "w") as fh:
    json.dump({"allreduces": len(calls), "max_diff": diff, "world_size": ctx.world_size}, fh)
shutdown(ctx)
