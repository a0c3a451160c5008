"""``densenet bench``: one JSON document with the figures, interleaved baselines, peak memory, clear errors."""

from __future__ import annotations

import json

import pytest
import torch
from tests.helpers import run_cli

from densenet.bench.baselines import TextbookDenseBlock
from densenet.bench.harness import BenchConfig, build_variants, peak_step_memory, run_bench
from densenet.engine.compiled import compiled_calls
from densenet.engine.performance import PerfOptions
from densenet.errors import ConfigError
from densenet.models import DenseLayer

KEYS = {"images_per_s", "peak_memory_mb", "baseline_images_per_s", "speedup", "median_step_s", "steps",
        "precision", "compiled", "device", "baseline_peak_memory_mb", "memory_ratio"}


def test_cli_train_against_the_naive_and_peer_baselines_prints_one_json_document() -> None:
    # --no-compile keeps this fast; the figures' shape is what counts, not their size.
    result = run_cli("bench", "train", "--model", "d2l_densenet", "--batch-size", "4", "--input-size", "1,96,96",
                     "--steps", "2", "--warmup", "1", "--baseline", "naive", "--baseline", "peer", "--no-compile",
                     "--threads", "1", "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    doc = json.loads(result.stdout)
    assert KEYS <= set(doc)
    assert doc["speedup"] > 0 and doc["images_per_s"] > 0 and doc["baseline_images_per_s"] > 0
    assert doc["speedup"] == pytest.approx(doc["images_per_s"] / doc["baseline_images_per_s"], rel=0.01)
    assert doc["steps"] == 2 and doc["baseline"] == "naive" and doc["compiled"] is False
    assert doc["peak_memory_mb"] > 0 and doc["baseline_peak_memory_mb"] > 0
    assert "step 2/2" in result.stderr  # progress goes to stderr
    assert list(doc["baselines"]) == ["naive", "peer"]  # each baseline's own figures; the first one's at the top too
    naive, peer = doc["baselines"]["naive"], doc["baselines"]["peer"]
    assert naive["images_per_s"] == doc["baseline_images_per_s"] and naive["speedup"] == doc["speedup"]
    assert naive["memory_ratio"] == doc["memory_ratio"] and naive["cpu_time_speedup"] == doc["cpu_time_speedup"]
    assert peer["speedup"] == pytest.approx(doc["images_per_s"] / peer["images_per_s"], rel=0.01)
    assert peer["cpu_time_speedup"] == pytest.approx(peer["median_cpu_s"] / doc["median_cpu_s"], rel=0.01)
    assert peer["precision"] == doc["precision"] and peer["channels_last"] and not peer["compiled"]
    assert naive["precision"] == "fp32" and not naive["channels_last"] and peer["peak_memory_mb"] > 0
    machine = doc["machine"]  # the record says where the figures come from
    assert machine["command"].startswith("densenet bench train --model d2l_densenet") and machine["threads"] == 1
    assert {"cpu", "avx512_bf16", "amx_bf16", "amx_int8", "torch", "load_average", "load_average_after",
            "date"} <= set(machine)


@pytest.mark.parametrize("args, message", [
    (["--baseline", "plain"], "--baseline plain compares against the model without --memory-efficient"),
    (["--input-size", "1,96"], "invalid size"),
])
def test_cli_usage_errors_are_one_line(args: list[str], message: str) -> None:
    base = {"--model": "d2l_densenet", "--batch-size": "2", "--input-size": "1,96,96"}
    for i in range(0, len(args), 2):
        base[args[i]] = args[i + 1]
    result = run_cli("bench", "train", *[item for pair in base.items() for item in pair])
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()] and message in result.stderr


def test_unknown_model_is_a_usage_error() -> None:
    result = run_cli("bench", "infer", "--model", "densenet122", "--batch-size", "1", "--input-size", "3,32,32")
    assert result.returncode == 2 and "unknown model 'densenet122'" in result.stderr


def _config(**kw) -> BenchConfig:
    base = dict(mode="train", model="densenet40_k12", batch_size=2, input_size=(3, 16, 16), steps=2, warmup=1,
                perf=PerfOptions(precision="fp32", compile=False))
    return BenchConfig(**{**base, **kw})


def test_infer_reports_the_fast_variant_alone() -> None:
    doc = run_bench(_config(mode="infer", measure_memory=False))
    assert doc["mode"] == "infer" and doc["images_per_s"] > 0 and "speedup" not in doc and "peak_memory_mb" not in doc


