"""The sweep runner every experiment shares: train runs and time benchmarks, reusing what exists.

A training run is identified by the hash of its fully resolved :class:`TrainConfig`, so two
experiments that need the same run (say, the standard DenseNet of claim 1 and the no-augmentation
arm of claim 4) train it once. A run that finished is read back; one that died mid-way resumes
from its last checkpoint; a fresh one trains. Runs go to ``ROOT/runs/<hash>/``, ordinary run
directories that ``densenet evaluate`` and ``densenet predict`` accept. Benchmarks are cached the
same way as ``ROOT/bench/<hash>.json``.

A run may start from another run's trained weights (``RunSpec.init_from``, for transfer): that run
trains first, then its weights are written with a freshly drawn classifier to
``ROOT/init/<its hash>-head<seed>.safetensors``, the file the new run's ``model.init_from`` names.
The hash of such a run depends on the path relative to ``ROOT``, so on the earlier run's hash, and
not on where ``ROOT`` lies.
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
from densenet.rundir import (
    CONFIG_FILE,
    METRICS_FILE,
    SUMMARY_FILE,
    WEIGHTS_FILE,
    atomic_write_bytes,
    has_checkpoint,
    write_json,
)

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
    """One training run: an architecture, a seed, a training-set size and whether to augment.

    The last three fields default to what every experiment but transfer uses, and then leave the
    configuration (and so the run's hash) as it was before they existed.
    """

    arch: Arch
    seed: int
    train_images: int
    augment: bool = False
    dataset: str | None = None  # None: the sweep's dataset
    init_from: RunSpec | None = None  # start from this run's trained weights with a fresh classifier (same arch)
    epochs: int | None = None  # None: the scale's budget rule, Scale.epochs_for(train_images)


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
        self.root = Path(self.root)
        self.in_channels, self.image_size, self.num_classes = self.shape(self.dataset)
        self._flops: dict[tuple[Arch, str], tuple[int, int]] = {}

    @staticmethod
    def shape(dataset: str) -> tuple[int, int, int]:
        """(input channels, image size, classes) of a built-in dataset."""
        from densenet.data import get_spec

        spec = get_spec(dataset)
        return spec.in_channels, spec.image_size, spec.num_classes

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
            model=ModelArgs(name=spec.arch.base, kwargs=spec.arch.kwargs, init="builder",
                            init_from=str(self.init_path(spec)) if spec.init_from else None),
            # data_dir holds the sweep's dataset; another one is looked up as usual ($DENSENET_DATA/<name>, ...)
            data=DataArgs(dataset=spec.dataset or self.dataset,
                          data_dir=self.data_dir if (spec.dataset or self.dataset) == self.dataset else None,
                          resize=None, normalize=True, train_subset=spec.train_images, test_subset=s.test_images,
                          random_crop_padding=pad, hflip=spec.augment),
            optim=OptimArgs(lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4, schedule="cosine",
                            schedule_per="step"),
            run=RunArgs(epochs=self.epochs(spec), batch_size=s.batch_size, seed=spec.seed,
                        device=self.device, compile=False),
            preset=f"experiment:{s.name}",
        )

    def epochs(self, spec: RunSpec) -> int:
        """Epochs of one run: its own, else the scale's for its training-set size."""
        return spec.epochs or self.scale.epochs_for(spec.train_images)

    def run_dir(self, config: TrainConfig) -> Path:
        return self.root / "runs" / config_hash(config, self.root)

    def init_path(self, spec: RunSpec) -> Path:
        """The weights ``spec`` starts from: its ``init_from`` run's, with a classifier drawn for ``spec.seed``."""
        if spec.init_from is None or spec.init_from.arch != spec.arch:
            raise ValueError(f"a run starts from a trained run of its own architecture, got {spec}")
        parent = config_hash(self.config(spec.init_from), self.root)
        return self.root / "init" / f"{parent}-head{spec.seed}.safetensors"

    def cost(self, arch: Arch, dataset: str | None = None) -> tuple[int, int]:
        """(parameters, forward FLOPs per image) of ``arch`` on ``dataset`` (default the sweep's), built on meta."""
        from densenet.models.profile import count_flops, count_params

        key = (arch, dataset or self.dataset)
        if key not in self._flops:
            channels, size, classes = self.shape(key[1])
            model = arch.build(channels, classes, device="meta")
            self._flops[key] = (count_params(model), count_flops(model, (channels, size, size)))
        return self._flops[key]

    # -- training ------------------------------------------------------------------------------
    def train(self, specs: list[RunSpec]) -> list[dict[str, Any]]:
        """Train (or read back) every spec; return one record per spec, in order.

        A spec that starts from another run trains after it, in a later round: the runs it starts
        from are trained first (also when they are not among ``specs``), then their weights are
        written with the new run's fresh classifier (:meth:`write_init`).
        """
        needed = list(dict.fromkeys(a for s in specs for a in _lineage(s)))  # every run, after those it starts from
        depth = {s: len(_lineage(s)) for s in needed}
        done: dict[RunSpec, dict[str, Any]] = {}
        for d in sorted(set(depth.values())):
            layer = [s for s in needed if depth[s] == d]
            for s in layer:
                if s.init_from is not None:
                    self.write_init(s)
            done.update(zip(layer, self._train_round(layer)))
        return [dict(done[s]) for s in specs]

    def write_init(self, spec: RunSpec) -> Path:
        """Write the weights ``spec`` starts from (once): its ``init_from`` run's, with a freshly drawn classifier.

        The classifier is the one the builder draws under ``torch.manual_seed(spec.seed)`` (the global
        random state is restored afterwards), so the file is the same every time it is made from the
        same trained run. The trainer keeps a head of the right size, so this is how a same-size head
        (10 classes to 10) starts afresh.
        """
        from safetensors.torch import load_file
        from safetensors.torch import save as safetensors_bytes

        path = self.init_path(spec)
        if path.is_file():
            return path
        trained = load_file(str(self.run_dir(self.config(spec.init_from)) / WEIGHTS_FILE))
        channels, _, classes = self.shape(spec.dataset or self.dataset)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(spec.seed)
            fresh = spec.arch.build(channels, classes)
        head = fresh.head_name + "."
        tensors = {k: v.contiguous() for k, v in trained.items() if not k.startswith(head)}
        tensors |= {k: v.detach().contiguous() for k, v in fresh.state_dict().items() if k.startswith(head)}
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, safetensors_bytes(tensors))
        return path

    def _train_round(self, specs: list[RunSpec]) -> list[dict[str, Any]]:
        """Train (or read back) specs that do not depend on each other; one record per spec, in order."""
        configs = [self.config(s) for s in specs]
        records: dict[int, dict[str, Any]] = {}
        todo = []
        for i, (spec, cfg) in enumerate(zip(specs, configs)):
            done = _finished_summary(self.run_dir(cfg), cfg, self.root)
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
        params, flops = self.cost(spec.arch, spec.dataset)
        record = {
            "label": spec.arch.label, "family": spec.arch.family, "model": spec.arch.base, "args": spec.arch.kwargs,
            "seed": spec.seed, "train_images": spec.train_images, "epochs": cfg.run.epochs,
            "augment": spec.augment, "params": params, "flops": flops,
            "train_acc": summary["train_acc"], "test_acc": summary["test_acc"],
            "gap": summary["train_acc"] - summary["test_acc"], "train_seconds": summary["elapsed_s"],
            "run": str(self.run_dir(cfg)), "reused": reused,
        }
        return record | (self._transfer_fields(spec, cfg) if spec.dataset or spec.init_from else {})

    def _transfer_fields(self, spec: RunSpec, cfg: TrainConfig) -> dict[str, Any]:
        """What records of runs that name their dataset or start from another run add: the dataset, the run
        they start from (its hash, or None) and the per-epoch test accuracy with cumulative training seconds
        (evaluation excluded), from which a time to an accuracy is read."""
        rows = [json.loads(line) for line in (self.run_dir(cfg) / METRICS_FILE).read_text().splitlines() if line]
        seconds = [sum(r["train_seconds"] for r in rows[:i + 1]) for i in range(len(rows))]
        return {"dataset": cfg.data.dataset,
                "init_from": config_hash(self.config(spec.init_from), self.root) if spec.init_from else None,
                "test_acc_curve": [r["test_acc"] for r in rows], "train_seconds_curve": seconds}

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
def config_hash(config: TrainConfig, root: str | Path | None = None) -> str:
    """A short stable name for a configuration: the hash of the fields that differ from ``TrainConfig()``'s.

    So a field added later, at its default, renames no run; ``data_dir`` and ``init_source`` do not count, and an
    ``init_from`` path under ``root`` counts by its path relative to ``root``.
    """
    return _digest(_canonical(config.to_dict(), root))


