"""STS evaluation of the embedding methods (`retriever eval sts`): Spearman of each method's cosine with
the gold scores, and what its encoding costs, on the LLM alone (no index)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import RetrieverError
from ..models.encoders import Encoder, defaults_for, make_method, method_names
from ..models.kinds import LLM
from ..models.loading import Models
from ..models.presets import DEFAULT_MODEL
from .evaluate import read_sts, sts_spearman


def evaluate_sts(files: Sequence[str | Path], methods: Sequence[str] = ("prompteol",), *,
                 model: str = DEFAULT_MODEL, backbone: Any = None, dtype: str = "auto",
                 max_tokens: int = 512, quiet: bool = True, device: str = "auto",
                 batch_tokens: int | None = None) -> list[dict[str, Any]]:
    """Spearman x100 of each method on each STS file, with its encoding cost; one row per method and file.

    Each method runs with the model's measured defaults (encoders/defaults.py), as an index would. Every
    file is read and every method name checked before the model loads: a typo costs no load.
    """
    for file in files:
        read_sts(file)
    unknown = [name for name in methods if name not in method_names()]
    if unknown or not methods:
        raise RetrieverError(f"unknown method {', '.join(map(repr, unknown)) or '(none given)'}; "
                             f"known: {', '.join(method_names())}")
    backbone = Models(backbone).load(frozenset({LLM}), {LLM: (model, dtype)}, device, quiet).backbone
    warm_up = list(dict.fromkeys(read_sts(files[0])[0]))[:64]  # the first batch's kernels, not counted
    rows = []
    for name in methods:
        params = defaults_for(backbone.name, name)
        encoder = Encoder(backbone, make_method(name, **params), max_tokens, batch_tokens)
        encoder.encode(warm_up)
        for file in files:
            result = sts_spearman(lambda texts, e=encoder: e.encode(texts).dense, file)
            rows.append({"method": name, "params": params, "file": str(file), "model": backbone.name, **result})
    return rows
