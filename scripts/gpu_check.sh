#!/usr/bin/env bash
# The GPU check, on a CUDA machine that has PyTorch and transformers but no network: installs the wheels
# carried in DATA (what `python scripts/gpu_check.py prepare` wrote, default .gpu) into a temporary folder and
# runs `scripts/gpu_check.py check` within 8 minutes. Extra arguments go to the check (--docs N, --quick).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-.gpu}
PY=${PYTHON:-python3}
SITE=${TMPDIR:-/tmp}/retriever-gpu-site
"$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$DATA"/wheels/*.whl
export PYTHONPATH="$PWD:$SITE${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
exec timeout 480 "$PY" scripts/gpu_check.py check --data "$DATA" "${@:2}"
