"""Checkpoint averaging: the mean of a run's last K epoch checkpoints, as a run directory of its own.

``densenet train --keep-checkpoints K`` keeps ``checkpoints/epoch-NNNN.pt`` of the last K epochs;
:func:`average_run` (``densenet average RUN --last K --out NEW_RUN``) averages their trained weights
(the ``model`` state of each, not the EMA), re-estimates the BatchNorm statistics, evaluates the result on
the split the run evaluated each epoch (its test split, or the images a ``--val-split`` run held out) and
writes ``model.safetensors``, ``model.json``, ``config.json`` and ``summary.json`` into ``NEW_RUN``, which
``densenet evaluate``, ``predict`` and ``export`` then take like any run directory.

The running statistics of averaged weights are not the average of the running statistics, so they are
measured again: :func:`torch.optim.swa_utils.update_bn` resets them and runs one pass over the run's
training batches (its training loader, augmentation included, as SWA does) in train mode without
gradients, with a cumulative mean instead of the momentum update.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.optim.swa_utils import update_bn

from densenet.engine import checkpoint as ckpt
from densenet.engine.data import build_data
from densenet.engine.distributed import DistContext, resolve_device
from densenet.engine.evaluate import evaluate
from densenet.engine.setup import build_model, model_card
from densenet.engine.task import make_task
from densenet.errors import UsageError
from densenet.rundir import CONFIG_FILE, SUMMARY_FILE, read_config, save_model, write_json


def average_state_dicts(states: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The element-wise mean of floating-point tensors (summed in float64); other tensors (BatchNorm's
    ``num_batches_tracked``) are the last state's.

    Raises:
        ValueError: for no states, or states with different keys.
    """
    if not states or any(s.keys() != states[0].keys() for s in states):
        raise ValueError("average_state_dicts needs one or more state dicts with the same keys")
    out = {}
    for key, last in states[-1].items():
        if last.is_floating_point():
            out[key] = (sum(s[key].double() for s in states) / len(states)).to(last.dtype)
        else:
            out[key] = last.clone()
    return out


def last_epoch_checkpoints(run_dir: str | Path, last: int) -> list[tuple[int, Path]]:
    """The last ``last`` kept epoch checkpoints of ``run_dir``, ``(epoch, path)`` in epoch order.

    Raises:
        UsageError: if the run kept fewer (``--keep-checkpoints`` was smaller, or the run is shorter).
    """
    kept = ckpt.epoch_checkpoints(run_dir)
    if last < 1 or len(kept) < last:
        have = f"{len(kept)} epoch checkpoint{'s' if len(kept) != 1 else ''}" + (
            f" (epochs {', '.join(str(e) for e, _ in kept)})" if kept else "")
        raise UsageError(f"{run_dir} kept {have}, and --last {last} needs {last}: train with --keep-checkpoints "
                         f"{max(last, 1)} (or more) to keep them, or average fewer")
    return kept[-last:]


def average_run(run_dir: str | Path, last: int, out: str | Path, *, data_dir: str | None = None,
                device: str = "auto", log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Average the weights of a run's last ``last`` epoch checkpoints into a new run directory ``out``.

    Args:
        run_dir: A run trained with ``--keep-checkpoints K`` (K >= ``last``).
        last: How many of the last epochs to average.
        out: The new run directory; it must not exist yet, or be empty.
        data_dir: Folder of the dataset's files (default: the run's own, then the usual lookup).
        device: Where to re-estimate and evaluate (``auto``, ``cpu``, ``cuda``, ``cuda:N``).
        log: Where human-readable lines go.

    Returns:
        The summary written to ``out/summary.json``: the test columns of ``metrics.jsonl`` (``test_acc``,
        ``test_loss``, ``test_top5_acc``; or ``test_mean_auroc``, ``test_map``, ``test_loss``), the same for the
        last averaged epoch's weights as training measured them (``last_epoch``), ``eval_split`` (``"test"``, or
        ``"validation"`` when the ``test_`` columns are of a ``--val-split`` run's held-out images), and
        ``averaged``: the source run, the epochs and their checkpoint files.

    Raises:
        UsageError: fewer kept checkpoints than ``last``, or an ``out`` that already holds files.
        RunDirError: ``run_dir`` is not a run directory, or a checkpoint is unreadable.
    """
    log = log or (lambda _m: None)
    run_dir, out, began = Path(run_dir), Path(out), time.perf_counter()
    chosen = last_epoch_checkpoints(run_dir, last)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"{out} already exists and is not empty; choose another --out for the averaged run")
    config = read_config(run_dir)
    if data_dir:
        config = config.replace({"data.data_dir": data_dir})
    states = [ckpt.load_checkpoint(run_dir, path.name) for _, path in chosen]
    log(f"averaging the weights of epochs {', '.join(str(e) for e, _ in chosen)} of {run_dir}")
    ctx = DistContext(device=resolve_device(device))
    data = build_data(config, ctx, log)
    task = make_task(config, data.train_targets, data.num_classes, ctx.device, log)
    torch.manual_seed(config.run.seed)
    model = build_model(config, data).to(ctx.device)
    model.load_state_dict(average_state_dicts([s["model"] for s in states]))
    data.train_loader.set_epoch(chosen[-1][0] + 1)
    update_bn(data.train_loader, model)  # train mode, no gradients, every training batch once
    log(f"BatchNorm statistics re-estimated on {data.num_train} training images")
    test = task.test_columns(evaluate(model, data.test_loader, data.num_classes, multilabel=task.multilabel))
    log(f"evaluated on {data.num_test} {data.eval_split} images")
    trained = states[-1]["metrics"][-1] if states[-1].get("metrics") else {}
    summary = {**test, "last_epoch": {k: trained.get(k) for k in test},
               "averaged": {"run_dir": str(run_dir), "epochs": [e for e, _ in chosen],
                            "checkpoints": [p.name for _, p in chosen], "weights": "raw",
                            "batchnorm": "re-estimated on the training split"},
               "eval_split": data.eval_split,  # a --val-split run is scored on its held-out images, as in training
               "model": config.model.name, "dataset": config.data.dataset, "multilabel": task.multilabel,
               "params": sum(p.numel() for p in model.parameters()), "device": str(ctx.device),
               "run_dir": str(out), "elapsed_s": time.perf_counter() - began}
    save_model(out, model, model_card(config, data))
    write_json(out / CONFIG_FILE, config.to_dict())
    write_json(out / SUMMARY_FILE, summary)
    return summary
