"""Embedding methods behind one interface (base.Method), the forward pass that runs them (forward.Encoder),
and the registry that maps --method names to them (registry.py).

The package's face is lazy, as retriever's is: naming a method or a prompt format loads no torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_NAMES = {
    "BatchInfo": "base", "Capture": "base", "Method": "base", "PROMPT_FORMATS": "prompts",
    "defaults_for": "defaults", "Encoder": "forward", "EncodeStats": "forward",
    "DEFAULT_METHOD": "registry", "EOL": "registry", "METHODS": "registry", "PROMPT_METHODS": "registry",
    "PROMPT_SETS": "registry", "make_method": "registry", "method_names": "registry",
}
__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    if name not in _NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
    globals()[name] = value
    return value
