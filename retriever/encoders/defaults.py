"""Layer choices per packaged model, measured on STS-B dev by scripts/tune_layers.py (docs/methods.md).

A method's generic defaults (the last layer, the last half of the layers, TP over layers 1..7/32 of the
depth) come from papers on 7B models; small models put their best layers elsewhere. A model without an
entry here keeps the generic defaults. An index stores the parameters it was built with, so editing this
table never changes what an existing index does.
"""

from __future__ import annotations

from typing import Any

MODEL_DEFAULTS: dict[str, dict[str, dict[str, Any]]] = {}


def defaults_for(model: str, method: str) -> dict[str, Any]:
    """The measured parameters of method on model ({} when none were measured)."""
    return dict(MODEL_DEFAULTS.get(model, {}).get(method, {}))
