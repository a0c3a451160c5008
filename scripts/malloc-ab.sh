#!/usr/bin/env bash
# densenet train with glibc keeping freed memory (--malloc keep, the default) against glibc as it is (--malloc system):
# the same short run twice at the same time, one thread each, so machine noise hits both. Compares each epoch's
# training seconds after the first (which compiles), peak RSS and minor page faults (GNU time), and whether the two
# runs end with equal weights (the allocator must not change the numbers).
# Usage, from the repository root:  bash scripts/malloc-ab.sh OUT_JSON [PRESET]
# PYTHON defaults to .venv/bin/python; DENSENET_DATA defaults to ../shared/data; EXTRA adds train flags.
set -euo pipefail
PY=${PYTHON:-.venv/bin/python}
export DENSENET_DATA=${DENSENET_DATA:-../shared/data} OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
out_json=${1:?usage: bash scripts/malloc-ab.sh OUT_JSON [PRESET]}
preset=${2:-densenet-fashion-mnist}
work=$(mktemp -d)
trap 'echo "malloc-ab.sh failed; the runs and their logs are in $work" >&2' ERR
# shellcheck disable=SC2206
args=(--preset "$preset" --train-subset 12800 --test-subset 1000 --epochs 4 --seed 0 --threads 1 --no-progress
      ${EXTRA:-})
for mode in keep system; do
  /usr/bin/time -f '{"max_rss_kb": %M, "minor_faults": %R, "user_s": %U, "system_s": %S, "wall_s": %e}' \
    -o "$work/$mode.time" "$PY" -m densenet train "${args[@]}" --malloc "$mode" --out "$work/$mode" \
    2> "$work/$mode.err" &
done
wait
"$PY" - "$work" "$out_json" "${args[*]}" "$(git describe --always --dirty)" <<'PY'
import json, statistics, sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from densenet.engine.hardware import machine_record

work, out, args, commit = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]
runs = {}
for mode in ("keep", "system"):
    rows = [json.loads(line) for line in (work / mode / "metrics.jsonl").read_text().splitlines()]
    summary = json.loads((work / mode / "summary.json").read_text())
    runs[mode] = {"malloc": summary["malloc"], "train_seconds": [r["train_seconds"] for r in rows],
                  "test_acc": summary["test_acc"], "precision": summary["precision"], "compiled": summary["compiled"],
                  **json.loads((work / f"{mode}.time").read_text().strip().splitlines()[-1])}
per_epoch = [s / k for k, s in zip(runs["keep"]["train_seconds"][1:], runs["system"]["train_seconds"][1:])]
wa, wb = load_file(work / "keep" / "model.safetensors"), load_file(work / "system" / "model.safetensors")
record = {
    "command": f"densenet train {args} --malloc keep|system, both at once",
    "runs": runs,
    "speedup_per_epoch_after_the_first": per_epoch,  # system's training seconds over keep's, epoch by epoch
    "median_speedup": statistics.median(per_epoch),
    "equal_weights": wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa),
    "machine": {**machine_record(["bash", "scripts/malloc-ab.sh", str(out)]), "threads": 1, "git": commit},
}
out.write_text(json.dumps(record, indent=2) + "\n")
print(json.dumps({k: record[k] for k in ("median_speedup", "speedup_per_epoch_after_the_first", "equal_weights")}))
PY
rm -rf "$work"
