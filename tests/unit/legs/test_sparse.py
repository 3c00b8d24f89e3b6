"""The key-token sparse leg against a plain numpy recomputation."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from retriever.legs.inverted import SparseIndex, top_positive
from retriever.legs.keytokens.config import SparseConfig
from retriever.legs.keytokens.projector import adjust, first_component
from retriever.settings import IndexSettings


def test_first_component_matches_numpy_svd():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 8)) + 3.0  # a strong shared direction, as embeddings have
    u1 = first_component(x)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    assert abs(float(u1 @ vt[0])) == pytest.approx(1.0, abs=1e-6)
    assert (x @ u1).sum() > 0  # the sign is fixed
    adjusted = adjust(x.astype(np.float32), u1, 1.0)
    assert np.abs(adjusted @ u1).max() < 1e-3  # alpha = 1 removes the component
    half = adjust(x.astype(np.float32), u1, 0.5)
    assert np.allclose(half @ u1, 0.5 * (x @ u1), rtol=1e-4, atol=1e-3)












def test_indexes_from_before_own_tokens_keep_top_k_documents():
    stored = {"top_k": 128, "query_top_m": 16, "alpha": 1.0, "final_norm": True, "weighting": "relu"}
    assert IndexSettings.from_dict({"sparse": stored}).sparse.own_tokens is False
    assert SparseConfig().own_tokens is True


def test_inverted_index_scores_equal_dense_dot_products():
    rng = np.random.default_rng(0)
    docs = sp.random(30, 100, density=0.1, random_state=1, format="csr", dtype=np.float32)
    queries = sp.random(4, 100, density=0.2, random_state=2, format="csr", dtype=np.float32)
    index = SparseIndex(docs)
    assert np.allclose(index.score_all(queries), queries.toarray() @ docs.toarray().T, atol=1e-5)
    one = index.score_all(queries[2])  # a single query, as the search path sends it
    assert one.shape == (1, 30) and one.flags.c_contiguous and np.allclose(one, index.score_all(queries)[2])
    assert not index.score_all(sp.csr_matrix((2, 100), dtype=np.float32)).any()  # no tokens: no scores
    shared = index.shared_tokens(queries[0], int(rng.integers(30)))
    assert all(w > 0 for _, w in shared)


def test_the_principal_component_sample_is_all_documents_or_a_fixed_sorted_subset():
    from retriever.legs.keytokens.projector import sample_rows

    np.testing.assert_array_equal(sample_rows(7, size=10), np.arange(7))
    rows = sample_rows(1000, size=50)
    assert len(rows) == 50 == len(set(rows.tolist())) and np.all(np.diff(rows) > 0) and rows.max() < 1000
    np.testing.assert_array_equal(rows, sample_rows(1000, size=50))  # the same corpus gives the same u_1


def test_top_positive_equals_sorting_the_positive_scores():
    rng = np.random.default_rng(3)
    for _ in range(200):
        scores = rng.normal(size=int(rng.integers(1, 300))).astype(np.float32)
        scores[rng.random(len(scores)) < 0.2] = 0.0
        depth = int(rng.integers(1, 50))
        positive = np.flatnonzero(scores > 0)
        want = positive[np.argsort(-scores[positive], kind="stable")][:depth]
        assert [scores[i] for i in top_positive(scores, depth)] == [scores[i] for i in want]


def test_folding_takes_each_canonical_tokens_max_or_sum_over_its_variants():
    import torch

    from retriever.legs.keytokens.projector import fold_weights

    rng = np.random.default_rng(1)
    weights = torch.from_numpy(rng.random((3, 7)).astype(np.float32))
    canon = np.array([0, 0, 2, 2, 2, 5, 6])  # tokens 0-1 one word, 2-4 another, 5 and 6 alone
    for fold, reduce in (("max", max), ("sum", sum)):
        got = fold_weights(weights, torch.from_numpy(canon), fold).numpy()
        want = np.zeros((3, 7), np.float32)
        for r in range(3):
            for target in set(canon.tolist()):
                want[r, target] = reduce(float(weights[r, t]) for t in range(7) if canon[t] == target)
        np.testing.assert_allclose(got, want, rtol=1e-6)
        assert not got[:, [1, 3, 4]].any()  # a variant keeps nothing of its own


def test_bm25_impacts_are_bm25_with_the_weight_as_term_frequency():
    from retriever.legs.inverted import bm25_impacts

    rows = sp.csr_matrix(np.array([[0.0, 2.0, 1.0, 0.0], [3.0, 0.0, 0.5, 0.0], [1.0, 1.0, 1.0, 4.0]], np.float32))
    idf = np.array([0.5, 1.0, 0.1, 2.0], np.float32)
    k1, b = 1.2, 0.75
    got = bm25_impacts(rows, idf, k1, b).toarray()
    dense = rows.toarray()
    lengths = dense.sum(1)
    for d in range(3):
        for t in range(4):
            w = dense[d, t]
            want = 0.0 if w == 0 else idf[t] * w * (k1 + 1) / (w + k1 * (1 - b + b * lengths[d] / lengths.mean()))
            assert got[d, t] == pytest.approx(want, rel=1e-5)


def test_own_query_rows_are_each_own_token_once_weighted_one_or_by_idf():
    from retriever.legs.keytokens.own_tokens import own_query_rows

    idf = np.arange(10, dtype=np.float32) / 10
    rows = own_query_rows([[3, 5, 3, 9], [1, 12]], 10, excluded={5}, idf=None)
    assert rows.toarray().tolist()[0] == [0, 0, 0, 1, 0, 0, 0, 0, 0, 1]  # duplicates once, excluded and
    assert rows.toarray().tolist()[1] == [0, 1, 0, 0, 0, 0, 0, 0, 0, 0]  # out-of-vocabulary ids dropped
    weighted = own_query_rows([[3, 9]], 10, excluded=set(), idf=idf)
    np.testing.assert_allclose(weighted.toarray()[0, [3, 9]], [0.3, 0.9])


def test_new_query_sides_and_folds_are_checked_and_old_indexes_keep_the_llms_query_side():
    from retriever.legs.keytokens.config import SparseConfig

    old = SparseConfig.from_dict({})
    assert (old.query_side, old.own_span, old.fold, old.stem) == ("model", "budget", "none", False)
    assert SparseConfig().query_side == "own"  # a new index needs no LLM at query time
    for bad in ({"query_side": "llm"}, {"fold": "min"}, {"stem": True, "fold": "none"},
                {"query_side": "own", "query_top_m": 4},
                {"scoring": "bm26"}, {"b": 1.5}):
        with pytest.raises(ValueError):
            SparseConfig(**bad)
