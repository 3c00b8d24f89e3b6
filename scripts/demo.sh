#!/usr/bin/env bash
# The main job end to end on the embedded default: set up, index the packaged demo corpus with the
# packaged default model, and run a few searches (one as JSON).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
R=.venv/bin/retriever
$R index retriever/data/demo.jsonl --index indexes/demo --overwrite
$R info --index indexes/demo
$R search --index indexes/demo -k 3 "why does lava come out of a mountain" "how do bees make honey"
$R search --index indexes/demo -k 3 --mode sparse "fix a flat bike tire"
$R search --index indexes/demo -k 3 --mode lexical "insulin and blood sugar"
$R search --index indexes/demo -k 1 --json "first man on the moon"
