"""The key-token sparse leg against a plain numpy recomputation."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from retriever.settings import IndexSettings
from retriever.sparse import SparseConfig, SparseIndex, adjust, first_component, top_positive


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
    from retriever.sparse import sample_rows

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
