"""The encoder interface: what a training-free embedding method must provide.

A method says which prompt(s) wrap a text, how many decoder layers must run, and attaches forward hooks
for one batch; from that one pass it returns two vectors per text: its dense embedding, and a
residual-stream vector that the sparse index projects onto the vocabulary. The indexer and the query
engine only ever see this interface, so a new method is one new module registered in
encoders/__init__.py.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .prompts import normalize, normalize_split


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
    marks: torch.Tensor | None = None  # (batch,) column of each row's marked token (Wrapped.mark), if any


@dataclass
class Wrapped:
    """One model input: token ids, the span [start, end) of the text's own tokens in them, and a position
    a method marks for its hooks (Token Prepending's placeholder)."""

    ids: list[int]
    start: int
    end: int
    mark: int | None = None


def special_prefix(tokenizer, text: str) -> list[int]:
    """Token ids the tokenizer puts before any text (a BOS for Gemma, nothing for SmolLM2)."""
    plain = tokenizer(text, add_special_tokens=False).input_ids
    full = tokenizer(text).input_ids
    for start in range(len(full) - len(plain) + 1):
        if full[start:start + len(plain)] == plain:
            return full[:start]
    return []


def split_template(template: str) -> tuple[str, str]:
    """The prompt before and after {text}."""
    if template.count("{text}") != 1:
        raise ValueError(f"a prompt template needs exactly one {{text}}: {template!r}")
    prefix, suffix = template.split("{text}")
    return prefix, suffix


def tokenize_whole(tokenizer, prefix: str, texts: Sequence[str], suffix: str, lead: list[int],
                   whole: bool = True) -> list[Wrapped]:
    """Each text inside its prompt tokenized as one string, as the papers feed it (a text's last '.' and
    the closing quote become one token where the vocabulary has '."'), after lead (ids put before it).

    The text's span is the tokens that overlap its characters. whole=False (the split prompt format), or a
    tokenizer without character offsets (a slow one), tokenizes prompt and text apart instead.
    """
    strings = [prefix + t + suffix for t in texts]
    if not strings:
        return []
    if not whole:
        return _tokenize_apart(tokenizer, prefix, texts, suffix, lead)
    try:
        encoded = tokenizer(strings, add_special_tokens=False, return_offsets_mapping=True)
    except NotImplementedError:
        return _tokenize_apart(tokenizer, prefix, texts, suffix, lead)
    out = []
    for text, ids, offsets in zip(texts, encoded.input_ids, encoded.offset_mapping, strict=True):
        low, high = len(prefix), len(prefix) + len(text)
        inside = [i for i, (s, e) in enumerate(offsets) if s < high and e > low]
        start, end = (inside[0], inside[-1] + 1) if inside else (len(ids), len(ids))
        out.append(Wrapped(lead + ids, len(lead) + start, len(lead) + end))
    return out


def _tokenize_apart(tokenizer, prefix: str, texts: Sequence[str], suffix: str, lead: list[int]) -> list[Wrapped]:
    before = lead + (tokenizer(prefix, add_special_tokens=False).input_ids if prefix else [])
    after = tokenizer(suffix, add_special_tokens=False).input_ids if suffix else []
    bodies = tokenizer(list(texts), add_special_tokens=False).input_ids
    return [Wrapped(before + b + after, len(before), len(before) + len(b)) for b in bodies]


Result = Callable[[], Capture]


class Method(ABC):
    """A training-free embedding method."""

    name: str
    templates: tuple[str | None, ...] = (None,)  # one forward pass per template, vectors averaged
    prompt_format: str = "published"  # PROMPT_FORMATS

    @abstractmethod
    def parameters(self) -> dict[str, Any]:
        """Everything that changes the vectors: recorded in the index manifest and checked on load."""

    def resolve(self, num_layers: int) -> None:
        """Turn defaults that depend on the model's depth into numbers, so parameters() records the layers
        the vectors came from (an index stores them, not None). Nothing to resolve by default."""
        return None

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

    def normalize(self, text: str) -> str:
        """A text as the method's papers feed it into their prompt (prompts.normalize); as is without one."""
        if self.templates[0] is None:
            return text
        return normalize(text) if self.prompt_format == "published" else normalize_split(text)

    def wrap(self, tokenizer, template: str | None, texts: Sequence[str]) -> list[Wrapped]:
        """Model inputs for texts (already normalised and cut to the budget) under one template: the whole
        prompt tokenized as one string, after the tokens the tokenizer puts before any text (a BOS)."""
        prefix, suffix = split_template(template) if template else ("", "")
        return tokenize_whole(tokenizer, prefix, texts, suffix, special_prefix(tokenizer, prefix or "a"),
                              whole=self.prompt_format == "published")


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
