"""One inference runtime seam: a run's model on PyTorch, ONNX Runtime or OpenVINO, called like the model.

:func:`build_runtime` returns an ``nn.Module`` that maps a float ``(B, C, H, W)`` batch to ``(B, classes)``
logits, whatever runs it, so ``densenet predict`` and ``densenet evaluate`` need no second code path:

- ``torch``: the PyTorch model itself, fp32.
- ``onnxruntime``: the model exported to ONNX in a temporary folder (dynamic batch), on ONNX Runtime's CPU
  provider with all graph optimizations.
- ``openvino``: the model converted in memory, compiled for the CPU in fp32 (``INFERENCE_PRECISION_HINT``
  ``f32``: on AMX CPUs the plugin's default would be bf16).
- ``auto``: the first installed of :data:`AUTO_ORDER`, ONNX Runtime, then OpenVINO, then PyTorch: the order
  of their fp32 CPU speed in ``densenet bench infer`` (DenseNet-121 at 224 px, batch 1 and 32, 1 and 2 threads,
  on an AMX Xeon: ``docs/records/bench/2026-12-01-amx-infer-*.json``). OpenVINO's lead is in bf16 and int8,
  which are exports (``densenet export --format openvino --precision``), not ``--backend``'s fp32.

All three give the fp32 model's logits within the export checks' tolerance, so predictions agree.
:func:`artifact_runtime` runs an exported file (``.onnx`` or OpenVINO ``.xml``) the same way.
"""

from __future__ import annotations

import importlib.util
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from densenet.errors import ConfigError

BACKENDS = ("torch", "onnxruntime", "openvino")
BACKEND_CHOICES = (*BACKENDS, "auto")
AUTO_ORDER = ("onnxruntime", "openvino", "torch")  # fastest first, in fp32 (see the module's docstring)
_MODULES = {"torch": "torch", "onnxruntime": "onnxruntime", "openvino": "openvino"}
_INSTALL = {"onnxruntime": "pip install 'densenet[export]'", "openvino": "pip install 'densenet[openvino]'"}


class RuntimeModel(nn.Module):
    """An exported model run by its runtime, called like the PyTorch model (CPU, no gradients).

    Attributes:
        backend: ``"onnxruntime"`` or ``"openvino"``.
        detail: How it runs (precision, threads, version), for logs and ``--json`` documents.
    """

    def __init__(self, run: Callable[[np.ndarray], np.ndarray], backend: str, detail: str) -> None:
        super().__init__()
        self._run, self.backend, self.detail = run, backend, detail

    def forward(self, x: Tensor) -> Tensor:  # (B, C, H, W) float -> (B, classes) float32
        return torch.from_numpy(np.asarray(self._run(x.detach().to("cpu", torch.float32).contiguous().numpy())))


def installed_backends() -> list[str]:
    """The backends whose runtime package is importable here, in :data:`BACKENDS` order."""
    return [b for b in BACKENDS if importlib.util.find_spec(_MODULES[b]) is not None]


def resolve_backend(name: str) -> str:
    """``auto`` -> the first installed of :data:`AUTO_ORDER`; any other name is checked and returned.

    Raises:
        ConfigError: an unknown name, or a backend whose package is not installed (naming the pip command).
    """
    if name not in BACKEND_CHOICES:
        raise ConfigError(f"unknown backend {name!r}; choose one of {', '.join(BACKEND_CHOICES)}")
    have = installed_backends()
    if name == "auto":
        return next(b for b in AUTO_ORDER if b in have)
    if name not in have:
        raise ConfigError(f"--backend {name} needs the {_MODULES[name]} package: {_INSTALL[name]}")
    return name


def build_runtime(model: nn.Module, backend: str = "torch", input_size: Sequence[int] | None = None,
                  threads: int | None = None) -> nn.Module:
    """``model`` (fp32, eval mode) on ``backend``, as a module of the same inputs and outputs.

    Args:
        model: A trained model, e.g. :func:`densenet.rundir.load`'s (its ``card`` is carried over).
        backend: One of :data:`BACKEND_CHOICES`.
        input_size: One image's ``(C, H, W)`` (default: the model card's preprocessing).
        threads: CPU threads of the runtime (default: torch's thread count).

    Returns:
        ``model`` itself for ``torch``, else a :class:`RuntimeModel`.
    """
    backend = resolve_backend(backend)
    if backend == "torch":
        return model.eval()
    if input_size is None:
        pre = model.card.preprocessing
        input_size = (pre.channels, pre.image_size, pre.image_size)
    threads = threads or torch.get_num_threads()
    if backend == "onnxruntime":
        from densenet.export.formats import export_onnx

        with tempfile.TemporaryDirectory(prefix="densenet-runtime-") as tmp:
            runtime = artifact_runtime(export_onnx(model, Path(tmp) / "model.onnx", input_size), threads=threads)
    else:
        from densenet.export.openvino_ir import compile_ir, to_openvino

        runtime = openvino_runtime(compile_ir(to_openvino(model, input_size), "fp32", threads), "fp32")
    runtime.card = getattr(model, "card", None)
    return runtime


def artifact_runtime(path: str | Path, threads: int | None = None, precision: str | None = None) -> RuntimeModel:
    """An exported ``.onnx`` (ONNX Runtime) or OpenVINO ``.xml`` (precision from its sidecar) as a module."""
    path = Path(path)
    if path.suffix == ".xml":
        from densenet.export.openvino_ir import compile_ir, read_sidecar

        precision = precision or read_sidecar(path)["precision"]
        return openvino_runtime(compile_ir(path, precision, threads), precision)
    return onnx_runtime(path, threads)


def onnx_runtime(path: str | Path, threads: int | None = None) -> RuntimeModel:
    """An ONNX file on ONNX Runtime's CPU provider (all graph optimizations) as a :class:`RuntimeModel`."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ConfigError(f"running an ONNX model needs onnxruntime: {_INSTALL['onnxruntime']}") from None
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    # The session reads the file now, so the temporary folder it came from may go.
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    detail = f"ORT_ENABLE_ALL, intra_op={options.intra_op_num_threads}, onnxruntime {ort.__version__}"
    return RuntimeModel(lambda x: session.run(None, {name: x})[0], "onnxruntime", detail)


def openvino_runtime(compiled: Any, precision: str) -> RuntimeModel:
    """A compiled OpenVINO model as a :class:`RuntimeModel` (``precision``: the IR's, for the detail)."""
    import openvino as ov

    request = compiled.create_infer_request()
    hint = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()  # f32 or bf16
    detail = (f"{precision} IR, inference precision {hint}, threads={compiled.get_property('INFERENCE_NUM_THREADS')}"
              f", openvino {ov.__version__.split('-')[0]}")

    def run(x: np.ndarray) -> np.ndarray:
        return request.infer({0: x}, share_inputs=True)[0].copy()

    return RuntimeModel(run, "openvino", detail)


__all__ = ["AUTO_ORDER", "BACKENDS", "BACKEND_CHOICES", "RuntimeModel", "artifact_runtime", "build_runtime",
           "installed_backends", "onnx_runtime", "openvino_runtime", "resolve_backend"]
