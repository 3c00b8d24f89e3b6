"""The key-token leg's recipes against slow, obvious references: content words as PromptReps keeps them, the
noise vocabulary, the idf factor and the paper's set scoring."""

from __future__ import annotations

import re

import numpy as np
import pytest
import scipy.sparse as sp
from bm25s.stopwords import STOPWORDS_EN_PLUS

from retriever import Retriever
from retriever.corpus.documents import documents_from
from retriever.indexing.indexer import build_index
from retriever.legs.keytokens.config import SparseConfig
from retriever.legs.keytokens.own_tokens import OwnTokens, noise_token_ids
from retriever.settings import IndexSettings

from ...conftest import DEMO

TEXT = "Why do the Honeybees of Mars, e.g. in 2024, make 'honey'? It's a bee-keeping question!"


def _reference_pieces(tokenizer, text: str, spelling: str) -> list[int]:
    """Word by word: lowercase, NLTK's stopwords out, each word tokenized alone, noise pieces dropped."""
    noise = set(noise_token_ids(tokenizer))
    out = []
    for word in re.findall(r"\w+", text.lower()):
        if word in STOPWORDS_EN_PLUS:
            continue
        ids = tokenizer((" " if spelling == "space" else "") + word, add_special_tokens=False).input_ids
        out += [i for i in ids if i not in noise]
    return out


def test_content_words_are_the_texts_words_without_stopwords_punctuation_or_single_characters(tokenizer):
    noise = set(noise_token_ids(tokenizer))
    for spelling in ("space", "bare"):
        got = [i for i in OwnTokens(tokenizer, SparseConfig(spelling=spelling))([TEXT])[0] if i not in noise]
        assert got == _reference_pieces(tokenizer, TEXT, spelling)
        shown = {tokenizer.decode([i]).strip().lower() for i in got}
        assert not shown & set(STOPWORDS_EN_PLUS) and all(len(t) > 1 and re.search(r"\w", t) for t in shown)
    every = OwnTokens(tokenizer, SparseConfig(own_words="all"))([TEXT])[0]
    assert every == tokenizer(" " + TEXT, add_special_tokens=False).input_ids  # the recipe before it


def test_the_noise_vocabulary_is_what_it_says(tokenizer):
    noise = set(noise_token_ids(tokenizer))
    for token in (" the", ",", " a", "?!", " (", " It", "x"):
        ids = tokenizer(token, add_special_tokens=False).input_ids
        assert len(ids) == 1 and ids[0] in noise, token
    for token in (" honey", " Mars", " protein", "bee"):  # (SmolLM2 spells numbers digit by digit: noise)
        ids = tokenizer(token, add_special_tokens=False).input_ids
        assert len(ids) == 1 and ids[0] not in noise, token


def test_a_content_word_budget_counts_every_words_pieces(tokenizer):
    own = OwnTokens(tokenizer, SparseConfig())
    full = own(["alpha beta gamma delta"])[0]
    assert own(["alpha beta gamma delta"], max_tokens=2)[0] == full[:len(own(["alpha beta"])[0])]


@pytest.fixture(scope="module")
def indexes(tmp_path_factory, tiny_backbone):
    root = tmp_path_factory.mktemp("keytokens")
    built = {}
    for name, config in {"plain": SparseConfig(idf="none", query_top_m=4, query_side="model"),
                         "idf-documents": SparseConfig(idf="documents", query_top_m=4, query_side="model"),
                         "idf-both": SparseConfig(idf="both", query_top_m=4, query_side="model"),
                         "paper": SparseConfig(scoring="paper", own_tokens=False, top_k=8)}.items():
        built[name] = Retriever.build(DEMO, root / name, backbone=tiny_backbone,
                                      settings=IndexSettings(legs=("sparse", "lexical"), sparse=config))
    return built


def _rows(r):
    """The document rows as the opened leg scores them (after the idf, which it takes over the live rows)."""
    return r.searcher.leg("sparse").index.doc_rows


