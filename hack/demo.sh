#!/usr/bin/env bash
# `make demo`: index a real corpus nobody in this project wrote (Debian's common-licenses) plus this
# project's docs/, or the folder given as $1, then run three searches and print the hits.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
semantik="$root/.venv/bin/semantik"
demo_home="${SEMANTIK_DEMO_HOME:-$HOME/.cache/semantik/demo}"
export SEMANTIK_DATA_DIR="${SEMANTIK_DATA_DIR:-$demo_home/data}"
export HF_HUB_OFFLINE=1

if [[ $# -gt 0 && -n "$1" ]]; then
  corpus="$1"
  queries=("${@:2}")
else
  # One folder holds both sources; a copy, because the indexer never follows links out of its root.
  corpus="$demo_home/corpus"
  mkdir -p "$corpus"
  rm -rf "$corpus/common-licenses" "$corpus/semantik-docs"
  cp -r /usr/share/common-licenses "$corpus/common-licenses"
  cp -r "$root/docs" "$corpus/semantik-docs"
  queries=()
fi
if [[ ${#queries[@]} -eq 0 ]]; then
  queries=(
    "what must I include in a NOTICE file when I redistribute"
    "may I link this library into a proprietary program"
    "how do I create an API key for the gateway"
  )
fi

echo "== Indexing $corpus into collection 'demo' (data in $SEMANTIK_DATA_DIR)"
"$semantik" index "$corpus" --collection demo
for query in "${queries[@]}"; do
  echo
  echo "== semantik search demo \"$query\" -k 3"
  "$semantik" search demo "$query" -k 3
done
