#!/usr/bin/env bash
# README's "A CheXNet-style run", end to end on synthetic data, every figure filed under docs/records/chexnet-example/.
#   1. pretrain a small DenseNet on single-object scenes (the stand-in for ImageNet weights, which are not offline);
#   2. fine-tune it on multi-label scenes (several objects per picture, some with none) with --init-from;
#   3. evaluate (per-class AUROC), with and without --tta flip; 4. explain one test picture; 5. export to ONNX.
# Usage, from the repository root:  nohup bash scripts/chexnet-example.sh > chexnet.log 2>&1 &
# PYTHON defaults to .venv/bin/python; WORK (the data and runs, not committed) defaults to runs/chexnet-example.
set -euo pipefail
PY=${PYTHON:-.venv/bin/python}
WORK=${WORK:-runs/chexnet-example}
OUT=${OUT:-docs/records/chexnet-example}
COUNT=${COUNT:-600}; PRE_EPOCHS=${PRE_EPOCHS:-4}; EPOCHS=${EPOCHS:-3}; SIZE=${SIZE:-32}  # the scenes are 64 px
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
MODEL=(--model d2l_densenet --model-kwargs '{"stem": "cifar", "block_config": [3, 3, 3], "growth_rate": 12, "num_init_features": 24}')
COMMON=(--dataset csv --resize "$SIZE" --rrc-scale 0.5 --batch-size 32 --momentum 0.9 --nesterov --schedule cosine
        --weight-decay 1e-4 --no-progress)
densenet() { echo "+ densenet $*" >> "$OUT/commands.txt"; "$PY" -m densenet "$@"; }

rm -rf "$WORK" && mkdir -p "$WORK" "$OUT" && : > "$OUT/commands.txt"
{ lscpu | grep -E '^(Model name|CPU\(s\)|Thread\(s\) per core|Flags):'
  found=$(lscpu | grep -o -w -E 'avx512_bf16|amx_bf16|amx_int8' | sort -u | tr '\n' ' ' || true)
  echo "bf16/AMX flags: ${found:-none of avx512_bf16, amx_bf16, amx_int8}"; } > "$OUT/lscpu.txt"
echo "started $(date -u +%FT%TZ), git $(git rev-parse --short HEAD)" >> "$OUT/commands.txt"

echo "+ python -m densenet.data.synthetic scenes $WORK/objects --count $COUNT --size 64 --seed 0" >> "$OUT/commands.txt"
"$PY" -m densenet.data.synthetic scenes "$WORK/objects" --count "$COUNT" --size 64 --seed 0
echo "+ python -m densenet.data.synthetic scenes $WORK/findings --count $COUNT --size 64 --max-objects 3 --seed 1" \
  >> "$OUT/commands.txt"
"$PY" -m densenet.data.synthetic scenes "$WORK/findings" --count "$COUNT" --size 64 --max-objects 3 --seed 1

densenet train "${MODEL[@]}" "${COMMON[@]}" --data-dir "$WORK/objects" --labels "$WORK/objects/labels.csv" \
  --epochs "$PRE_EPOCHS" --lr 0.1 --out "$WORK/pretrained" --json > "$WORK/pretrained.json"
densenet train "${MODEL[@]}" "${COMMON[@]}" --data-dir "$WORK/findings" --labels "$WORK/findings/labels.csv" \
  --init-from "$WORK/pretrained" --pos-weight auto --epochs "$EPOCHS" --lr 0.05 --backbone-lr-scale 0.5 \
  --out "$WORK/findings-run" --json > "$WORK/findings-run.json"
densenet evaluate "$WORK/findings-run" --json > "$OUT/evaluation.json"
densenet evaluate "$WORK/findings-run" --tta flip --json > "$OUT/evaluation-tta.json"
# the first test picture with two or more findings: one heatmap per finding it shows
row=$(awk -F, 'NR > 1 && $3 ~ /^test/ && index($2, "|") > 0 {print $1 "," $2; exit}' "$WORK/findings/labels.csv")
picture=${row%%,*}
read -r -a classes <<< "$(echo "${row#*,}" | tr '|' '\n' | sort -u | sed 's/^/--class /' | tr '\n' ' ')"
densenet explain "$WORK/findings-run" "$WORK/findings/$picture" "${classes[@]}" --out "$OUT" --json > "$OUT/explain.json"
grep -F "$picture" "$WORK/findings/boxes.csv" > "$OUT/explain-boxes.csv"
densenet export "$WORK/findings-run" --format onnx --output "$WORK/findings.onnx" --check --json > "$OUT/export.json"

for run in pretrained findings-run; do
  mkdir -p "$OUT/$run"
  for f in summary.json config.json metrics.jsonl model.json; do cp "$WORK/$run/$f" "$OUT/$run/"; done
done
cp "$WORK/findings-run/roc_curves.png" "$OUT/"
echo "finished $(date -u +%FT%TZ)" >> "$OUT/commands.txt"
echo "done"