def test_variants_share_weights_and_data_and_the_naive_one_is_fp32_nchw() -> None:
    fast, naive = build_variants(_config(baseline="naive", perf=PerfOptions(precision="bf16", compile=False)))
    assert naive.perf.precision == "fp32" and not naive.perf.channels_last and fast.perf.precision == "bf16"
    assert fast.x.is_contiguous(memory_format=torch.channels_last) and naive.x.is_contiguous()
    torch.testing.assert_close(fast.x, naive.x)
    for (name, p), q in zip(fast.model.state_dict().items(), naive.model.state_dict().values()):
        torch.testing.assert_close(p, q, msg=name)


def test_the_peer_is_the_textbook_model_with_the_fast_paths_switches() -> None:
    cfg = _config(model="d2l_densenet", input_size=(1, 32, 32), baseline=("peer", "naive", "peer"),
                  perf=PerfOptions(precision="bf16", compile=True))
    assert cfg.baseline == ("peer", "naive")  # each once, in the order given
    fast, peer, naive = build_variants(cfg)
    assert (peer.perf.precision, peer.perf.channels_last, peer.perf.compile) == ("bf16", True, True)
    assert isinstance(peer.model, torch._dynamo.eval_frame.OptimizedModule)  # plain torch.compile
    textbook = peer.model._orig_mod
    assert isinstance(textbook.features.denseblock1, TextbookDenseBlock)
    assert textbook.features.conv0.weight.is_contiguous(memory_format=torch.channels_last)
    assert not any("forward" in m.__dict__ for m in textbook.modules())  # no engine substitution (max-pool op)
    assert any("forward" in m.__dict__ for m in fast.model.modules())  # which the fast path has
    for (name, p), q in zip(naive.model.state_dict().items(), textbook.state_dict().values()):
        torch.testing.assert_close(p, q, msg=name)


def test_memory_efficient_mode_needs_far_less_memory_than_plain() -> None:
    cfg = _config(model="densenet40_k12", memory_efficient=True, baseline="plain", batch_size=4)
    efficient, plain = build_variants(cfg)
    assert efficient.model.features.denseblock1.denselayer1.memory_efficient
    assert not plain.model.features.denseblock1.denselayer1.memory_efficient
    for v in (efficient, plain):
        v.step()  # warm
    peak_efficient, method = peak_step_memory(efficient, torch.device("cpu"))
    peak_plain, _ = peak_step_memory(plain, torch.device("cpu"))
    assert "profiler" in method
    params = sum(p.numel() * 4 for p in plain.model.parameters())
    assert peak_plain > 2 * params  # activations dominate
    assert (peak_efficient - params) < (peak_plain - params) / 2, (peak_efficient, peak_plain)


def test_compiled_memory_efficient_mode_keeps_eager_checkpointing_memory() -> None:
    # Compiled whole, the checkpoints kept far more than eager checkpointing on BC-190 (BENCHMARKS.md, "How the fast
    # path was chosen"; its figures had no record and are in git at d89e6ad);
    # the shared compiled transform inside eager checkpoints has to keep what eager checkpointing keeps.
    cfg = _config(model="densenet_bc100_k12", model_kwargs={"block_config": (8,)}, memory_efficient=True,
                  baseline="plain", batch_size=8, perf=PerfOptions(precision="fp32", compile=True))
    efficient, plain = build_variants(cfg)
    for v in (efficient, plain):
        v.step()  # warm: compiles
    [transform] = compiled_calls(efficient.model)  # one compiled transform inside the eager checkpoints
    assert transform.eager is DenseLayer.transform and not transform.failed
    assert plain.model.__dict__.get("_compiled_call_impl") is not None
    eager = build_variants(_config(model="densenet_bc100_k12", model_kwargs={"block_config": (8,)},
                                   memory_efficient=True, batch_size=8))[0]
    eager.step()
    params = sum(p.numel() * 4 for p in plain.model.parameters())
    peak_efficient, peak_plain, peak_eager = (peak_step_memory(v, torch.device("cpu"))[0] - params
                                              for v in (efficient, plain, eager))
    assert peak_efficient < peak_plain / 2, (peak_efficient, peak_plain)
    assert peak_efficient < 1.25 * peak_eager, (peak_efficient, peak_eager)


def test_bad_config_is_reported() -> None:
    with pytest.raises(ConfigError, match="mode must be one of"):
        _config(mode="eval")
    with pytest.raises(ConfigError, match="baseline must be one of"):
        _config(baseline="torchvision")
