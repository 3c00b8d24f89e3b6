"""The LangChain retriever over a BM25-only index (no model): what LangChain's own interface returns for
invoke, batch and ainvoke equals the engine's search, with the document's text, id, scores and metadata."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("langchain_core", reason="pip install 'retriever[langchain]'")

from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever

from retriever import Retriever
from retriever.integrations.langchain import HybridRetriever

from ...conftest import DEMO


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    return Retriever.build(DEMO, tmp_path_factory.mktemp("lc") / "bm25", legs=("lexical",))


def test_invoke_returns_the_engines_hits_as_langchain_documents(index):
    retriever = HybridRetriever.from_index(index.path, k=3, mode="lexical")
    assert isinstance(retriever, BaseRetriever)
    docs = retriever.invoke("how do bees make honey")
    hits = index.search("how do bees make honey", k=3, mode="lexical")
    assert [d.id for d in docs] == [h.id for h in hits] and all(isinstance(d, Document) for d in docs)
    for doc, hit in zip(docs, hits, strict=True):
        stored = index.document(hit.id)
        assert doc.page_content == stored["text"]
        assert doc.metadata == {**stored["metadata"], "score": hit.score, "scores": hit.scores, "rank": hit.rank,
                                "title": hit.title}


def test_batch_and_ainvoke_answer_each_query_as_invoke_does(index):
    retriever = HybridRetriever.from_index(index.path, k=2, mode="lexical")
    queries = ["volcano eruption", "bicycle repair", "honey bees"]
    batched = retriever.batch(queries)
    assert [[d.id for d in docs] for docs in batched] == [[d.id for d in retriever.invoke(q)] for q in queries]
    assert [d.id for d in asyncio.run(retriever.ainvoke("volcano eruption"))] == [d.id for d in batched[0]]


def test_a_filter_and_bad_arguments(index):
    only = HybridRetriever.from_index(index.path, k=5, mode="lexical", filter={"topic": "volcano"})
    docs = only.invoke("volcano lava ash")
    assert docs and {d.metadata["topic"] for d in docs} == {"volcano"}
    with pytest.raises(ValueError, match="no mode 'dense'"):
        HybridRetriever.from_index(index.path, mode="dense")
    with pytest.raises(ValueError, match="k must be at least 1"):
        HybridRetriever.from_index(index.path, k=0)
    with pytest.raises(Exception, match="unknown operator"):
        HybridRetriever.from_index(index.path, filter={"topic": {"zz": 1}})


def test_in_an_index_of_passages_page_content_is_the_passage_that_scored(tmp_path):
    text = "Unpack the pump and check the parts. " * 40 + "To reset the pump, hold the button."
    long = {"_id": "guide", "text": text, "metadata": {"kind": "manual"}}
    index = Retriever.build([long, {"_id": "note", "text": "Pumps need oil."}], tmp_path / "p", legs=("lexical",),
                            passage_tokens=32, passage_overlap=8)
    (doc, *_) = HybridRetriever.from_index(index.path, k=2, mode="lexical").invoke("reset the pump")
    hit = index.search("reset the pump", k=1, mode="lexical")[0]
    assert doc.id == "guide" and doc.metadata["passage"] == hit.passage and doc.metadata["kind"] == "manual"
    assert doc.page_content == long["text"][hit.passage["start"]:hit.passage["end"]]
    assert "To reset the pump" in doc.page_content and len(doc.page_content) < len(long["text"]) / 4
