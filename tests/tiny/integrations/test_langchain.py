"""The LangChain retriever in its default, hybrid mode over an index of every leg (the tiny model)."""

from __future__ import annotations

import pytest

pytest.importorskip("langchain_core", reason="pip install 'retriever[langchain]'")

from retriever import Retriever
from retriever.integrations.langchain import HybridRetriever

from ...conftest import DEMO


def test_the_default_is_hybrid_with_every_legs_scores(tmp_path, tiny_backbone):
    index = Retriever.build(DEMO, tmp_path / "idx", backbone=tiny_backbone)
    retriever = HybridRetriever.from_index(index.path)
    docs = retriever.invoke("how do bees make honey")
    assert [d.id for d in docs] == [h.id for h in index.search("how do bees make honey", k=4)]
    assert all(set(d.metadata["scores"]) == set(index.searcher.legs) for d in docs)
    assert [[d.id for d in found] for found in retriever.batch(["volcano", "bicycle repair"])] == \
        [[h.id for h in hits] for hits in index.search_batch(["volcano", "bicycle repair"], k=4)]
