"""BM25's maths without any model: the leg's scores equal bm25s's own, and its analyzer stems, lowercases
and drops stopwords."""

from __future__ import annotations

import json

import bm25s
import numpy as np
import pytest
import Stemmer

from retriever.errors import RetrieverError
from retriever.legs.lexical.config import LexicalConfig
from retriever.legs.lexical.leg import Analyzer, LexicalBuilder, LexicalQueries

from ...conftest import DEMO

QUERIES = ["why does lava come out of a mountain", "Bees making honey in hives", "the of and",
           "sourdough starter yeast bread bread"]


def _demo_texts() -> tuple[list[str], list[str]]:
    docs = [json.loads(line) for line in DEMO.read_text().splitlines() if line.strip()]
    return [d["_id"] for d in docs], [f"{d.get('title', '')}\n{d['text']}".strip() for d in docs]


def test_scores_equal_bm25s_reference():
    """Every document's score for each query equals bm25s's own index and scorer, stemmer and stopwords on."""
    _, texts = _demo_texts()
    builder = LexicalBuilder(LexicalConfig())
    builder.add(texts)
    mine = (LexicalQueries(LexicalConfig(), builder.vocabulary()).encode(QUERIES) @ builder.postings()).toarray()
    stemmer = Stemmer.Stemmer("english")
    reference = bm25s.BM25(k1=1.5, b=0.75, method="lucene")
    reference.index(bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False), show_progress=False)
    for query, row in zip(QUERIES, mine, strict=True):
        words = bm25s.tokenize([query], stopwords="en", stemmer=stemmer, show_progress=False, return_ids=False)[0]
        known = [w for w in words if w in reference.vocab_dict]
        expected = reference.get_scores(known) if known else np.zeros(len(texts))
        np.testing.assert_allclose(row, expected, rtol=1e-5, atol=1e-6)
    assert mine[2].max() == 0  # stopwords only: nothing matches
    assert mine[0].max() > 0 and mine[1].max() > 0


def test_analyzer_stems_lowercases_and_drops_stopwords():
    words = Analyzer(LexicalConfig()).words("The Running dogs were BARKING at a cat")
    assert words == ["run", "dog", "were", "bark", "cat"]  # bm25s's English list keeps "were"
    assert Analyzer(LexicalConfig(stemmer="", stopwords="")).words("The dogs") == ["the", "dogs"]
    with pytest.raises(RetrieverError, match="stemmer"):
        Analyzer(LexicalConfig(stemmer="klingon"))
    with pytest.raises(RetrieverError, match="k1"):
        LexicalConfig(k1=-1)








