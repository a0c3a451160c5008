"""The fast path: resolve() decides per hardware, compilation falls back to eager when it fails, copies are
eager, the memory-efficient compiled step is exact, and the opaque max-pool equals nn.MaxPool2d."""

from __future__ import annotations

import copy
import pickle
import warnings

import pytest
import torch
from torch import nn
from torch._dynamo.utils import counters

from densenet.engine import hardware, maxpool
from densenet.engine import performance as perf
from densenet.engine.compiled import WithTransform, compiled_calls
from densenet.engine.performance import (
    PerfOptions,
    autocast_context,
    is_compiled,
    make_grad_scaler,
    prepare_model,
    resolve,
)
from densenet.errors import ConfigError
from densenet.models import DenseLayer, DenseNet

CPU = torch.device("cpu")


# -- resolve() --------------------------------------------------------------------------------------------
def test_fp32_when_asked() -> None:
    r = resolve(PerfOptions(precision="fp32", compile=False), "cpu")
    assert r.precision == "fp32" and r.autocast_dtype is None and not r.grad_scaling
    assert make_grad_scaler(r) is None
    with autocast_context(r):
        assert not torch.is_autocast_enabled("cpu")


@pytest.mark.parametrize("flags, expected", [({"avx512f", "avx512_bf16"}, "bf16"), ({"amx_bf16"}, "bf16"),
                                             ({"avx2", "fma"}, "fp32"), ({"avx512f", "avx512bw"}, "fp32")])
def test_auto_uses_bf16_only_on_cpus_with_native_bf16(monkeypatch, flags: set[str], expected: str) -> None:
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset(flags))
    r = resolve(PerfOptions(), CPU)
    assert r.precision == expected
    assert any(reason.startswith(expected) for reason in r.reasons)
    if expected == "bf16":
        with autocast_context(r):
            assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16


def test_explicit_precision_is_kept_and_fp16_gets_a_grad_scaler(monkeypatch) -> None:
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"avx2"}))
    bf16 = resolve(PerfOptions(precision="bf16"), CPU)
    assert bf16.precision == "bf16" and "slow" in bf16.reasons[0] and make_grad_scaler(bf16) is None
    fp16 = resolve(PerfOptions(precision="fp16"), CPU)
    assert fp16.precision == "fp16" and fp16.grad_scaling
    assert isinstance(make_grad_scaler(fp16), torch.amp.GradScaler)


def test_channels_last_and_compile_defaults_and_overrides(monkeypatch) -> None:
    monkeypatch.setattr(perf, "compile_unavailable", lambda device: None)
    r = resolve(PerfOptions(), CPU)
    assert r.channels_last and r.compile
    r = resolve(PerfOptions(channels_last=False, compile=False), CPU)
    assert not r.channels_last and not r.compile
    monkeypatch.setattr(perf, "compile_unavailable", lambda device: "no C++ compiler")
    r = resolve(PerfOptions(), CPU)
    assert not r.compile and "compile off: no C++ compiler" in r.reasons


def test_bad_options_are_reported() -> None:
    with pytest.raises(ConfigError, match="precision must be one of"):
        PerfOptions(precision="int8")
    with pytest.raises(ConfigError, match="compile_mode"):
        PerfOptions(compile_mode="fastest")


# -- prepare_model and the compile fallback ---------------------------------------------------------------
def _tiny() -> nn.Module:
    torch.manual_seed(0)
    return DenseNet(growth_rate=4, block_config=(2,), num_init_features=8, num_classes=3, stem="cifar")


def test_prepare_model_keeps_the_module_and_its_state_dict_keys() -> None:
    model = _tiny()
    keys = list(model.state_dict())
    out = prepare_model(model, resolve(PerfOptions(precision="fp32", compile=False), CPU))
    assert out is model and list(out.state_dict()) == keys
    assert model.features.conv0.weight.is_contiguous(memory_format=torch.channels_last)


def test_a_compiled_model_deep_copies_and_pickles_as_a_plain_eager_module(monkeypatch) -> None:
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: fn)
    torch.manual_seed(0)
    model = DenseNet(growth_rate=4, block_config=(2,), num_init_features=8, num_classes=3, stem="cifar",
                     memory_efficient=True)
    prepare_model(model, resolve(PerfOptions(precision="fp32", compile=True), CPU))
    layers = [m for m in model.modules() if isinstance(m, DenseLayer)]
    assert is_compiled(model) and all(isinstance(m._compiled_call_impl, WithTransform) for m in layers)
    assert not set(vars(layers[0])) - set(vars(DenseLayer(8, 4))) - {"_compiled_call_impl"}  # no engine attributes
    for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert not is_compiled(clone) and not compiled_calls(clone)
        assert all(m._compiled_call_impl is None for m in clone.modules())
    clone = copy.deepcopy(model)
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(clone(x), model(x))


