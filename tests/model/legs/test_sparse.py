"""The key-token sparse leg against a plain numpy recomputation."""

from __future__ import annotations

import numpy as np
import pytest

from retriever.legs.keytokens.config import SparseConfig
from retriever.legs.keytokens.leg import make_projector
from retriever.settings import IndexSettings

TEXTS = ["Volcanoes erupt when magma rises.", "Bees turn nectar into honey.", "The stock market fell today.",
         "A puppy learns to sit.", "Solar panels make electricity from sunlight.", "Chess is a board game."]


def _numpy_reference(backbone, residual, alpha, final_norm):
    w_u = backbone.unembedding.detach().float().numpy().astype(np.float64)
    x = residual.astype(np.float64)
    if final_norm:
        norm = backbone.final_norm
        eps = getattr(norm, "variance_epsilon", getattr(norm, "eps", 1e-6))
        x = x / np.sqrt((x**2).mean(axis=1, keepdims=True) + eps) * norm.weight.detach().float().numpy()
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    u1 = vt[0] if (x @ vt[0]).sum() >= 0 else -vt[0]
    scores = (x - alpha * np.outer(x @ u1, u1)) @ w_u.T
    return x, u1, scores



@pytest.mark.parametrize("final_norm,alpha", [(True, 1.0), (False, 0.5)])
def test_projection_matches_numpy(backbone, final_norm, alpha):
    from retriever.models.encoders import Encoder, make_method

    residual = Encoder(backbone, make_method("prompteol")).encode(TEXTS).residual
    settings = IndexSettings(sparse=SparseConfig(top_k=20, query_top_m=5, query_side="model", alpha=alpha,
                                                 final_norm=final_norm, weighting="relu", own_tokens=False,
                                                 fold="none", stem=False))
    projector = make_projector(backbone, settings)
    lexical = projector.lexical(residual)
    u1 = projector.fit(lexical)
    x, ref_u1, ref_scores = _numpy_reference(backbone, residual, alpha, final_norm)
    assert np.allclose(lexical, x, rtol=1e-4, atol=1e-4)
    assert float(u1 @ ref_u1) == pytest.approx(1.0, abs=1e-5)
    ref_scores[:, projector.excluded.numpy()] = -np.inf
    rows = projector.documents(lexical)
    for i in range(len(TEXTS)):
        ref_top = np.argsort(-ref_scores[i])[:20]
        ref_top = ref_top[ref_scores[i, ref_top] > 0]
        row = rows[i]
        assert set(row.indices.tolist()) == set(ref_top.tolist())
        assert np.allclose(row.toarray()[0, ref_top], ref_scores[i, ref_top], rtol=1e-3, atol=1e-2)


def test_queries_are_adjusted_with_the_stored_component(backbone):
    """A query row uses u_1 exactly as documents do: its top-M tokens are the document-style top tokens
    of the same vector, and changing u_1 changes them."""
    from retriever.models.encoders import Encoder, make_method

    residual = Encoder(backbone, make_method("prompteol")).encode(TEXTS).residual
    settings = IndexSettings(sparse=SparseConfig(top_k=5, query_top_m=5, query_side="model", own_tokens=False,
                                                 fold="none", stem=False))
    projector = make_projector(backbone, settings)
    lexical = projector.lexical(residual)
    projector.fit(lexical)
    docs = projector.documents(lexical)
    queries = projector.queries(lexical, [[] for _ in TEXTS])
    assert np.allclose(docs.toarray(), queries.toarray())
    other = make_projector(backbone, settings, u1=np.roll(projector.u1, 1))
    assert not np.allclose(other.queries(lexical, [[] for _ in TEXTS]).toarray(), queries.toarray())


def test_query_own_tokens_are_kept_at_least_at_the_floor(backbone):
    from retriever.models.encoders import Encoder, make_method

    residual = Encoder(backbone, make_method("prompteol")).encode(TEXTS).residual
    projector = make_projector(backbone, IndexSettings(sparse=SparseConfig(query_top_m=4, query_side="model")))
    lexical = projector.lexical(residual)
    projector.fit(lexical)
    lexical = lexical[:1]
    own = backbone.tokenizer(" zebra", add_special_tokens=False).input_ids
    row = projector.queries(lexical, [own])
    top = projector.queries(lexical, [[]])
    floor = top.data.min()
    assert set(own) <= set(row.indices.tolist())
    assert all(row[0, t] >= floor for t in own)
    assert row.nnz == top.nnz + len(set(own) - set(top.indices.tolist()))


def test_documents_keep_their_own_tokens_plus_top_k(backbone):
    """own_tokens: a document row is its own tokens (never below the weakest top-K weight) plus its top-K,
    checked against the float64 reference with log-saturated weights."""
    from retriever.legs.keytokens.own_tokens import OwnTokens
    from retriever.models.encoders import Encoder, make_method

    residual = Encoder(backbone, make_method("prompteol")).encode(TEXTS).residual
    config = SparseConfig(top_k=3, alpha=0.5, fold="none", stem=False)  # the projection unfolded
    projector = make_projector(backbone, IndexSettings(sparse=config))
    lexical = projector.lexical(residual)
    projector.fit(lexical)
    own = OwnTokens(backbone.tokenizer, config)(TEXTS)
    excluded = set(projector.excluded.tolist())  # special tokens, and the noise vocabulary of content words
    assert excluded - set(backbone.tokenizer.all_special_ids)
    rows = projector.documents(lexical, own)
    with pytest.raises(ValueError, match="own token ids"):
        projector.documents(lexical)
    _, _, scores = _numpy_reference(backbone, residual, 0.5, True)
    weights = np.log1p(np.maximum(scores, 0))
    weights[:, projector.excluded.numpy()] = 0
    for i in range(len(TEXTS)):
        top = np.argsort(-weights[i])[:3]
        floor = weights[i, top].min()
        expected = {int(t): float(weights[i, t]) for t in top}
        expected.update({t: max(float(weights[i, t]), floor) for t in own[i] if t not in excluded})
        row = rows[i]
        assert dict(zip(row.indices.tolist(), row.data.tolist(), strict=True)) == pytest.approx(expected, rel=1e-3,
                                                                                               abs=1e-3)


