"""The registry that maps --method names to embedding methods; any prompt method also exists with a `tp-`
prefix (the same method with Token Prepending). Naming the methods loads no torch: a method's class is
imported when one is made.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ...errors import RetrieverError
from .prompts import METAEOL_TEMPLATES, PROMPTS

if TYPE_CHECKING:
    from .base import Method


def _lazy(module: str, name: str) -> Callable[..., Method]:
    """The method class `name` of module `module` here, imported when first called."""
    def make(*args: Any, **kwargs: Any) -> Method:
        return getattr(importlib.import_module(f".{module}", __package__), name)(*args, **kwargs)
    return make


HiddenStatePooling = _lazy("pooling", "HiddenStatePooling")
ChatPromptPooling = _lazy("chat", "ChatPromptPooling")
ValueAggregation = _lazy("values", "ValueAggregation")
AlignedWeightedValues = _lazy("values", "AlignedWeightedValues")
TokenPrepending = _lazy("prepending", "TokenPrepending")

DEFAULT_METHOD = "prompteol"
EOL = (PROMPTS["prompteol"],)
PROMPT_SETS = {**{name: (template,) for name, template in PROMPTS.items()}, "metaeol": METAEOL_TEMPLATES}


def _prompt_set(prompt: str) -> tuple[str, ...]:
    if prompt not in PROMPT_SETS:
        raise ValueError(f"prompt must be one of {list(PROMPT_SETS)}, not {prompt!r}")
    return PROMPT_SETS[prompt]


METHODS: dict[str, tuple[str, Callable[..., Method]]] = {
    "prompteol": ("PromptEOL prompt, last token",
                  lambda layer=None: HiddenStatePooling("prompteol", "last", EOL, layer)),
    "cot": ("Pretended chain-of-thought prompt, last token",
            lambda layer=None: HiddenStatePooling("cot", "last", (PROMPTS["cot"],), layer)),
    "ke": ("Knowledge-enhancement prompt, last token",
           lambda layer=None: HiddenStatePooling("ke", "last", (PROMPTS["ke"],), layer)),
    "metaeol": ("MetaEOL: mean of 8 task prompts' last tokens (8 forward passes per text)",
                lambda layer=None: HiddenStatePooling("metaeol", "last", METAEOL_TEMPLATES, layer)),
    "promptreps": ("PromptReps: 'use one most important word to represent the passage' through the instruct "
                   "model's chat template, the answer begun; last token",
                   lambda layer=None: ChatPromptPooling("promptreps", layer)),
    "mean": ("mean of the hidden states over the text's tokens, no prompt",
             lambda layer=None: HiddenStatePooling("mean", "mean", (None,), layer)),
    "last": ("last token's hidden state, no prompt",
             lambda layer=None: HiddenStatePooling("last", "last", (None,), layer)),
    "va": ("Value Aggregation: value projections, mean over tokens and a layer set, no prompt",
           lambda layers="last-half", tokens="all": ValueAggregation(layers, tokens)),
    "aligned-wva": ("Aligned weighted values: attention outputs at the last token of a prompt (PromptEOL's; "
                    "prompt=cot, ke or metaeol), summed over a layer set",
                    lambda layers="all", prompt="prompteol": AlignedWeightedValues(layers, _prompt_set(prompt))),
}
PROMPT_METHODS = ("prompteol", "cot", "ke", "metaeol", "aligned-wva")


def method_names() -> list[str]:
    return [*METHODS, *(f"tp-{m}" for m in PROMPT_METHODS)]


def make_method(name: str, **params: Any) -> Method:
    """Build a method by its registered name; unknown parameters fail loudly rather than being ignored.

    tp-<method> takes tp_start and tp_exit besides the inner method's parameters.
    """
    inner_name = name.removeprefix("tp-")
    if inner_name not in METHODS or (name.startswith("tp-") and inner_name not in PROMPT_METHODS):
        raise RetrieverError(f"unknown method '{name}'; known: {', '.join(method_names())}")
    params = dict(params)
    tp = {k: params.pop(k) for k in ("tp_start", "tp_exit") if k in params}
    try:
        method = METHODS[inner_name][1](**params)
        if name.startswith("tp-"):
            method = TokenPrepending(method, start=tp.get("tp_start", 1), exit=tp.get("tp_exit"))
        elif tp:
            raise TypeError(f"{sorted(tp)} apply to tp- methods only")
        return method
    except (TypeError, ValueError) as exc:
        raise RetrieverError(f"bad parameters for method '{name}': {exc}") from None


