#!/usr/bin/env bash
# Re-measures BENCHMARKS.md results 1-3 (and the inference backends) one after another, one thread each,
# writing each run's JSON (with the machine record) and its progress log into docs/records/bench/.
# Usage, from the repository root:  nohup bash scripts/remeasure.sh [PYTHON] > run.log 2>&1 &
# PYTHON defaults to .venv/bin/python; set PYTHONPATH=src to measure a worktree's sources.
# ONLY="result1 result2 ..." runs only the runs whose names start with one of these words; TAG=x names the
# files <date>-x-<name>.* (e.g. TAG=old-c6422db with PYTHONPATH pointing at that commit's src, for an A/B).
set -uo pipefail
PY=${1:-.venv/bin/python}
DAY=$(date -u +%Y-%m-%d)
PREFIX=$DAY${TAG:+-$TAG}
OUT=docs/records/bench
mkdir -p "$OUT"
{ lscpu | grep -E '^(Model name|CPU\(s\)|Thread\(s\) per core|Flags):'; } > "$OUT/$DAY-lscpu.txt"
found=$(grep -o -w -E 'avx512_bf16|amx_bf16|amx_int8' "$OUT/$DAY-lscpu.txt" | sort -u | tr '\n' ' ')
echo "bf16/AMX flags: ${found:-none of avx512_bf16, amx_bf16, amx_int8}" >> "$OUT/$DAY-lscpu.txt"

run() {  # run NAME ARGS...: one densenet bench command, its JSON and log under $OUT
  local name=$1; shift
  if [ -n "${ONLY:-}" ] && ! printf '%s\n' $ONLY | grep -q -x -E "${name%%-*}|$name"; then return; fi
  echo "$(date -u +%H:%M:%S) start $name: densenet $* (load $(cut -d' ' -f1-3 /proc/loadavg))"
  "$PY" -m densenet "$@" --json > "$OUT/$PREFIX-$name.json" \
    2> >(grep --line-buffered -v '^USDT:' > "$OUT/$PREFIX-$name.log")
  echo "$(date -u +%H:%M:%S) done  $name: exit $?"
}

run result1-d2l-train bench train --model d2l_densenet --batch-size 256 --input-size 1,96,96 --baseline naive \
  --threads 1 --steps 10
run result2-densenet121-infer bench infer --model densenet121 --batch-size 1 --input-size 3,224,224 \
  --baseline naive --threads 1 --steps 20
run result3-bc190-eager bench train --model densenet_bc190_k40 --batch-size 32 --input-size 3,32,32 \
  --memory-efficient --baseline plain --no-compile --threads 1 --steps 6 --warmup 1
run result3-bc190-compiled bench train --model densenet_bc190_k40 --batch-size 32 --input-size 3,32,32 \
  --memory-efficient --baseline plain --threads 1 --steps 5 --warmup 1
for model in "d2l_densenet 1,96,96" "densenet121 3,224,224"; do
  set -- $model
  run "backends-$1" bench infer --model "$1" --batch-size 1 --input-size "$2" \
    --backend eager fast onnxruntime torchscript --threads 1 --steps 8 --warmup 2
done
echo "$(date -u +%H:%M:%S) all done"
