#!/usr/bin/env bash
# Trains preset runs one after another and files each finished run's record under docs/records/runs/<name>/:
# summary.json, config.json, metrics.jsonl, model.json, preset.json (for a preset file), the command line and the machine (lscpu, bf16/AMX flags),
# and vmstat.log: the machine's load, a line a minute while the run trained.
# Usage, from the repository root:  nohup bash scripts/record-runs.sh PRESET:SEED [PRESET:SEED ...] > run.log 2>&1 &
# PRESET is a built-in preset's name or a preset file (its records are named after the file).
# PYTHON defaults to .venv/bin/python; DENSENET_DATA defaults to ../shared/data; EXTRA adds train flags;
# RECORDS files the records elsewhere (docs/records/search/<search>), TAG names the variant: <preset>-seed<N><TAG>.
set -uo pipefail
PY=${PYTHON:-.venv/bin/python}
export DENSENET_DATA=${DENSENET_DATA:-../shared/data}
# Passive OpenMP threads sleep at barriers instead of spinning, so a run shares the CPU gracefully with other work.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
vmstat_pid=
trap '[ -z "$vmstat_pid" ] || kill "$vmstat_pid" 2> /dev/null' EXIT  # no vmstat outlives a killed queue
for spec in "$@"; do
  preset=${spec%%:*}; seed=${spec##*:}
  name=$(basename "${preset%.json}")-seed$seed${TAG:-}  # a preset file's name without folder and .json
  run=runs/records/$name
  out=${RECORDS:-docs/records/runs}/$name
  cmd="OMP_WAIT_POLICY=$OMP_WAIT_POLICY densenet train --preset $preset --seed $seed --out $run --no-progress"
  cmd+=" ${EXTRA:-}"
  # The code the run starts with ("-dirty": with uncommitted changes). Modules the run imports later could
  # still come from a newer working tree, so change src/ only between runs of a queue.
  commit=$(git describe --always --dirty)
  echo "$(date -u +%H:%M:%S) start $name: $cmd (load $(cut -d' ' -f1-3 /proc/loadavg))"
  mkdir -p "$out"
  [ ! -f "$preset" ] || cp "$preset" "$out/preset.json"  # a preset file (an ablation's) lives in ignored runs/
  { lscpu | grep -E '^(Model name|CPU\(s\)|Thread\(s\) per core|Flags):'
    found=$(lscpu | grep -o -w -E 'avx512_bf16|amx_bf16|amx_int8' | sort -u | tr '\n' ' ')
    echo "bf16/AMX flags: ${found:-none of avx512_bf16, amx_bf16, amx_int8}"; } > "$out/lscpu.txt"
  # What else the machine did during the run, a line a minute (runnable processes, idle and stolen CPU time; the
  # first line averages since boot), so a run slower than its siblings is explained by a measurement, not a guess.
  if command -v vmstat > /dev/null; then vmstat -t 60 > "$out/vmstat.log" & vmstat_pid=$!; fi
  # shellcheck disable=SC2086
  "$PY" -m densenet train --preset "$preset" --seed "$seed" --out "$run" --no-progress ${EXTRA:-} \
    > "$out/train.log" 2> >(grep --line-buffered -v '^USDT:' > "$out/train.err")
  status=$?
  if [ -n "$vmstat_pid" ]; then kill "$vmstat_pid" 2> /dev/null; wait "$vmstat_pid" 2> /dev/null; vmstat_pid=; fi
  printf '%s\n' "$cmd" > "$out/command.txt"
  echo "started $(date -u -r "$out/lscpu.txt" +%FT%TZ), finished $(date -u +%FT%TZ), exit $status," \
    "git $commit at the start" >> "$out/command.txt"
  for f in summary.json config.json metrics.jsonl model.json; do cp "$run/$f" "$out/" 2>/dev/null; done
  echo "$(date -u +%H:%M:%S) done  $name: exit $status"
done
echo "$(date -u +%H:%M:%S) all done"
