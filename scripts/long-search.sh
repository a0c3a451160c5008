#!/usr/bin/env bash
# The recipe search behind the densenet-fashion-mnist-long preset (issue 22), on a validation split:
# 5000 training images held out (--val-split 5000, the same draw for every run), the test set never read.
# Every variant starts from the recommended densenet-fashion-mnist preset at 64x64 and trains PROXY_EPOCHS epochs;
# each files its records under docs/records/search/long/<preset>-seed0<tag>/ through scripts/record-runs.sh.
# Usage, from the repository root:  nohup bash scripts/long-search.sh [TAG ...] > runs/long-search.log 2>&1 &
# Without TAGs every variant runs, in the order below. Summarise with: python scripts/search_table.py docs/records/search/long
set -uo pipefail
PROXY_EPOCHS=${PROXY_EPOCHS:-8}
common="--val-split 5000 --epochs $PROXY_EPOCHS --ema 0.999"  # EMA is scored beside the raw weights in every run
declare -A variant=(
  [-crop]="--crop-padding 4"
  [-crop-erase]="--crop-padding 4 --random-erasing 0.25"
  [-crop-erase-ta]="--crop-padding 4 --random-erasing 0.25 --augment trivialaugment"
  [-crop-erase-mixup]="--crop-padding 4 --random-erasing 0.25 --mixup 0.2"
)
order=(-crop -crop-erase -crop-erase-ta -crop-erase-mixup)
[ $# -gt 0 ] && order=("$@")
for tag in "${order[@]}"; do
  [ -n "${variant[$tag]+x}" ] || { echo "unknown variant $tag; known: ${!variant[*]}" >&2; exit 2; }
  RECORDS=docs/records/search/long TAG=$tag EXTRA="$common ${variant[$tag]}" \
    bash scripts/record-runs.sh densenet-fashion-mnist:0
done
