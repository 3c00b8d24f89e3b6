#!/usr/bin/env bash
# Set up a virtual environment in .venv with everything retriever and its tests need, and the default
# model preset. Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
pip() { .venv/bin/python -m pip "$@"; }
quiet=(-q --disable-pip-version-check)
# torch first and pinned: an unpinned torch on a machine without it pulls a multi-GB CUDA build.
.venv/bin/python -c "import torch" 2>/dev/null || pip install "${quiet[@]}" torch==2.13.0
pip install "${quiet[@]}" -e ".[dev]"
.venv/bin/python - <<'PY'
from retriever.models.presets import DEFAULT_DENSE_MODEL, DEFAULT_MODEL, install_preset, is_installed
for name in (DEFAULT_MODEL, DEFAULT_DENSE_MODEL):  # the LLM, and the trained dense leg (--dense-model)
    if not is_installed(name):
        install_preset(name, quiet=True)
PY
echo "setup done: $(.venv/bin/retriever --version)"
