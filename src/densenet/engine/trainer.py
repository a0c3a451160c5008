"""The training loop: the textbook's ``train_ch6`` semantics, made fast, resumable and distributable.

``train(config, run_dir)`` is the Python API behind ``densenet train``. Per epoch it trains on
shuffled batches, measures test accuracy in eval mode, then writes an atomic checkpoint,
a ``metrics.jsonl`` row and the curves PNG. Ctrl-C (or SIGTERM) mid-epoch writes a checkpoint
of the batches done so far, and ``--resume`` goes on from the next batch. Loss and train accuracy
are running averages over the epoch's minibatches in train mode, as the textbook reports them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from densenet.engine import checkpoint as ckpt
from densenet.engine import ema as ema_weights
from densenet.engine.allocator import malloc_mode
from densenet.engine.config import TrainConfig
from densenet.engine.data import TrainData, build_data
from densenet.engine.distributed import (
    DistContext,
    all_reduce_sum,
    barrier,
    broadcast_flag,
    init_distributed,
    shutdown,
)
from densenet.engine.evaluate import evaluate
from densenet.engine.finetune import FineTuning, start_from
from densenet.engine.interrupts import GracefulInterrupts
from densenet.engine.logging import MetricsLog, TensorBoardLog, plot_curves
from densenet.engine.mix import generators, make_mixer
from densenet.engine.performance import autocast_context, make_grad_scaler, resolve
from densenet.engine.run_state import Callback, EpochStats, PartialEpoch, TrainState
from densenet.engine.setup import build_model, build_optimizer, build_scheduler, model_card, progress_bar, wrap_model
from densenet.engine.step import Accumulation, train_step  # the step `densenet bench train` times, too
from densenet.engine.task import make_task
from densenet.errors import DenseNetError, RunDirError
from densenet.models import model_info, read_weights
from densenet.rundir import CONFIG_FILE, CURVES_FILE, SUMMARY_FILE, save_model, write_json

Log = Callable[[str], None]


class DivergenceError(DenseNetError):
    """The loss became NaN or infinite."""


def train(config: TrainConfig, run_dir: str | Path, *, resume: bool = False, progress: bool = True,
          log: Log | None = None, on_batch_end: Callback | None = None,
          on_epoch_end: Callback | None = None) -> dict[str, Any]:
    """Train according to ``config``, writing the run directory; return the summary.

    Args:
        config: The resolved configuration. With ``resume``, ``run.epochs`` may extend the run.
        run_dir: Output folder (see docs/interface.md, "A run directory").
        resume: Continue from ``run_dir/checkpoints/last.pt``.
        progress: Show a progress bar per epoch (stderr).
        log: Where human-readable lines go (default: nowhere).
        on_batch_end: See :data:`Callback`; e.g. ``lambda s: s.batch == 10`` stops after ten batches.
        on_epoch_end: See :data:`Callback`; e.g. ``lambda s: s.metrics["test_acc"] > 0.9`` stops early.
    """
    ctx = init_distributed(config.run.device)
    try:
        return Trainer(config, run_dir, ctx=ctx, progress=progress, log=log, on_batch_end=on_batch_end,
                       on_epoch_end=on_epoch_end).fit(resume)
    finally:
        shutdown(ctx)


class Trainer:
    """One training run. After :meth:`fit`, ``model`` holds the trained (unwrapped) network.

    Args:
        config: The configuration.
        run_dir: The run directory to write.
        ctx: The distributed context (default: from the environment, see :func:`init_distributed`).
        progress: Show progress bars.
        log: Where human-readable lines go.
        on_batch_end: Called after every training batch; True stops the run (see :data:`Callback`).
        on_epoch_end: Called after every epoch's checkpoint; True stops the run (see :data:`Callback`).
    """

    def __init__(self, config: TrainConfig, run_dir: str | Path, *, ctx: DistContext | None = None,
                 progress: bool = True, log: Log | None = None, on_batch_end: Callback | None = None,
                 on_epoch_end: Callback | None = None) -> None:
        ctx = ctx or init_distributed(config.run.device)
        log = log or (lambda _m: None)
        self.config, self.run_dir, self.ctx = config, Path(run_dir), ctx
        self.progress = progress and ctx.is_main
        self.interrupted = False
        self.log = log if ctx.is_main else (lambda _m: None)
        self.on_batch_end = on_batch_end
        self.on_epoch_end = on_epoch_end or (lambda _s: False)

    # -- set-up -----------------------------------------------------------------------------------
    def _setup(self, resume: bool) -> dict[str, Any] | None:
        cfg, ctx = self.config, self.ctx
        state = ckpt.load_checkpoint(self.run_dir) if resume else None
        model_info(cfg.model.name)  # an unknown name fails here, not after loading (or downloading) the data
        weights = read_weights(cfg.model.init_from) if cfg.model.init_from and state is None else None  # likewise
        torch.manual_seed(cfg.run.seed)
        self.data: TrainData = build_data(cfg, ctx, self.log, self.progress)
        self.task = make_task(cfg, self.data.train_targets, self.data.num_classes, ctx.device, self.log)
        self.mixer = make_mixer(cfg, self.task, self.data.num_classes, self.log)  # Mixup/CutMix, or None
        self._steps_run = 0
        model = build_model(cfg, self.data)
        if weights is not None:  # a resumed run has its weights in the checkpoint
            self.config = cfg = start_from(cfg, model, weights, self.log)
        self.model = model.to(ctx.device)
        self.perf = resolve(cfg.run, ctx.device)
        self.optimizer = build_optimizer(cfg, self.model)
        self.accumulation = Accumulation(cfg.run.accum_steps, len(self.data.train_loader))
        self.scheduler = build_scheduler(cfg, self.optimizer, steps_per_epoch=self.accumulation.optimizer_steps)
        self.step_schedule = cfg.optim.schedule_per == "step"
        self.scaler = make_grad_scaler(self.perf)
        if state is not None:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            if self.scaler is not None and state.get("scaler"):
                self.scaler.load_state_dict(state["scaler"])
            ckpt.set_rng_state(state["rng"], generators(self.mixer))
        self.ema = ema_weights.WeightEMA(self.model, cfg.optim.ema) if cfg.optim.ema else None
        if self.ema is not None and state is not None and state.get("ema"):
            self.ema.load_state_dict(state["ema"])
        self.tuning = FineTuning(self.model, cfg)
        if self.tuning.active:
            self.log(self.tuning.describe())
        self.tuning.enter((state["epoch"] if state else 0) + 1)  # before wrapping: DDP hooks what trains
        self.net = wrap_model(self.model, self.perf, ctx, cfg.run.sync_batchnorm)
        return state

    # -- the loop ----------------------------------------------------------------------------------
    def fit(self, resume: bool = False) -> dict[str, Any]:
        """Train (or continue from the run directory's last checkpoint) and return the summary.

        Args:
            resume: Continue from ``checkpoints/last.pt`` (mid-epoch if Ctrl-C or a callback stopped it).
        """
        cfg = self.config
        state = self._setup(resume)
        rows: list[dict[str, Any]] = list(state["metrics"]) if state else []
        start = state["epoch"] if state else 0
        best = state.get("best", state.get("best_test_acc", -1.0)) if state else -1.0
        self.best_weights = (state.get("best_weights") if state else None) or ema_weights.RAW
        partial = PartialEpoch(**state["partial"]) if state and state.get("partial") else None
        metrics, tb = self._open_run_dir(rows, start)
        self.log(self._banner(start, partial))
        self._clock = (time.perf_counter(), rows[-1]["elapsed_s"] if rows else 0.0)
        with GracefulInterrupts() as interrupts:
            for epoch in range(start + 1, cfg.run.epochs + 1):
                stats = self._train_epoch(epoch, interrupts, partial)
                partial = None
                if isinstance(stats, PartialEpoch):  # stopped mid-epoch: save what it did
                    self._save_partial(epoch, rows, best, stats)
                    break
                rows.append(self._epoch_row(epoch, stats))
                score = ema_weights.score(rows[-1], self.task.headline)
                is_best = score is not None and score > best
                best = score if is_best else best
                if is_best:
                    self.best_weights = ema_weights.winner(rows[-1], self.task.headline)
                if self.ctx.is_main:
                    self._save_epoch(epoch, rows, best, is_best, metrics, tb)
                if self._stop_after_epoch(epoch, rows[-1]):
                    break
        barrier(self.ctx)
        if tb:
            tb.close()
        return self._finish(rows, best)

    def _open_run_dir(self, rows: list[dict[str, Any]], start: int) -> tuple[MetricsLog, TensorBoardLog | None]:
        """Write config.json and trim metrics.jsonl to the checkpoint's epochs (main process only)."""
        metrics = MetricsLog(self.run_dir)
        tb = TensorBoardLog(self.run_dir) if self.ctx.is_main else None
        if self.ctx.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            ckpt.remove_stale_temp_files(self.run_dir)  # left by a process killed mid-write
            write_json(self.run_dir / CONFIG_FILE, self.config.to_dict())
            metrics.reset(rows)  # exactly one row per epoch the checkpoint covers
            ckpt.remove_epoch_checkpoints_after(self.run_dir, start)  # left by a later state, if any
        if start >= self.config.run.epochs:
            raise RunDirError(f"{self.run_dir} already finished {start} epochs; pass --epochs N with N > {start} "
                              "to extend it")
        return metrics, tb

    def _epoch_row(self, epoch: int, stats: EpochStats) -> dict[str, Any]:
        """Step the per-epoch schedule, measure the test set, and make the epoch's metrics row."""
        if not self.step_schedule:
            self.scheduler.step()
        test = evaluate(self.net, self.data.test_loader, self.data.num_classes,
                        autocast=autocast_context(self.perf), ctx=self.ctx, multilabel=self.task.multilabel)
        t0, elapsed0 = self._clock
        row = {"epoch": epoch, "loss": stats.loss, "train_acc": stats.train_acc if self.task.train_accuracy else None,
               **self.task.test_columns(test), "examples_per_sec": stats.examples / stats.train_seconds,
               "elapsed_s": elapsed0 + time.perf_counter() - t0, "train_seconds": stats.train_seconds,
               "examples": stats.examples, "lr": self.optimizer.param_groups[0]["lr"], **self._ema_columns()}
        if self.ema is not None:
            row["weights"] = ema_weights.winner(row, self.task.headline)
        self.log(f"epoch {epoch}/{self.config.run.epochs}: {self.task.describe(row)}, "
                 f"{row['examples_per_sec']:.1f} examples/sec{self._ema_figure(row)}")
        return row

    def _ema_columns(self) -> dict[str, Any]:
        """The averaged weights' test columns of the epoch's row (none without ``--ema``)."""
        if self.ema is None:
            return {}
        test = evaluate(self.ema.module, self.data.test_loader, self.data.num_classes,
                        autocast=autocast_context(self.perf), ctx=self.ctx, multilabel=self.task.multilabel)
        return ema_weights.ema_columns(self.task.test_columns(test))

    def _ema_figure(self, row: dict[str, Any]) -> str:
        if self.ema is None:
            return ""
        value = row[ema_weights.PREFIX + self.task.headline]
        return f"; EMA weights: {self.task.headline} {'undefined' if value is None else f'{value:.3f}'}"

    def _stop_after_epoch(self, epoch: int, row: dict[str, Any]) -> bool:
        """Whether ``on_epoch_end`` asks to stop now, with epochs still to go (Ctrl-C stops after the next batch)."""
        batches = len(self.data.train_loader)
        asked = bool(self.on_epoch_end(TrainState(epoch, batches, batches, row["loss"], row)))
        if not broadcast_flag(asked, self.ctx) or epoch >= self.config.run.epochs:
            return False
        self.interrupted = True
        self.log(f"stopped after epoch {epoch}; saved to {self.run_dir}/checkpoints/{ckpt.LAST}. "
                 f"Continue with: densenet train --resume {self.run_dir}")
        return True

    def _save_partial(self, epoch: int, rows: list[dict[str, Any]], best: float, stats: PartialEpoch) -> None:
        self.interrupted = True
        if self.ctx.is_main:
            ckpt.save_checkpoint(self.run_dir, self._state(epoch - 1, rows, best, stats), is_best=False)
        self.log(f"interrupted in epoch {epoch} after {stats.batches} of {len(self.data.train_loader)} batches; "
                 f"saved to {self.run_dir}/checkpoints/{ckpt.LAST}. Continue with: densenet train --resume "
                 f"{self.run_dir}")

    def _train_epoch(self, epoch: int, interrupts: GracefulInterrupts,
                     partial: PartialEpoch | None = None) -> EpochStats | PartialEpoch:
        """Train one epoch (from ``partial``'s next batch when resuming one); a :class:`PartialEpoch` if
        Ctrl-C or ``on_batch_end`` stopped it."""
        loader = self.data.train_loader
        loader.set_epoch(epoch)
        if partial is not None:
            loader.resume_at(partial.batches)
        if self.tuning.enter(epoch):  # --head-epochs over: the backbone trains from now on
            until = self.config.model.freeze_until
            self.log(f"epoch {epoch}: the classifier-only epochs are over; " +
                     (f"everything after {until} trains now" if until else "the whole network trains now"))
            self.net = wrap_model(self.model, self.perf, self.ctx, self.config.run.sync_batchnorm)
        self.tuning.train_mode(self.net)
        device = self.ctx.device
        carried = partial is not None and self.ctx.is_main  # rank 0 carries the sums of the batches done
        loss_sum = torch.tensor(partial.loss_sum if carried else 0.0, dtype=torch.float64, device=device)
        correct = torch.tensor(partial.correct if carried else 0.0, dtype=torch.float64, device=device)
        count = partial.count if carried else 0
        seconds = partial.seconds if partial is not None else 0.0
        asked = False  # a stop asked for mid-step waits for the step's last micro-batch (--accum-steps)
        with progress_bar(len(loader), f"epoch {epoch}/{self.config.run.epochs}", self.progress,
                          initial=partial.batches if partial is not None else 0) as bar:
            for x, y in loader:
                t = time.perf_counter()
                loss, logits = self._step(x, y, loader.batches_done - 1)
                loss_sum += loss.detach().double() * y.shape[0]
                correct += self.task.correct(logits.detach(), y)
                count += y.shape[0]
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                seconds += time.perf_counter() - t
                if self.progress:
                    bar.update(1)
                    acc = {"acc": f"{(correct / count).item():.3f}"} if self.task.train_accuracy else {}
                    bar.set_postfix(loss=f"{loss.item():.3f}", **acc, img_s=f"{count / seconds:.0f}", refresh=False)
                asked = interrupts.requested or self._batch_callback(epoch, loader.batches_done, len(loader),
                                                                     loss) or asked
                if (self.accumulation.ends_step(loader.batches_done - 1) and broadcast_flag(asked, self.ctx)
                        and loader.batches_done < len(loader)):
                    sums = self._sum_over_ranks(loss_sum, correct, count)
                    return PartialEpoch(epoch, loader.batches_done, sums[0].item(), sums[1].item(),
                                        int(sums[2].item()), seconds)
        sums = self._sum_over_ranks(loss_sum, correct, count)
        total = sums[2].item()
        mean_loss = sums[0].item() / total
        if not math.isfinite(mean_loss):
            raise DivergenceError(f"the training loss became {mean_loss} in epoch {epoch}; the last good checkpoint "
                                  f"(epoch {epoch - 1}) is kept. Lower --lr (now {self.config.optim.lr}) or use "
                                  "--precision fp32, then start again")
        return EpochStats(mean_loss, sums[1].item() / total, int(total), seconds * self.ctx.world_size)

    def _batch_callback(self, epoch: int, batch: int, batches: int, loss: torch.Tensor) -> bool:
        if self.on_batch_end is None:
            return False
        return bool(self.on_batch_end(TrainState(epoch, batch, batches, loss.item())))

    def _sum_over_ranks(self, loss_sum: torch.Tensor, correct: torch.Tensor, count: int) -> torch.Tensor:
        count_t = torch.tensor(float(count), dtype=torch.float64, device=self.ctx.device)
        return all_reduce_sum(torch.stack([loss_sum, correct, count_t]), self.ctx)

    def _step(self, x: torch.Tensor, y: torch.Tensor, batch: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Train on micro-batch ``batch`` (0-based) of the epoch; the optimizer steps on its step's last one."""

        def stop_if_diverged(loss: torch.Tensor) -> None:
            if not torch.isfinite(loss):
                raise DivergenceError("the training loss became NaN or infinite; the last good checkpoint is kept. "
                                      f"Lower --lr (now {self.config.optim.lr}) or use --precision fp32")

        if self.mixer is not None:  # after the loader's augmentation: mixed pictures, soft targets
            x, y = self.mixer(x, y)
        ends = self.accumulation.ends_step(batch)
        loss, logits = train_step(self.net, self.optimizer, x, y, self.perf, self.scaler, loss_fn=self.task.loss,
                                  before_backward=stop_if_diverged, accumulate=self.accumulation.group_size(batch),
                                  step=ends)
        if ends and self.ema is not None:
            self.ema.update(self.model)
        if ends and self.step_schedule:
            self.scheduler.step()
        self._steps_run += 1
        return loss, logits

    # -- output ------------------------------------------------------------------------------------
    def _save_epoch(self, epoch: int, rows: list[dict[str, Any]], best: float, is_best: bool,
                    metrics: MetricsLog, tb: TensorBoardLog | None) -> None:
        ckpt.save_checkpoint(self.run_dir, self._state(epoch, rows, best), is_best,  # first: resume trusts it
                             keep=self.config.run.keep_checkpoints)
        metrics.append(rows[-1])
        plot_curves(rows, self.run_dir / CURVES_FILE)
        if tb is not None:
            tb.log(rows[-1])

    def _state(self, epoch: int, rows: list[dict[str, Any]], best: float,
               partial: PartialEpoch | None = None) -> dict[str, Any]:
        """The resumable state after ``epoch`` complete epochs (and ``partial``'s batches of the next)."""
        return {
            "epoch": epoch, "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "rng": ckpt.rng_state(generators(self.mixer)),
            "config": self.config.to_dict(), "best": best, "metrics": rows,
            "partial": asdict(partial) if partial is not None else None,
            "ema": self.ema.state_dict() if self.ema is not None else None, "best_weights": self.best_weights,
        }

    def _finish(self, rows: list[dict[str, Any]], best: float) -> dict[str, Any]:
        last = rows[-1] if rows else {}
        examples, train_seconds = sum(r["examples"] for r in rows), sum(r["train_seconds"] for r in rows)
        summary = {
            **{k: last.get(k) for k in ("epoch", "loss", "train_acc", self.task.headline, "test_loss", "elapsed_s")},
            **({"test_map": last.get("test_map")} if self.task.multilabel else {}),
            **{k: v for k, v in last.items() if k == "test_top5_acc" or k.startswith(ema_weights.PREFIX)},
            "weights": last.get("weights", ema_weights.RAW),  # which weights model.safetensors holds
            "best_weights": self.best_weights,  # which weights scored the best epoch (best.pt)
            "epochs": len(rows),
            "examples_per_sec": examples / train_seconds if train_seconds else None,
            f"best_{self.task.headline}": best if rows else None,
            "multilabel": self.task.multilabel,
            "device": str(self.ctx.device),
            "world_size": self.ctx.world_size,
            "threads": torch.get_num_threads(),
            "malloc": malloc_mode(),  # whether glibc kept freed memory (densenet train's default) or not
            "precision": self.perf.precision,
            "compiled": self.perf.compile,
            "params": sum(p.numel() for p in self.model.parameters()),
            "model": self.config.model.name,
            "dataset": self.config.data.dataset,
            "run_dir": str(self.run_dir),
            "interrupted": self.interrupted,
            **self.data.summary(self._steps_run, self.ctx),
        }
        if self.ctx.is_main and rows:
            final = self.ema.module if summary["weights"] == ema_weights.EMA else self.model
            save_model(self.run_dir, final, model_card(self.config, self.data))
            write_json(self.run_dir / SUMMARY_FILE, summary)
            self.log(self.task.describe(summary))
            self.log(f"{summary['examples_per_sec']:.1f} examples/sec on {summary['device']}")
            self.log(f"total time {summary['elapsed_s']:.1f} s")
        return summary

    def _banner(self, start: int, partial: PartialEpoch | None) -> str:
        cfg, p = self.config, self.perf
        what = f"resuming after epoch {start}" if start or partial else "training"
        if partial is not None:
            what += f" and {partial.batches} batches of epoch {partial.epoch}"
        return (f"{what}: {cfg.model.name} on {cfg.data.dataset} ({self.data.num_train} train / "
                f"{self.data.num_test} {self.data.eval_split} images at {self.data.image_size}px), "
                f"{cfg.run.epochs} epochs, batch {cfg.run.batch_size}{self._recipe()}, lr {cfg.optim.lr}, "
                f"{self.ctx.device}, precision {p.precision}, "
                f"channels_last {p.channels_last}, compile {p.compile}, world size {self.ctx.world_size}")

    def _recipe(self) -> str:
        o, accum = self.config.optim, self.config.run.accum_steps
        return ((f" x {accum} micro-batches per step" if accum > 1 else "") + f", {o.optimizer}"
                + (f", EMA {o.ema}" if o.ema else ""))
