#!/usr/bin/env bash
# The photo loader's throughput against what densenet121 training at 224 consumes on this machine (issue #19 item 5).
# Writes into docs/records/bench/<date>-data-*: a generated folder of 600 JPEGs at 500x375 (ImageNet's typical size),
# `densenet data bench` on it, `densenet bench train` of densenet121 at 224, and a short streamed training run whose
# summary.json gives the loader's wait per step.   Usage: bash scripts/data-throughput.sh [PYTHON]
set -euo pipefail
PY=${1:-.venv/bin/python}
DAY=$(date -u +%Y-%m-%d)
OUT=docs/records/bench
WORK=$(mktemp -d)
mkdir -p "$OUT"
"$PY" -c "from densenet.data.synthetic import write_shapes_folder as w; w('$WORK/photos', per_class=200, size=375, formats=('jpg',), aspect=4/3)"
echo "$(date -u +%T) data bench (load $(cut -d' ' -f1-3 /proc/loadavg))"
"$PY" -m densenet data bench --data-dir "$WORK/photos" --workers 0,1,2 --resize 224 --batch-size 64 --batches 3 --json \
  > "$OUT/$DAY-data-bench.json"
echo "$(date -u +%T) densenet121 training steps at 224, eager fp32 and the default fast path"
"$PY" -m densenet bench train --model densenet121 --batch-size 32 --input-size 3,224,224 --no-compile --steps 3 \
  --warmup 1 --no-memory --json > "$OUT/$DAY-data-densenet121-train-eager.json"
echo "$(date -u +%T) densenet121 streamed training run, 2 workers"
"$PY" -m densenet train --model densenet121 --dataset image-folder --data-dir "$WORK/photos" --resize 224 \
  --normalize --batch-size 32 --epochs 1 --train-subset 160 --test-subset 32 --workers 2 --stream --no-compile \
  --no-progress --out "$WORK/run" --json > "$OUT/$DAY-data-densenet121-stream-summary.json"
cp "$WORK/run/metrics.jsonl" "$OUT/$DAY-data-densenet121-stream-metrics.jsonl"
cp "$WORK/run/config.json" "$OUT/$DAY-data-densenet121-stream-config.json"
{ lscpu | grep -E '^(Model name|CPU\(s\)|Flags):'; echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"; } \
  > "$OUT/$DAY-data-lscpu.txt"
echo "$(date -u +%T) done"
rm -rf "$WORK"
