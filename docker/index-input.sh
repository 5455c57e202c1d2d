#!/bin/sh
# The compose indexer's entry point. With arguments it is `glint ARGS` (so `compose run indexer
# build ...` builds anything). Without, it builds the mounted input folder into /indexes/docs:
# vectors.npy, with ids.npy and payloads.jsonl when they are there.
#   GLINT_INDEX_SPEC (default hnsw), GLINT_METRIC (default cos), GLINT_INPUT_DIR (/input),
#   GLINT_OUT (/indexes/docs)
set -eu
if [ "$#" -gt 0 ]; then
    exec glint "$@"
fi
input="${GLINT_INPUT_DIR:-/input}"
set -- build "$input/vectors.npy" --index "${GLINT_INDEX_SPEC:-hnsw}" \
    --metric "${GLINT_METRIC:-cos}" --out "${GLINT_OUT:-/indexes/docs}" --overwrite
if [ -e "$input/ids.npy" ]; then set -- "$@" --ids "$input/ids.npy"; fi
if [ -e "$input/payloads.jsonl" ]; then set -- "$@" --payloads "$input/payloads.jsonl"; fi
exec glint "$@"
