#!/usr/bin/env bash
# Issue #18 item 1, measured with the issue's own commands: compiled (the default) in fp32 on the CPU, one run of
# 2 epochs against one stopped after epoch 1 and resumed, then every tensor and every epoch's metrics compared.
# (The default precision, bf16 where the CPU has it, is tested by tests/engine/test_compiled_resume.py.)
# Usage, from the repository root:  OMP_NUM_THREADS=1 bash scripts/resume-exactness.sh OUT_JSON
# PYTHON defaults to .venv/bin/python; DENSENET_DATA defaults to ../shared/data.
set -euo pipefail
PY=${PYTHON:-.venv/bin/python}
export DENSENET_DATA=${DENSENET_DATA:-../shared/data}
out_json=${1:?usage: bash scripts/resume-exactness.sh OUT_JSON}
work=$(mktemp -d)
trap 'echo "resume-exactness.sh failed; the runs and their logs are in $work" >&2' ERR
args=(--preset d2l-fashion-mnist --resize 64 --train-subset 2000 --test-subset 500 --seed 3 --device cpu
      --precision fp32 --no-progress)
"$PY" -m densenet train "${args[@]}" --epochs 2 --out "$work/a" 2> "$work/a.err"
"$PY" -m densenet train "${args[@]}" --epochs 1 --out "$work/b" 2> "$work/b.err"
"$PY" -m densenet train --resume "$work/b" --epochs 2 --no-progress 2> "$work/b-resume.err"
"$PY" - "$work/a" "$work/b" "$out_json" "${args[*]}" "$(git describe --always --dirty)" <<'PY'
import json, sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from densenet.engine.hardware import machine_record

a, b, out, args, commit = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4], sys.argv[5]
KEEP = ("epoch", "loss", "train_acc", "test_acc", "test_loss", "lr", "examples")  # as tests/engine/test_compiled_resume
wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
differ = [k for k in wa if not torch.equal(wa[k], wb[k])]
rel = max([((wa[k] - wb[k]).abs().max() / wa[k].abs().max().clamp_min(1e-30)).item() for k in differ], default=0.0)
rows = [[json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()] for d in (a, b)]
summary = json.loads((a / "summary.json").read_text())
record = {
    "command": f"densenet train {args} --epochs 2 --out a; densenet train {args} --epochs 1 --out b; "
               "densenet train --resume b --epochs 2",
    "compiled": summary["compiled"], "precision": summary["precision"],
    "tensors": len(wa), "tensors_differing": len(differ), "max_relative_difference": rel,
    "epoch2_loss_uninterrupted": rows[0][1]["loss"], "epoch2_loss_resumed": rows[1][1]["loss"],
    "metrics_equal": [{k: r[k] for k in KEEP} for r in rows[0]] == [{k: r[k] for k in KEEP} for r in rows[1]],
    "machine": {**machine_record(["bash", "scripts/resume-exactness.sh", str(out)]), "git": commit},
}
out.write_text(json.dumps(record, indent=2) + "\n")
print(json.dumps(record, indent=2))
PY
rm -rf "$work"
