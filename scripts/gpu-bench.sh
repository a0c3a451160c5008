#!/usr/bin/env bash
# Issue #23's GPU run, prepared on the CPU: writes ONE JSON, $DEST/gpu-bench.json, in under 8 minutes on one
# H100/H200. Its parts (each a `densenet` command; its JSON and log under $WORK/parts/):
#   seed        d2l_densenet training, 96 px, batch 256: fast vs naive vs peer (one process, interleaved)
#   densenet121 densenet121 training, 224 px, batch 256, bf16 + channels-last + compile vs peer
#   memory      densenet_bc190_k40 (tiny: densenet_bc100_k12) --memory-efficient vs plain on CUDA (eager: compiling 93 layer widths would
#               not fit the time), peak memory ratio and speed
#   torchrun    a 1-GPU `torchrun --nproc_per_node 1` smoke run of `densenet train` (1 epoch, 2048 pictures),
#               and an nccl all-reduce in a torchrun-launched process (one process runs train without a
#               process group: DistContext.enabled needs WORLD_SIZE > 1)
#   train10     10 epochs of the seed preset (`densenet train --preset d2l-fashion-mnist`): test accuracy, time
# With GPU_BENCH_SET=long, issue #22's GPU runs instead, for a second call (each set fits one 10-minute call):
#   long-seed0, long-seed1, long-seed2   `densenet train --preset densenet-fashion-mnist-long --seed N`, each
#               part with its run's config.json and metrics.jsonl in the JSON; file them as records with
#               `python scripts/gpu_bench.py records gpu-bench.json docs/records/gpu/long`
# gpu-bench.json holds every part's document, its command, exit status and seconds, the GPU and torch, and the
# issue's targets with the measured figures.
#
# Usage, from the repository root:   bash scripts/gpu-bench.sh [PYTHON]       (PYTHON: default python3)
#   DEST=dir            where to write (default: $OUT when set, as on the device machine, else gpu-bench-out)
#   GPU_BENCH_TINY=1    every part at minimal size on the CPU, uncompiled: a check of the script itself
#   GPU_BENCH_SET       perf (default: the parts above) or long (the long preset's three seeds)
#   GPU_BENCH_BUDGET_S  seconds for all parts together (default 470; 540 for the long set); a part gets at most what is left
#   GPU_BENCH_WORK      where the parts' outputs and run folders go (default: a new temporary folder)
# On the device machine:  bash scripts/gpu-bench.sh python3   ($OUT gets gpu-bench.json and gpu-bench.log)
# Checked on the CPU by tests/bench/test_gpu_bench_script.py (about 30 s; 90 s on 2 overloaded cores), which runs
#   GPU_BENCH_TINY=1 DEST=/tmp/gb bash scripts/gpu-bench.sh .venv/bin/python   (then: all_ok true in the JSON)
# Data: Fashion-MNIST from $DENSENET_DATA, else ./shared/data or ../shared/data (the first that has
# fashion-mnist/); nothing is downloaded (--no-download). The device machine gets the checkout alone (not the
# ../shared beside it): copy ../shared/data/fashion-mnist to ./shared/data/fashion-mnist first (30 MB; a
# shared/ folder inside the checkout travels). Needs a CUDA build of torch (the device image's
# python3 has one) and this repository's src/ (put on PYTHONPATH here); nothing is installed.
set -uo pipefail
PY=${1:-python3}
export GPU_BENCH_SET=${GPU_BENCH_SET:-perf}  # gpu_bench.py merge reads it too
case $GPU_BENCH_SET in
  perf) default_budget=470 ;;
  long) default_budget=540 ;;  # each set fits one 600 s call
  *) echo "error: GPU_BENCH_SET is perf or long, not '$GPU_BENCH_SET'" >&2; exit 2 ;;
esac
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export PYTHONPATH=$ROOT/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
DEST=${DEST:-${OUT:-gpu-bench-out}}
WORK=${GPU_BENCH_WORK:-$(mktemp -d)}  # the parts' outputs and run folders (only 8 files come back from $OUT)
mkdir -p "$DEST" "$WORK/parts"
exec > >(tee "$DEST/gpu-bench.log") 2>&1
if [ -z "${DENSENET_DATA:-}" ]; then
  for d in "$ROOT/shared/data" "$ROOT/../shared/data"; do
    if [ -d "$d/fashion-mnist" ]; then export DENSENET_DATA=$(cd "$d" && pwd); break; fi
  done
