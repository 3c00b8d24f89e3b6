"""Layer choices per packaged model, measured on STS-B dev by scripts/tune_layers.py (docs/methods.md).

A method's generic defaults (the last layer, the last half of the layers, TP over layers 1..7/32 of the
depth) come from papers on 7B models; small models put their best layers elsewhere. A model without an
entry here keeps the generic defaults. An index stores the parameters it was built with, so editing this
table never changes what an existing index does.
"""

from __future__ import annotations

from typing import Any

# Adopted only where the best setting on STS-B dev beats the generic one there and does not lose on SICK-R
# dev (docs/methods.md has both figures for every method).
MODEL_DEFAULTS: dict[str, dict[str, dict[str, Any]]] = {
    "smollm2-135m": {
        "mean": {"layer": 1},  # 70.09 / 59.67 vs the last layer 54.15 / 52.19
        "last": {"layer": 29},  # 40.96 / 46.99 vs the last layer 39.98 / 45.75
        "va": {"layers": "23-23"},  # 73.75 / 64.12 vs last-half 66.45 / 58.82
        "aligned-wva": {"layers": "21-27"},  # 76.56 / 68.30 vs all 75.90 / 68.26
        "tp-prompteol": {"tp_start": 2, "tp_exit": 7, "layer": 28},  # 73.12 / 66.77 vs 1, 7, 30: 63.07 / 62.51
        "metaeol": {"layer": 28},  # 77.28 / 68.91 vs the last layer 76.03 / 68.61
    },
    "gemma3-270m": {
        "mean": {"layer": 17},  # 62.51 / 52.57 vs the last layer 53.85 / 46.79
        "last": {"layer": 16},  # 52.59 / 50.04 vs the last layer 50.89 / 48.76
        "va": {"layers": "0-15"},  # 68.43 / 59.50 vs last-half 62.61 / 53.89
        "aligned-wva": {"layers": "15-15"},  # 70.49 / 66.88 vs all 59.45 / 59.75
    },
}


def defaults_for(model: str, method: str) -> dict[str, Any]:
    """The measured parameters of method on model ({} when none were measured)."""
    return dict(MODEL_DEFAULTS.get(model, {}).get(method, {}))