def test_compile_that_raises_at_setup_falls_back_to_eager(monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("Dynamo is not supported on this Python")

    monkeypatch.setattr(torch, "compile", broken)
    model, reference = _tiny(), _tiny()
    x = torch.randn(2, 3, 8, 8)
    with pytest.warns(RuntimeWarning, match="torch.compile failed .*running eagerly"):
        prepare_model(model, resolve(PerfOptions(precision="fp32", compile=True), CPU))
    assert not is_compiled(model)
    torch.testing.assert_close(model(x), reference(x))


def test_compile_that_raises_at_the_first_call_warns_once_and_runs_eagerly(monkeypatch) -> None:
    calls = []

    def compile_failing_at_call(fn, **kwargs):
        def compiled(*args, **kw):
            calls.append(1)
            raise RuntimeError("InductorError: C++ compile error")
        return compiled

    monkeypatch.setattr(torch, "compile", compile_failing_at_call)
    model, reference = _tiny(), _tiny()
    prepare_model(model, resolve(PerfOptions(precision="fp32", channels_last=False, compile=True), CPU))
    assert is_compiled(model)
    x = torch.randn(2, 3, 8, 8)
    with pytest.warns(RuntimeWarning, match="C\\+\\+ compile error"):
        out = model(x)
    torch.testing.assert_close(out, reference(x))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning, no second compiled attempt
        model(x)
    assert len(calls) == 1 and not is_compiled(model)


def test_a_real_input_error_is_raised_not_hidden(monkeypatch) -> None:
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: fn)
    model = prepare_model(_tiny(), resolve(PerfOptions(precision="fp32", compile=True), CPU))
    with pytest.raises(RuntimeError, match="channels"):
        model(torch.randn(2, 5, 8, 8))  # 5 input channels for a 3-channel stem


def test_compiled_memory_efficient_training_step_matches_eager_plain() -> None:
    """The one compiling test: outputs, gradients and BN statistics of a compiled step equal eager ones,
    with the checkpoint run eagerly around the compiled transform of each layer."""
    torch.manual_seed(0)
    plain = DenseNet(growth_rate=4, block_config=(2,), num_init_features=8, bn_size=2, num_classes=3, stem="cifar")
    fast = DenseNet(growth_rate=4, block_config=(2,), num_init_features=8, bn_size=2, num_classes=3, stem="cifar",
                    memory_efficient=True)
    fast.load_state_dict(plain.state_dict())
    prepare_model(fast, resolve(PerfOptions(precision="fp32", channels_last=True, compile=True), CPU))
    assert is_compiled(fast)
    layers = [m for m in fast.modules() if isinstance(m, DenseLayer)]
    [transform], calls = compiled_calls(fast), []  # one compiled transform, shared by every layer
    compiled = transform.compiled  # count its calls: forward, then the recomputation in backward
    transform.compiled = lambda layer, x: calls.append(layer) or compiled(layer, x)
    x, y = torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 0])
    counters.clear()
    outs = []
    for model in (fast, plain):
        out = model(x)
        nn.functional.cross_entropy(out, y).backward()
        outs.append(out.detach())
    assert not transform.failed, "torch.compile failed on this machine"
    assert calls == layers + layers[::-1]  # each layer once forward, once more (last first) in backward
    assert counters["stats"]["unique_graphs"] == len(layers)  # the shared transform, one graph per layer width
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-4, atol=1e-5)
    grads = dict(plain.named_parameters())
    for name, p in fast.named_parameters():
        torch.testing.assert_close(p.grad, grads[name].grad, rtol=1e-4, atol=1e-5, msg=name)
    buffers = dict(plain.named_buffers())
    for name, b in fast.named_buffers():  # running statistics updated once, not again in the recomputation
        torch.testing.assert_close(b, buffers[name], rtol=1e-5, atol=1e-6, msg=name)


# -- the opaque max-pool used under compile on the CPU ----------------------------------------------------
@pytest.mark.parametrize("ceil_mode", [False, True])
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_opaque_max_pool_equals_nn_max_pool(ceil_mode: bool, memory_format: torch.memory_format) -> None:
    pool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1, ceil_mode=ceil_mode)
    x = torch.randn(2, 4, 10, 10).contiguous(memory_format=memory_format).requires_grad_(True)
    ref = pool(x)
    out = maxpool.opaque_max_pool2d(pool, x)
    assert torch.equal(out, ref)
    g = torch.randn_like(ref)
    assert torch.equal(torch.autograd.grad(out, x, g)[0], torch.autograd.grad(ref, x, g)[0])


def test_opaque_max_pool_passes_the_custom_op_checks() -> None:
    x = torch.randn(2, 3, 9, 9, requires_grad=True)
    torch.library.opcheck(maxpool.max_pool2d, (x, [3, 3], [2, 2], [1, 1], [1, 1], False),
                          test_utils=("test_schema", "test_faketensor", "test_autograd_registration"))
