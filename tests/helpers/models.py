"""Model loading made to fail a test: paths that must answer without a model (a refusal of bad input, a
search that needs no LLM) are tested by patching the names models/loading.py loads every kind through."""

from __future__ import annotations

import pytest


def forbid_llm(monkeypatch) -> None:
    """Loading the LLM fails the test."""
    import retriever.models.backbones as backbones

    monkeypatch.setattr(backbones, "load_backbone", lambda *a, **k: pytest.fail("the LLM was loaded"))


def forbid_models(monkeypatch) -> None:
    """Loading a model of any kind, or converting one, fails the test."""
    import retriever.models.backbones as backbones
    import retriever.models.sentence as sentence

    def refuse(*args, **kwargs):
        pytest.fail("a model was loaded (or converted)")

    for module, name in ((backbones, "load_backbone"), (backbones, "load_tokenizer"),
                         (backbones, "_gguf_to_cache"), (sentence, "load_sentence_encoder")):
        monkeypatch.setattr(module, name, refuse)
