"""Embedding methods behind one interface, and the registry that maps --method names to them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import RetrieverError
from .base import Capture, Method
from .forward import Encoder, EncodeStats
from .pooling import HiddenStatePooling
from .prompts import PROMPTS

DEFAULT_METHOD = "prompteol"

METHODS: dict[str, tuple[str, Callable[..., Method]]] = {
    "prompteol": ("PromptEOL prompt, last token",
                  lambda layer=None: HiddenStatePooling("prompteol", "last", PROMPTS["prompteol"], layer)),
    "mean": ("mean of the hidden states over the text's tokens, no prompt",
             lambda layer=None: HiddenStatePooling("mean", "mean", None, layer)),
}


def make_method(name: str, **params: Any) -> Method:
    """Build a method by its registered name; unknown parameters fail loudly rather than being ignored."""
    if name not in METHODS:
        raise RetrieverError(f"unknown method '{name}'; known: {', '.join(METHODS)}")
    try:
        return METHODS[name][1](**params)
    except (TypeError, ValueError) as exc:
        raise RetrieverError(f"bad parameters for method '{name}': {exc}") from None


__all__ = ["DEFAULT_METHOD", "METHODS", "Capture", "EncodeStats", "Encoder", "Method", "make_method"]
