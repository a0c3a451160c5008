"""Activation checkpointing that updates BatchNorm's running statistics once per step.

``torch.utils.checkpoint`` recomputes a region in backward, and a BatchNorm inside it would update
its running statistics a second time. :func:`checkpoint_once` runs the recomputation with the same
batch statistics (so outputs and gradients are unchanged) and then puts the running statistics back
as the original forward left them. DenseNet's memory-efficient dense layers and ResNet's
``set_grad_checkpointing`` both use it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint


def checkpoint_once(fn: Callable[..., torch.Tensor], owner: nn.Module, *inputs: torch.Tensor) -> torch.Tensor:
    """``fn(*inputs)`` with only ``inputs`` kept for backward; ``owner``'s BatchNorms are updated once.

    Under ``torch.compile`` plain checkpointing is used: the partitioner recomputes the region in backward
    and never replays the running-statistics update, so it is exact there, and the Python-side bookkeeping
    below would break the graph.

    Args:
        fn: The region to recompute in backward. It must draw no random numbers (no RNG state is replayed).
        owner: The module whose BatchNorm layers ``fn`` runs.
        inputs: The tensors autograd keeps.

    Returns:
        ``fn(*inputs)``.
    """
    if torch.compiler.is_compiling():
        return checkpoint(fn, *inputs, use_reentrant=False)
    calls = 0

    def body(*args: torch.Tensor) -> torch.Tensor:
        nonlocal calls
        calls += 1
        if calls == 1:
            return fn(*args)
        norms = [m for m in owner.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
        saved = [[b.clone() for b in (m.running_mean, m.running_var, m.num_batches_tracked)] for m in norms]
        try:
            return fn(*args)
        finally:
            for m, (mean, var, count) in zip(norms, saved):
                m.running_mean.copy_(mean)
                m.running_var.copy_(var)
                m.num_batches_tracked.copy_(count)

    # No early stop: it ends the recomputation by raising through the body, which a compiled region's
    # fallback to eager would take for a compiler failure.
    return checkpoint(body, *inputs, use_reentrant=False, preserve_rng_state=False, early_stop=False)


def wants_checkpoint(module: nn.Module, inputs: list[torch.Tensor]) -> bool:
    """Whether recomputing pays: training with gradients flowing (in eval or under no_grad nothing is kept)."""
    if not (module.training and torch.is_grad_enabled()):
        return False
    return any(t.requires_grad for t in inputs) or any(p.requires_grad for p in module.parameters())
