#!/usr/bin/env bash
# Makes sure Fashion-MNIST is where `densenet` looks for it (used by `make run`).
# Order: whatever densenet already finds; a sibling ../shared/data copy (linked into the user cache);
# Debian's dataset-fashion-mnist package when apt is usable; finally a verified download.
set -euo pipefail
PY=${1:-.venv/bin/python}
NAME=fashion-mnist
if "$PY" -m densenet data locate "$NAME" >/dev/null 2>&1; then
  echo "$NAME: found at $("$PY" -m densenet data locate "$NAME")"; exit 0
fi
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/densenet/$NAME"
for shared in ../shared/data/$NAME ../../shared/data/$NAME; do
  if [ -f "$shared/train-images-idx3-ubyte.gz" ]; then
    mkdir -p "$CACHE"
    for f in "$shared"/*-ubyte.gz; do ln -sf "$(cd "$(dirname "$f")" && pwd)/$(basename "$f")" "$CACHE/"; done
    echo "$NAME: linked $shared into $CACHE"; exit 0
  fi
done
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "$NAME: installing Debian's dataset-fashion-mnist"
  if (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) >/dev/null 2>&1 \
     && "$PY" -m densenet data locate "$NAME" >/dev/null 2>&1; then
    echo "$NAME: found at $("$PY" -m densenet data locate "$NAME")"; exit 0
  fi
fi
echo "$NAME: downloading"
"$PY" -m densenet data fetch "$NAME"
