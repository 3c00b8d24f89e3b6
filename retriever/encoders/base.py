"""The encoder interface: what a training-free embedding method must provide.

A method says which prompt(s) wrap a text, how many decoder layers must run, and attaches forward hooks
for one batch; from that one pass it returns two vectors per text: its dense embedding, and a
residual-stream vector that the sparse index projects onto the vocabulary. The indexer and the query
engine only ever see this interface, so a new method is one new module registered in
encoders/__init__.py.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch


class StopForward(Exception):
    """Raised by a hook once the last layer a method needs has run: the remaining layers are skipped."""


@dataclass
class Capture:
    """What one batch's forward pass hands back: both vectors, float32, one row per text."""

    dense: torch.Tensor
    residual: torch.Tensor


@dataclass
class BatchInfo:
    """Where things sit in a left-padded batch, for hooks that pool or edit particular positions."""

    mask: torch.Tensor  # (batch, width) 1 for real tokens
    text_mask: torch.Tensor  # (batch, width) 1 for the text's own tokens (not prompt, not padding)
    first: torch.Tensor  # (batch,) column of each row's first real token
    prefix_len: int  # prompt tokens before the text


def special_prefix(tokenizer, text: str) -> list[int]:
    """Token ids the tokenizer puts before any text (a BOS for Gemma, nothing for SmolLM2)."""
    plain = tokenizer(text, add_special_tokens=False).input_ids
    full = tokenizer(text).input_ids
    for start in range(len(full) - len(plain) + 1):
        if full[start:start + len(plain)] == plain:
            return full[:start]
    return []


def split_template(template: str) -> tuple[str, str]:
    """Prefix and suffix around {text}, tokenized apart so a long text can be cut without losing the suffix."""
    if template.count("{text}") != 1:
        raise ValueError(f"a prompt template needs exactly one {{text}}: {template!r}")
    prefix, suffix = template.split("{text}")
    return prefix, suffix


Result = Callable[[], Capture]


class Method(ABC):
    """A training-free embedding method."""

    name: str
    templates: tuple[str | None, ...] = (None,)  # one forward pass per template, vectors averaged

    @abstractmethod
    def parameters(self) -> dict[str, Any]:
        """Everything that changes the vectors: recorded in the index manifest and checked on load."""

    @abstractmethod
    def layers_needed(self, num_layers: int) -> int:
        """How many decoder layers must run; the forward pass stops after them."""

    def check(self, backbone: Any) -> None:
        """Find every module the hooks will need (anatomy.py raises, naming the part, if one is missing)."""
        backbone.anatomy.embeddings  # noqa: B018
        backbone.anatomy.layers  # noqa: B018

    @abstractmethod
    def attach(self, backbone: Any, batch: BatchInfo) -> tuple[list, Result]:
        """Register hooks for one batch; return the handles and a callable giving the batch's Capture."""

    def prompt_ids(self, tokenizer, template: str | None) -> tuple[list[int], list[int]]:
        """Token ids before and after the text for one template."""
        prefix, suffix = split_template(template) if template else ("", "")
        prefix_ids = special_prefix(tokenizer, prefix or "a") + tokenizer(prefix, add_special_tokens=False).input_ids
        suffix_ids = tokenizer(suffix, add_special_tokens=False).input_ids if suffix else []
        return prefix_ids, suffix_ids


def resolve_layers(spec: str | list[int] | tuple[int, ...], num_layers: int) -> list[int]:
    """A layer set by name or explicit 0-based indices: 'all', 'last-half', 'last-third', 'last-quarter',
    'a-b' (inclusive), or a list. Per-model defaults live with the methods; this only parses."""
    named = {"all": 1, "last-half": 2, "last-third": 3, "last-quarter": 4}
    if isinstance(spec, str) and spec in named:
        return list(range(num_layers - num_layers // named[spec] if spec != "all" else 0, num_layers))
    if isinstance(spec, str):
        try:
            low, high = (int(x) for x in spec.split("-"))
        except ValueError:
            raise ValueError(f"layer set must be one of {list(named)}, 'a-b' or a list, not {spec!r}") from None
        layers = list(range(low, high + 1))
    else:
        layers = sorted({int(x) for x in spec})
    if not layers or layers[0] < 0 or layers[-1] >= num_layers:
        raise ValueError(f"layer set {spec!r} is empty or outside 0..{num_layers - 1}")
    return layers
