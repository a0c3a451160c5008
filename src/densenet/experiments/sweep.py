"""The sweep runner every experiment shares: train runs and time benchmarks, reusing what exists.

A training run is identified by the hash of its fully resolved :class:`TrainConfig`, so two
experiments that need the same run (say, the standard DenseNet of claim 1 and the no-augmentation
arm of claim 4) train it once. A run that finished is read back; one that died mid-way resumes
from its last checkpoint; a fresh one trains. Runs go to ``ROOT/runs/<hash>/``, ordinary run
directories that ``densenet evaluate`` and ``densenet predict`` accept. Benchmarks are cached the
same way as ``ROOT/bench/<hash>.json``.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import shutil
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from densenet.engine import checkpoint as ckpt
from densenet.engine.config import DataArgs, ModelArgs, OptimArgs, RunArgs, TrainConfig
from densenet.engine.setup import progress_bar
from densenet.experiments.scales import Scale
from densenet.rundir import CONFIG_FILE, SUMMARY_FILE, has_checkpoint, write_json

Log = Callable[[str], None]


@dataclass(frozen=True)
class Arch:
    """One network of an experiment: a registered model with builder arguments, and a label."""

    label: str  # how tables and plots name it
    family: str  # "densenet" or "resnet"
    base: str  # registry name the arguments override, e.g. "densenet_bc100_k12"
    args: tuple[tuple[str, Any], ...] = ()  # builder arguments, as sorted (name, value) pairs

    @classmethod
    def make(cls, label: str, family: str, base: str, **kwargs: Any) -> Arch:
        frozen = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in kwargs.items()))
        return cls(label, family, base, frozen)

    @property
    def kwargs(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.args}

    def build(self, in_channels: int, num_classes: int, device: str = "cpu") -> torch.nn.Module:
        from densenet.models import create_model

        with torch.device(device):
            return create_model(self.base, in_channels=in_channels, num_classes=num_classes, **self.kwargs)


@dataclass(frozen=True)
class RunSpec:
    """One training run: an architecture, a seed, a training-set size and whether to augment."""

    arch: Arch
    seed: int
    train_images: int
    augment: bool = False


@dataclass(frozen=True)
class BenchSpec:
    """One timing: training steps of an architecture at a precision, repeated ``repeat`` times."""

    arch: Arch
    precision: str  # "fp32" or "bf16" (CPU) / "fp16" (CUDA)
    repeat: int  # which repetition (seeds the noise apart in the cache key)


@dataclass
class Sweep:
    """Runs training and benchmark specs at one scale, caching results under ``root``."""

    root: Path
    scale: Scale
    dataset: str
    data_dir: str | None = None
    device: str = "cpu"
    jobs: int = 1
    progress: bool = True
    log: Log = field(default=lambda _m: None)

    def __post_init__(self) -> None:
        from densenet.data import get_spec

        self.root = Path(self.root)
        spec = get_spec(self.dataset)
        self.in_channels, self.image_size, self.num_classes = spec.in_channels, spec.image_size, spec.num_classes
        self._flops: dict[Arch, tuple[int, int]] = {}

    @property
    def train_threads(self) -> int | None:
        """PyTorch threads of each training run: the CPU's threads shared among ``jobs`` (None off the CPU)."""
        return max(1, torch.get_num_threads() // self.jobs) if self.device == "cpu" else None

    # -- configuration -------------------------------------------------------------------------
    def config(self, spec: RunSpec) -> TrainConfig:
        """The training configuration of one run (the recipe is the same for every experiment)."""
        s = self.scale
        pad = s.augment_padding if spec.augment else 0
        return TrainConfig(
            model=ModelArgs(name=spec.arch.base, kwargs=spec.arch.kwargs, init="builder"),
            data=DataArgs(dataset=self.dataset, data_dir=self.data_dir, resize=None, normalize=True,
                          train_subset=spec.train_images, test_subset=s.test_images,
                          random_crop_padding=pad, hflip=spec.augment),
            optim=OptimArgs(lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4, schedule="cosine",
                            schedule_per="step"),
            run=RunArgs(epochs=s.epochs_for(spec.train_images), batch_size=s.batch_size, seed=spec.seed,
                        device=self.device, compile=False),
            preset=f"experiment:{s.name}",
        )

    def run_dir(self, config: TrainConfig) -> Path:
        return self.root / "runs" / config_hash(config)

    def cost(self, arch: Arch) -> tuple[int, int]:
        """(parameters, forward FLOPs per image) of ``arch`` on this dataset; built on the meta device."""
        from densenet.models.profile import count_flops, count_params

        if arch not in self._flops:
            model = arch.build(self.in_channels, self.num_classes, device="meta")
            self._flops[arch] = (count_params(model),
                                 count_flops(model, (self.in_channels, self.image_size, self.image_size)))
        return self._flops[arch]

    # -- training ------------------------------------------------------------------------------
    def train(self, specs: list[RunSpec]) -> list[dict[str, Any]]:
        """Train (or read back) every spec; return one record per spec, in order."""
        configs = [self.config(s) for s in specs]
        records: dict[int, dict[str, Any]] = {}
        todo = []
        for i, (spec, cfg) in enumerate(zip(specs, configs)):
            done = _finished_summary(self.run_dir(cfg), cfg)
            if done is not None:
                records[i] = self._record(spec, cfg, done, reused=True)
            else:
                todo.append(i)
        unique: dict[Path, list[int]] = {}
        for i in todo:
            unique.setdefault(self.run_dir(configs[i]), []).append(i)
        if todo:
            self.log(f"{len(specs) - len(todo)} of {len(specs)} runs already exist; training {len(unique)} "
                     f"with {self.jobs} job(s)")
        bar = progress_bar(len(unique), "runs", self.progress, unit="run")
        threads = self.train_threads
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=self.jobs, mp_context=context, initializer=_init_worker,
                                 initargs=(threads,)) as pool:
            futures = {}
            for run_dir, idx in unique.items():
                cfg = configs[idx[0]]
                resume = _resumable(run_dir, cfg)
                if run_dir.exists() and not resume:
                    shutil.rmtree(run_dir)  # died before its first checkpoint, or after its last: train afresh
                futures[pool.submit(_train_one, cfg.to_dict(), str(run_dir), resume)] = idx
            for fut in as_completed(futures):
                summary = fut.result()
                for i in futures[fut]:
                    records[i] = self._record(specs[i], configs[i], summary, reused=False)
                first = records[futures[fut][0]]
                self.log(f"  {first['label']} seed {first['seed']} on {first['train_images']} images: test acc "
                         f"{first['test_acc']:.4f}, train acc {first['train_acc']:.4f} "
                         f"({first['train_seconds']:.0f} s)")
                bar.update(1)
        bar.close()
        return [records[i] for i in range(len(specs))]

    def _record(self, spec: RunSpec, cfg: TrainConfig, summary: dict[str, Any], reused: bool) -> dict[str, Any]:
        params, flops = self.cost(spec.arch)
        return {
            "label": spec.arch.label, "family": spec.arch.family, "model": spec.arch.base, "args": spec.arch.kwargs,
            "seed": spec.seed, "train_images": spec.train_images, "epochs": cfg.run.epochs,
            "augment": spec.augment, "params": params, "flops": flops,
            "train_acc": summary["train_acc"], "test_acc": summary["test_acc"],
            "gap": summary["train_acc"] - summary["test_acc"], "train_seconds": summary["elapsed_s"],
            "run": str(self.run_dir(cfg)), "reused": reused,
        }

    # -- timing --------------------------------------------------------------------------------
    def bench(self, specs: list[BenchSpec]) -> list[dict[str, Any]]:
        """Time training steps of each spec (cached); one record per spec, in order.

        Benchmarks run one after another in this process, after all training, so that no other
        work shares the CPU; they use all of PyTorch's threads.
        """
        from densenet.bench.harness import BenchConfig, run_bench
        from densenet.engine.performance import PerfOptions

        out = []
        bar = progress_bar(len(specs), "timings", self.progress, unit="timing")
        for spec in specs:
            key = {"arch": [spec.arch.base, spec.arch.args], "precision": spec.precision, "repeat": spec.repeat,
                   "batch": self.scale.bench_batch, "steps": self.scale.bench_steps, "dataset": self.dataset,
                   "device": self.device, "threads": torch.get_num_threads()}
            path = self.root / "bench" / (_digest(key) + ".json")
            if path.is_file():
                result = json.loads(path.read_text())
            else:
                cfg = BenchConfig(mode="train", model=spec.arch.base, model_kwargs=spec.arch.kwargs,
                                  batch_size=self.scale.bench_batch,
                                  input_size=(self.in_channels, self.image_size, self.image_size),
                                  steps=self.scale.bench_steps, warmup=2, device=self.device,
                                  num_classes=self.num_classes, measure_memory=False,
                                  perf=PerfOptions(precision=spec.precision, compile=False))
                result = run_bench(cfg)
                path.parent.mkdir(parents=True, exist_ok=True)
                write_json(path, result)
            params, flops = self.cost(spec.arch)
            ips = result["images_per_s"]
            out.append({"label": spec.arch.label, "family": spec.arch.family, "args": spec.arch.kwargs,
                        "precision": spec.precision, "repeat": spec.repeat, "params": params, "flops": flops,
                        "images_per_s": ips, "threads": result["threads"], "device": result["device"],
                        # forward + backward is about 3 forward passes
                        "achieved_gflops": ips * 3 * flops / 1e9})
            bar.update(1)
        bar.close()
        return out