def _idf(r):
    return r.searcher.leg("sparse").idf


def test_idf_multiplies_each_weight_by_the_corpus_idf_of_its_token(indexes):
    plain = _rows(indexes["plain"])
    assert _idf(indexes["plain"]) is None
    for name in ("idf-documents", "idf-both"):
        r = indexes[name]
        rows = _rows(r)
        df = np.asarray((plain > 0).sum(0)).ravel()
        idf = np.log(1 + (plain.shape[0] - df + 0.5) / (df + 0.5))
        np.testing.assert_allclose(_idf(r), idf, rtol=1e-6)
        np.testing.assert_allclose(rows.toarray(), plain.toarray() * idf[None, :], rtol=1e-5, atol=1e-7)
    query = "honey bees and their hives"
    plain_q = indexes["plain"].searcher.encode([query], ["sparse"])["sparse"]
    docs_q = indexes["idf-documents"].searcher.encode([query], ["sparse"])["sparse"]
    both_q = indexes["idf-both"].searcher.encode([query], ["sparse"])["sparse"]
    assert (docs_q != plain_q).nnz == 0  # idf on documents leaves queries alone
    idf = _idf(indexes["idf-both"])
    np.testing.assert_allclose(both_q.toarray(), plain_q.toarray() * idf[None, :], rtol=1e-5)


def test_paper_scoring_sums_the_documents_weights_over_the_querys_token_set(indexes):
    r = indexes["paper"]
    rows = _rows(r)
    assert rows.shape == (37, r.manifest["vocab_size"])
    assert np.all(np.diff(rows.indptr) <= 8)  # top-K only, no own tokens
    query = "how do bees make honey"
    q = r.searcher.encode([query], ["sparse"])["sparse"]
    assert np.all(q.data == 1.0)
    want = rows.toarray()[:, q.indices].sum(1)
    hits = r.search(query, k=5, mode="sparse", explain=False)
    order = np.argsort(-want, kind="stable")[:len(hits)]
    assert [h.score for h in hits] == pytest.approx(list(want[order]), rel=1e-5)
    assert q.shape[0] == 1 and isinstance(q, sp.csr_matrix)


def test_explanations_show_no_stopwords_or_punctuation(indexes, tokenizer):
    hits = indexes["plain"].search("Why do the bees of a hive make honey?", k=10, mode="sparse")
    shown = {t["token"].lower() for h in hits for t in h.tokens}
    assert shown and not shown & set(STOPWORDS_EN_PLUS)
    assert all(len(t) > 1 and re.search(r"\w", t) for t in shown)


def test_the_idf_is_measured_again_when_documents_are_added_or_deleted(indexes, tmp_path, tiny_backbone):
    """Like BM25's, a statistic of the whole corpus: after an add and a delete the rows are those of a fresh
    build of the final corpus with u_1 held fixed."""
    import json
    import shutil

    folder = tmp_path / "idx"
    shutil.copytree(indexes["idf-documents"].path, folder)
    r = Retriever.load(folder, backbone=tiny_backbone)
    new = {"_id": "new", "text": "Honey bees build wax combs."}
    r.add([new])
    r.delete(["mars"])
    docs = [json.loads(line) for line in DEMO.read_text().splitlines()]
    final = [d for d in docs if d["_id"] != "mars"] + [new]
    settings = IndexSettings(legs=("sparse", "lexical"), sparse=SparseConfig(idf="documents"))
    build_index(documents_from(final), tmp_path / "fresh", tiny_backbone, settings,
                u1=r.searcher.leg("sparse").projector.u1)
    fresh = Retriever.load(tmp_path / "fresh", backbone=tiny_backbone)
    np.testing.assert_array_equal(_idf(r), _idf(fresh))
    assert len(r.manifest["segments"]) == 2 and _rows(r).shape == (37, r.manifest["vocab_size"])
    assert (_rows(r) != _rows(fresh)).nnz == 0  # bit for bit, not merely close
    assert r.search("wax combs", k=1, mode="sparse")[0].id == "new"
