"""OpenVINO IR exports (``.xml`` + ``.bin``) in fp32, bf16 or int8, and the one way to compile them.

The IR's weights are always fp32 (int8 ones after quantization); the precision the CPU plugin *computes*
in is a compile-time setting, ``INFERENCE_PRECISION_HINT``, which an IR file cannot impose: OpenVINO's CPU
plugin reads no such option from the ``.xml`` and, on CPUs with native bf16 (AMX, AVX512-BF16), defaults to
bf16 even for an fp32 IR. So each export writes a sidecar, ``<stem>.openvino.json`` next to the ``.xml``,
recording the precision and the compile options; :func:`compile_ir` reads it. ``fp32`` records ``f32``
(results within the fp32 check's tolerance on every CPU), ``bf16`` records ``bf16``, ``int8`` records
nothing: its float layers run at the plugin's default.

int8 uses NNCF post-training quantization (:func:`nncf.quantize`, preset ``MIXED``: symmetric weights,
asymmetric activations, fast bias correction), calibrated on the pictures the caller passes.

The three files are written under temporary names and renamed into place sidecar, ``.bin``, ``.xml`` last,
so a failed export or check leaves no ``.xml`` that could be loaded.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from densenet.export.formats import INPUT_NAME, OUTPUT_NAME, ExportError, _eval, atomic_output

OV_PRECISIONS = ("fp32", "bf16", "int8")
# What each precision asks the CPU plugin for; None leaves the plugin's default (bf16 where the CPU has it).
PRECISION_HINTS: dict[str, str | None] = {"fp32": "f32", "bf16": "bf16", "int8": None}
SIDECAR_SUFFIX = ".openvino.json"
INSTALL = "pip install 'densenet[openvino]'"


def require_openvino(what: str = "OpenVINO") -> Any:
    """The ``openvino`` module, or an :class:`ExportError` naming the pip command."""
    try:
        import openvino
    except ImportError:
        raise ExportError(f"{what} needs the openvino package: {INSTALL}") from None
    return openvino


@functools.cache
def openvino_core() -> Any:
    """The process's one ``openvino.Core``, its CPU plugin loaded; every OpenVINO call here goes through it.

    Each instance of OpenVINO's CPU plugin (one per ``Core`` that uses the CPU) maps a new alternate signal stack
    for the thread that creates it, and unmaps it when destroyed, giving the thread its previous stack back only
    when destroyed on that thread in reverse order of creation. Two Cores freed in creation order, or one freed on
    another thread, leave the main thread's alternate stack unmapped: the next signal with a Python handler
    (Ctrl-C, SIGTERM, the DataLoader's SIGCHLD) then kills the process with SIGSEGV and no traceback (openvino
    2026.4; tests/export/test_openvino_ir.py). One Core that lives as long as the process, its plugin loaded
    before NNCF creates Cores of its own, keeps that from happening.
    """
    core = require_openvino().Core()
    core.get_property("CPU", "FULL_DEVICE_NAME")  # loads the CPU plugin now, so it outlives every later one
    return core


def sidecar_path(xml: str | Path) -> Path:
    """``model.xml`` -> ``model.openvino.json``."""
    xml = Path(xml)
    return xml.with_name(xml.stem + SIDECAR_SUFFIX)


def to_openvino(model: nn.Module, input_size: Sequence[int]) -> Any:
    """Convert ``model`` (eval mode) to an in-memory ``openvino.Model`` with a dynamic batch axis.

    Args:
        model: The PyTorch model (its training flag is restored afterwards).
        input_size: One image's ``(C, H, W)``.

    Returns:
        The ``openvino.Model``, input named ``input``, output ``logits``.
    """
    ov = require_openvino("the OpenVINO export")
    size = tuple(int(s) for s in input_size)
    example = torch.zeros(1, *size)
    with _eval(model), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript tracer's warnings about Python values in forward()
        converted = ov.convert_model(model, example_input=example, input=[ov.PartialShape([-1, *size])])
    converted.inputs[0].get_tensor().set_names({INPUT_NAME})
    converted.outputs[0].get_tensor().set_names({OUTPUT_NAME})
    return converted


def quantize_openvino(converted: Any, batches: Iterable[torch.Tensor]) -> Any:
    """NNCF post-training int8 quantization of an ``openvino.Model`` on calibration ``batches`` (float NCHW)."""
    try:
        import nncf
    except ImportError:
        raise ExportError(f"int8 OpenVINO export needs nncf: {INSTALL}") from None
    items = [b.numpy() for b in batches]
    if not items:
        raise ExportError("int8 quantization needs at least one calibration picture")
    openvino_core()  # our CPU plugin first: NNCF's own Cores then nest inside it (see openvino_core)
    with _quiet_nncf(nncf):
        return nncf.quantize(converted, nncf.Dataset(items), subset_size=len(items),
                             preset=nncf.QuantizationPreset.MIXED)


@contextlib.contextmanager
def _quiet_nncf(nncf: Any) -> Any:
    """NNCF logs and draws progress bars on stdout; a ``--json`` run must print one document only."""
    previous = logging.getLogger("nncf").level
    nncf.set_log_level(logging.ERROR)
    try:
        with contextlib.redirect_stdout(None), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        nncf.set_log_level(previous)


def compile_options(precision: str, threads: int | None = None) -> dict[str, Any]:
    """The CPU plugin's options for an IR of ``precision``: its precision hint and, if given, the thread count."""
    if precision not in OV_PRECISIONS:
        raise ExportError(f"unknown OpenVINO precision {precision!r}; choose one of {', '.join(OV_PRECISIONS)}")
    options: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
    if PRECISION_HINTS[precision] is not None:
        options["INFERENCE_PRECISION_HINT"] = PRECISION_HINTS[precision]
    if threads:
        options["INFERENCE_NUM_THREADS"] = int(threads)
    return options


