"""The BM25 lexical leg: same scores as bm25s itself, built and searched without the LLM."""

from __future__ import annotations

import json

import bm25s
import numpy as np
import pytest
import Stemmer

from retriever import Retriever
from retriever.errors import BadIndexError, RetrieverError
from retriever.lexical import Analyzer, LexicalBuilder, LexicalConfig, LexicalQueries

from .conftest import DEMO

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


def test_lexical_only_index_never_runs_the_model(tmp_path, backbone, monkeypatch):
    from retriever.encoders import Encoder

    def no_forward(*args, **kwargs):
        raise AssertionError("the lexical leg must not run the LLM")

    monkeypatch.setattr(Encoder, "encode", no_forward)
    index = Retriever.build(DEMO, tmp_path / "bm25", backbone=backbone, legs=("lexical",))
    assert index.manifest["tokens_embedded"] == 0 and index.manifest["documents"] == 37
    assert not (tmp_path / "bm25" / "dense.npy").exists() and not (tmp_path / "bm25" / "u1.npy").exists()
    hits = index.search("why does lava come out of a mountain", k=3)
    assert hits[0].id == "volcano" and set(hits[0].scores) == {"lexical"}
    assert {t["token"] for t in hits[0].tokens} >= {"lava"}
    assert index.search("zzzqx unknownword", k=5) == []  # no shared word: nothing found, not random documents
    with pytest.raises(RetrieverError, match="without the dense leg"):
        index.search("lava", mode="dense")


def test_a_lexical_only_index_loads_without_the_model(tmp_path, backbone, monkeypatch):
    import retriever.api

    built = Retriever.build(DEMO, tmp_path / "bm25", backbone=backbone, legs=("lexical",))
    monkeypatch.setattr(retriever.api, "load_backbone", lambda *a, **k: pytest.fail("the LLM was loaded"))
    loaded = Retriever.load(tmp_path / "bm25")
    assert loaded.backbone is None
    for query in ("why does lava come out of a mountain", "honey bees"):
        assert [(h.id, h.score) for h in loaded.search(query, k=5)] == \
            [(h.id, h.score) for h in built.search(query, k=5)]
    with pytest.raises(RetrieverError, match="without the dense leg"):
        loaded.search("lava", mode="dense")


def test_lexical_mode_on_a_full_index_skips_the_model(demo_index, monkeypatch):
    expected = demo_index.search("honey bees", k=5, mode="lexical")
    monkeypatch.setattr(demo_index.searcher.encoder, "encode", lambda *a, **k: pytest.fail("LLM ran"))
    again = demo_index.search("honey bees", k=5, mode="lexical")
    assert [h.id for h in again] == [h.id for h in expected] and again[0].id == "bees"
    assert all(set(h.scores) == {"lexical"} for h in again)


def test_damaged_vocabulary_is_a_clear_error(tmp_path, backbone):
    path = tmp_path / "bm25"
    Retriever.build(DEMO, path, backbone=backbone, legs=("lexical",))
    vocab = path / "lexical_vocab.json"
    vocab.write_bytes(b"{" + vocab.read_bytes()[1:])  # same size, broken JSON
    with pytest.raises(BadIndexError, match=r"lexical_vocab\.json"):
        Retriever.load(path, backbone=backbone)