def _canonical(data: dict[str, Any], root: str | Path | None) -> dict[str, Any]:
    """A configuration dict as hashes and comparisons see it (see :func:`config_hash`); a modified copy."""
    data = json.loads(json.dumps(data))
    data["data"]["data_dir"] = data["init_source"] = None  # where the data is, and what the trainer read: no change
    start = data["model"].get("init_from")
    if start and root is not None:
        try:
            data["model"]["init_from"] = Path(start).resolve().relative_to(Path(root).resolve()).as_posix()
        except ValueError:  # outside root: the path is the identity
            pass
    defaults = json.loads(json.dumps(TrainConfig().to_dict()))
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and isinstance(defaults.get(key), dict):
            value = {k: v for k, v in value.items() if k not in defaults[key] or defaults[key][k] != v}
            if value:
                out[key] = value
        elif key not in defaults or defaults[key] != value:
            out[key] = value
    return out


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=list).encode()).hexdigest()[:16]


def _finished_summary(run_dir: Path, config: TrainConfig, root: str | Path | None = None) -> dict[str, Any] | None:
    """The summary of a run that finished all its epochs with this configuration, else None.

    The saved and the asked configuration are compared as :func:`config_hash` sees them.
    """
    try:
        summary = json.loads((run_dir / SUMMARY_FILE).read_text())
        saved = json.loads((run_dir / CONFIG_FILE).read_text())
        same = _canonical(saved, root) == _canonical(config.to_dict(), root)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not same or summary.get("interrupted") or summary.get("epochs") != config.run.epochs:
        return None
    return summary


def _lineage(spec: RunSpec) -> list[RunSpec]:
    """The runs ``spec`` starts from, earliest first, then ``spec`` itself."""
    return ([] if spec.init_from is None else _lineage(spec.init_from)) + [spec]


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
