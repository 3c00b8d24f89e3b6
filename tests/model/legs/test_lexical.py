"""On a full index of the default model, --mode lexical answers without loading the LLM."""

from __future__ import annotations

import pytest


def test_lexical_mode_on_a_full_index_skips_the_model(demo_index, monkeypatch):
    expected = demo_index.search("honey bees", k=5, mode="lexical")
    from retriever.models.encoders import Encoder

    monkeypatch.setattr(Encoder, "encode", lambda *a, **k: pytest.fail("LLM ran"))
    again = demo_index.search("honey bees", k=5, mode="lexical")
    assert [h.id for h in again] == [h.id for h in expected] and again[0].id == "bees"
    assert all(set(h.scores) == {"lexical"} for h in again)


