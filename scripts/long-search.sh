#!/usr/bin/env bash
# The recipe search behind the densenet-fashion-mnist-long preset (issue 22), on a validation split:
# 5000 training images held out (--val-split 5000, the same draw for every run), the test set never read.
# Every variant starts from the recommended densenet-fashion-mnist preset at 64x64 and trains PROXY_EPOCHS epochs;
# each files its records under docs/records/search/long/<preset>-seed0<tag>/ through scripts/record-runs.sh.
# -crop-erase-avg, added after the preset was chosen, is -crop-erase again with its last 3 checkpoints kept, and
# scripts/long-average.sh scores their mean (checkpoint averaging, the next ingredient to try; README). -long-avg then
# trains the long preset's own recipe for its full 45 epochs on the same split, to score averaging at full length.
# Usage, from the repository root:  nohup bash scripts/long-search.sh [TAG ...] > runs/long-search.log 2>&1 &
# Without TAGs every variant runs, in the order below. Then `PYTHONPATH=src python -m tests.figures --write` tables them
# in the README (its long-search and long-average blocks).
set -uo pipefail
PROXY_EPOCHS=${PROXY_EPOCHS:-8}
common="--val-split 5000"
proxy="--epochs $PROXY_EPOCHS --ema 0.999"  # EMA is scored beside the raw weights in every proxy run
declare -A variant=(
  [-crop]="$proxy --crop-padding 4"
  [-crop-erase]="$proxy --crop-padding 4 --random-erasing 0.25"
  [-crop-erase-ta]="$proxy --crop-padding 4 --random-erasing 0.25 --augment trivialaugment"
  [-crop-erase-mixup]="$proxy --crop-padding 4 --random-erasing 0.25 --mixup 0.2"
  [-crop-erase-avg]="$proxy --crop-padding 4 --random-erasing 0.25 --keep-checkpoints 3"
  # The long preset's own recipe at its full length (45 epochs), its last 10 checkpoints kept for averaging. No EMA:
  # model.safetensors then holds the raw weights that the averages are compared with. tests/test_long_search_script.py
  # checks that these flags give exactly the preset's configuration.
  [-long-avg]="--epochs 45 --crop-padding 4 --random-erasing 0.25 --keep-checkpoints 10"
)
# Variants that keep their last checkpoints: scripts/long-average.sh then scores the mean of the last K epochs, each K.
declare -A average=([-crop-erase-avg]=3 [-long-avg]="3 10")
order=(-crop -crop-erase -crop-erase-ta -crop-erase-mixup -crop-erase-avg -long-avg)
[ $# -gt 0 ] && order=("$@")
for tag in "${order[@]}"; do
  [ -n "${variant[$tag]+x}" ] || { echo "unknown variant $tag; known: ${!variant[*]}" >&2; exit 2; }
  RECORDS=docs/records/search/long TAG=$tag EXTRA="$common ${variant[$tag]}" \
    bash scripts/record-runs.sh densenet-fashion-mnist:0
  if [ -n "${average[$tag]+x}" ]; then
    read -ra ks <<< "${average[$tag]}"  # one argument per K
    bash scripts/long-average.sh "densenet-fashion-mnist-seed0$tag" "${ks[@]}"
  fi
done
