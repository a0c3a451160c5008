#!/usr/bin/env bash
# Flip test-time augmentation for the long preset (issue 22), measured where the recipe was chosen: each search
# run's own held-out validation images (`densenet evaluate --split validation`), with and without `--tta flip`.
# Files docs/records/search/long/<variant>/evaluation-validation{,-flip}.json and evaluation-command.txt.
# Then, with TEST=1, the long preset's finished runs on the test set with flip TTA:
# docs/records/runs/densenet-fashion-mnist-long-seed<N>/evaluation-test-flip.json.
# Usage, from the repository root, after scripts/long-search.sh (and record-runs.sh) left their run directories
# in runs/records/:  bash scripts/long-tta.sh        TEST=1 bash scripts/long-tta.sh
set -euo pipefail
PY=${PYTHON:-.venv/bin/python}
export DENSENET_DATA=${DENSENET_DATA:-../shared/data}

evaluate() {  # RUN OUT_FOLDER NAME [FLAGS...]: one evaluation's JSON, and its command appended to the log
  local run=$1 out=$2 name=$3; shift 3
  "$PY" -m densenet evaluate "$run" --json "$@" > "$out/$name.json"
  echo "densenet evaluate $run --json $* > $name.json  # $(date -u +%FT%TZ), git $(git rev-parse --short HEAD)" \
    >> "$out/evaluation-command.txt"
}

if [ -z "${TEST:-}" ]; then
  for out in docs/records/search/long/densenet-fashion-mnist-seed0-*; do
    run=runs/records/$(basename "$out")
    [ -f "$run/model.safetensors" ] || { echo "error: $run is missing; make it with scripts/long-search.sh" >&2; exit 1; }
    : > "$out/evaluation-command.txt"
    evaluate "$run" "$out" evaluation-validation --split validation
    evaluate "$run" "$out" evaluation-validation-flip --split validation --tta flip
  done
else
  for out in docs/records/runs/densenet-fashion-mnist-long-seed*; do
    run=runs/records/$(basename "$out")
    [ -f "$run/summary.json" ] || { echo "skipping $run: no run directory on this machine" >&2; continue; }
    grep -q '"interrupted": false' "$run/summary.json" || { echo "skipping $run: not finished" >&2; continue; }
    : > "$out/evaluation-command.txt"
    evaluate "$run" "$out" evaluation-test-flip --tta flip
  done
fi
