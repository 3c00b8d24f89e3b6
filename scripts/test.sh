#!/usr/bin/env bash
# Set up, lint, and run the test suite (offline). Extra arguments go to pytest: `-m slow` for slow tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
.venv/bin/ruff check retriever tests scripts
.venv/bin/python -m pytest -q "$@"
