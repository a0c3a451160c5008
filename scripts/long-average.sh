#!/usr/bin/env bash
# Checkpoint averaging for the long preset (issue 22), measured where the recipe was chosen: a search run's own
# held-out validation images, never the test set. For a search run trained with --keep-checkpoints K it files,
# beside its record in docs/records/search/long/NAME/:
#   evaluation-validation.json  the last epoch's raw weights with the BatchNorm statistics training left them
#   average-last1.json          the same weights with the statistics re-estimated on the training split
#   average-lastK.json          the mean of the last K epochs' weights, statistics re-estimated, for each K asked
# (all three scored in fp32), and the commands in average-command.txt.
# Usage, from the repository root, once scripts/long-search.sh has trained NAME:  bash scripts/long-average.sh NAME K [K ...]
set -euo pipefail
PY=${PYTHON:-.venv/bin/python}
export DENSENET_DATA=${DENSENET_DATA:-../shared/data}
usage() {
  echo "usage: bash scripts/long-average.sh NAME K [K ...]  (a search record trained with --keep-checkpoints of" \
    "at least the largest K, e.g. densenet-fashion-mnist-seed0-crop-erase-avg 3)" >&2
  exit 2
}
[ $# -ge 2 ] || usage
name=$1; shift
for k in "$@"; do [[ $k =~ ^[1-9][0-9]*$ ]] || usage; done
run=runs/records/$name out=docs/records/search/long/$name
for need in "$run/summary.json" "$out/summary.json"; do
  [ -f "$need" ] || { echo "error: $need is missing; train the variant with scripts/long-search.sh first" >&2; exit 1; }
done
note() { echo "$* # $(date -u +%FT%TZ), git $(git rev-parse --short HEAD)" >> "$out/average-command.txt"; }
: > "$out/average-command.txt"
"$PY" -m densenet evaluate "$run" --split validation --json > "$out/evaluation-validation.json"
note "densenet evaluate $run --split validation --json > evaluation-validation.json"
for k in $(printf '%s\n' 1 "$@" | sort -un); do
  rm -rf "$run-avg$k"  # an earlier try's averaged run directory
  "$PY" -m densenet average "$run" --last "$k" --out "$run-avg$k" --json > "$out/average-last$k.json"
  note "densenet average $run --last $k --out $run-avg$k --json > average-last$k.json"
done