# -- helpers ---------------------------------------------------------------------------------------
def config_hash(config: TrainConfig) -> str:
    """A short stable name for a configuration (where the data lives does not change the run)."""
    data = config.to_dict()
    data["data"]["data_dir"] = None
    return _digest(data)


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=list).encode()).hexdigest()[:16]


def _finished_summary(run_dir: Path, config: TrainConfig) -> dict[str, Any] | None:
    """The summary of a run that finished all its epochs with this configuration, else None."""
    try:
        summary = json.loads((run_dir / SUMMARY_FILE).read_text())
        saved = json.loads((run_dir / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        return None
    mine = config.to_dict()
    saved["data"]["data_dir"] = mine["data"]["data_dir"]
    if saved != mine or summary.get("interrupted") or summary.get("epochs") != config.run.epochs:
        return None
    return summary


def _resumable(run_dir: Path, config: TrainConfig) -> bool:
    """Whether ``run_dir`` holds a checkpoint of this configuration with epochs still to train."""
    if not has_checkpoint(run_dir):
        return False
    try:
        state = ckpt.load_checkpoint(run_dir)
    except Exception:  # unreadable: start again rather than fail the sweep
        return False
    return state.get("epoch", 0) < config.run.epochs


def _init_worker(threads: int | None) -> None:
    if threads:
        torch.set_num_threads(threads)


def _train_one(config: dict[str, Any], run_dir: str, resume: bool) -> dict[str, Any]:
    from densenet.engine.trainer import train

    return train(TrainConfig.from_dict(config), run_dir, resume=resume, progress=False)
