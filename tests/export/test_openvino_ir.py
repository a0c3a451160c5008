"""One OpenVINO Core per process: compiled models freed in any order, on any thread, leave signals deliverable.

OpenVINO's CPU plugin gives the thread that creates it an alternate signal stack of its own and unmaps it when the
plugin is destroyed. With one plugin per ``Core``, Cores freed out of order leave the main thread's alternate stack
unmapped, and the next signal with a Python handler kills the process with SIGSEGV, no traceback: this is what
made pytest-xdist workers vanish mid-suite (a DataLoader's SIGCHLD after an in-process OpenVINO bench). Each case
runs in a fresh process, since the failure kills it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

# Frees two compiled models (and their Cores) in creation order, one of them on another thread, then signals
# itself: the Python handler must run and the process must exit normally.
SCRIPT = """
    import faulthandler, gc, os, signal, threading
    import numpy as np
    import openvino as ov
    import openvino.opset13 as ops
    import torch
    from densenet.export.openvino_ir import compile_ir, quantize_openvino
    faulthandler.enable()  # as pytest does: the main thread gets an alternate signal stack
    handled = []
    signal.signal(signal.SIGUSR1, lambda signum, frame: handled.append(signum))
    parameter = ops.parameter([-1, 1, 4, 4], np.float32)
    model = ov.Model([ops.relu(parameter)], [parameter])
    {use}
    del first; gc.collect()
    thread = threading.Thread(target=lambda: (second.clear(), gc.collect()))
    thread.start(); thread.join()
    os.kill(os.getpid(), signal.SIGUSR1)
    print("handled", handled, flush=True)
"""
OURS = """
    model = quantize_openvino(model, [torch.rand(2, 1, 4, 4)])  # NNCF makes Cores of its own meanwhile
    first = compile_ir(model, "fp32")
    second = [compile_ir(model, "int8")]  # no precision hint: bf16 only where the CPU has it
"""
PLAIN = """
    first = ov.Core().compile_model(model, "CPU")
    second = [ov.Core().compile_model(model, "CPU")]
"""


def run(use: str) -> subprocess.CompletedProcess:
    code = textwrap.dedent(SCRIPT).replace("{use}", textwrap.dedent(use).strip())
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)})


def test_compiled_models_freed_in_any_order_leave_signals_deliverable():
    result = run(OURS)
    assert result.returncode == 0, (result.returncode, result.stderr[-3000:])
    assert result.stdout.strip() == f"handled [{int(signal.SIGUSR1)}]"


def test_one_core_per_model_is_what_kills_the_process():
    # The same frees with a Core per compiled model, as OpenVINO's examples write: the check above can fail. If a
    # newer openvino stops doing this, densenet.export.openvino_ir.openvino_core is no longer needed.
    result = run(PLAIN)
    assert result.returncode == -signal.SIGSEGV, (result.returncode, result.stdout, result.stderr[-3000:])
    assert "handled" not in result.stdout