fi
END=$(( $(date +%s) + ${GPU_BENCH_BUDGET_S:-$default_budget} ))

if [ "${GPU_BENCH_TINY:-0}" = 1 ]; then
  DEV=(--device cpu --threads 1); FAST=(--no-compile); STEPS=(--steps 1 --warmup 1); D121_STEPS=("${STEPS[@]}")
  SEED=(--batch-size 4 --input-size 1,32,32); D121=(--batch-size 2 --input-size 3,32,32)
  MEM=(--model densenet_bc100_k12 --batch-size 2 --input-size 3,16,16); SMOKE=(--train-subset 64 --test-subset 32 --resize 32 --batch-size 32)
  TRAIN=(--epochs 1 --train-subset 128 --test-subset 64 --resize 32 --batch-size 64); NPROC_DEV=cpu
else
  DEV=(--device cuda); FAST=(); STEPS=(--steps 20 --warmup 3); D121_STEPS=(--steps 8 --warmup 2)
  SEED=(--batch-size 256 --input-size 1,96,96); D121=(--batch-size 256 --input-size 3,224,224)
  MEM=(--model densenet_bc190_k40 --batch-size 64 --input-size 3,32,32); SMOKE=(--train-subset 2048 --test-subset 512 --no-compile)
  TRAIN=(); NPROC_DEV=cuda
fi

part() {  # part NAME CAP_S COMMAND...: run it with the time left (at most CAP_S), stdout -> parts/NAME.json
  local name=$1 cap=$2; shift 2
  local left=$(( END - $(date +%s) )); [ "$left" -lt "$cap" ] && cap=$left
  if [ "$cap" -le 5 ]; then echo "skip $name: no time left"; return; fi
  echo "$(date -u +%H:%M:%S) start $name (at most ${cap}s): $*"
  local start=$(date +%s%N)
  timeout -k 10 "$cap" "$@" > "$WORK/parts/$name.json" 2> >(grep --line-buffered -v '^USDT:' > "$WORK/parts/$name.log")
  local rc=$? ms=$(( ($(date +%s%N) - start) / 1000000 ))
  printf '%s\n' "$rc" "$ms" "$cap" "$*" > "$WORK/parts/$name.meta"  # exit status, milliseconds, cap, command
  echo "$(date -u +%H:%M:%S) done  $name: exit $rc in ${ms} ms"
}

D=("$PY" -m densenet)
if [ "$GPU_BENCH_SET" = long ]; then
  for seed in 0 1 2; do  # a third of the budget each (what the earlier seeds leave, for the last)
    part "long-seed$seed" $(( (END - $(date +%s)) / (3 - seed) )) "${D[@]}" train --preset densenet-fashion-mnist-long \
      --seed "$seed" "${TRAIN[@]}" "${DEV[@]}" "${FAST[@]}" --no-download --no-progress --out "$WORK/runs/long-seed$seed" --json
  done
else
  part seed 130 "${D[@]}" bench train --model d2l_densenet "${SEED[@]}" --baseline naive peer "${STEPS[@]}" \
    "${DEV[@]}" "${FAST[@]}" --json
  part densenet121 170 "${D[@]}" bench train --model densenet121 "${D121[@]}" --baseline peer "${D121_STEPS[@]}" \
    "${DEV[@]}" "${FAST[@]}" --json
  part memory 60 "${D[@]}" bench train "${MEM[@]}" --memory-efficient --baseline plain \
    --no-compile --steps 5 --warmup 1 "${DEV[@]}" --json
  part torchrun 60 "$PY" -m torch.distributed.run --standalone --nproc_per_node 1 -m densenet train \
    --preset d2l-fashion-mnist --epochs 1 "${SMOKE[@]}" "${DEV[@]}" "${FAST[@]}" --no-download --no-progress \
    --out "$WORK/runs/torchrun" --json
  part nccl 30 "$PY" -m torch.distributed.run --standalone --nproc_per_node 1 "$ROOT/scripts/gpu_bench.py" allreduce \
    "$NPROC_DEV"
  part train10 170 "${D[@]}" train --preset d2l-fashion-mnist "${TRAIN[@]}" "${DEV[@]}" "${FAST[@]}" --no-download \
    --no-progress --out "$WORK/runs/train10" --json
fi

"$PY" "$ROOT/scripts/gpu_bench.py" merge "$WORK/parts" > "$DEST/gpu-bench.json"
echo "wrote $DEST/gpu-bench.json"