def save_ir(converted: Any, path: str | Path, precision: str, meta: dict[str, Any] | None = None,
            check: Any = None) -> Path:
    """Write ``converted`` as ``path`` (``.xml``) + ``.bin`` + sidecar, atomically, after ``check(tmp_xml)``.

    Args:
        converted: The ``openvino.Model`` (fp32 or quantized).
        path: Destination ``.xml``; the weights go to the same stem with ``.bin``.
        precision: One of :data:`OV_PRECISIONS`, recorded in the sidecar with the compile options.
        meta: More fields for the sidecar (input size, calibration pictures, ...).
        check: Optional function run before anything is renamed into place, on the ``openvino.Model`` read
            back from the temporary files; if it raises, nothing is written.

    Returns:
        ``path``.
    """
    ov = require_openvino("the OpenVINO export")
    path = Path(path)
    if path.suffix != ".xml":
        raise ExportError(f"an OpenVINO IR is written as FILE.xml (+ FILE.bin); got --output {path}")
    doc = {"format": "openvino", "precision": precision, "compile_options": compile_options(precision),
           "openvino": ov.__version__.split("-")[0], **(meta or {})}
    with tempfile.TemporaryDirectory(prefix=f".{path.stem}.", dir=path.parent) as tmp, atomic_output(path) as xml, \
            atomic_output(path.with_suffix(".bin")) as weights, atomic_output(sidecar_path(path)) as side:
        staged = Path(tmp) / "model.xml"  # the serializer wants a .xml name
        ov.serialize(converted, str(staged), str(staged.with_suffix(".bin")))  # fp32 as is; save_model halves it
        if check is not None:
            check(openvino_core().read_model(str(staged)))
        os.replace(staged, xml)
        os.replace(staged.with_suffix(".bin"), weights)
        side.write_text(json.dumps(doc, indent=2) + "\n")
    return path


def read_sidecar(xml: str | Path) -> dict[str, Any]:
    """The sidecar of an exported ``.xml``; an IR written elsewhere (no sidecar) is taken as fp32."""
    side = sidecar_path(xml)
    if not side.is_file():
        return {"format": "openvino", "precision": "fp32"}
    try:
        doc = json.loads(side.read_text())
    except json.JSONDecodeError as exc:
        raise ExportError(f"{side} is not valid JSON ({exc}); export the model again") from None
    if doc.get("precision") not in OV_PRECISIONS:
        raise ExportError(f"{side}: unknown precision {doc.get('precision')!r}; export the model again")
    return doc


def compile_ir(source: str | Path | Any, precision: str | None = None, threads: int | None = None) -> Any:
    """Compile an IR file (its sidecar gives the precision) or an in-memory model for the CPU.

    Args:
        source: An ``.xml`` path, or an ``openvino.Model``.
        precision: Override the sidecar's precision (required for an in-memory model; default fp32).
        threads: ``INFERENCE_NUM_THREADS`` (default: the plugin's).

    Returns:
        The ``openvino.CompiledModel``.
    """
    if isinstance(source, (str, Path)):
        if not Path(source).is_file():
            raise ExportError(f"{source} does not exist")
        precision = precision or read_sidecar(source)["precision"]
        source = str(source)
    return openvino_core().compile_model(source, "CPU", compile_options(precision or "fp32", threads))


__all__ = ["INSTALL", "OV_PRECISIONS", "PRECISION_HINTS", "SIDECAR_SUFFIX", "compile_ir", "compile_options",
           "openvino_core", "quantize_openvino", "read_sidecar", "require_openvino", "save_ir", "sidecar_path",
           "to_openvino"]
