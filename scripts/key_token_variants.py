"""Variants of the key-token leg, built over an existing index by the engine's own code without
re-encoding it: the documents' vectors are recovered from the stored rows (recover_lexical), then each
variant projects them again. What sweep_knobs.py and bench_fusion.py compare; a library for the scripts,
not one itself."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from retriever.legs.inverted import SparseIndex, token_idf, with_idf
from retriever.legs.keytokens.config import SparseConfig
from retriever.legs.keytokens.leg import KeyTokenLeg, make_projector
from retriever.legs.keytokens.own_tokens import OwnTokens


def recover_lexical(searcher, folder: Path, contents: list[str] | None = None) -> np.ndarray:
    """Each document's vector as the vocabulary saw it, from the index alone.

    A last-token index stores the final-normed vector at unit length; the projection is linear, so one
    stored weight per document gives back its length: its largest weight, which is always its own aligned
    score (relu, or log1p inverted), whether the token is an expansion or one of its own. Checked against
    every stored row before use (contents: the documents' texts, for an index with own tokens).
    """
    sparse = searcher.leg("sparse")
    config = sparse.projector.config
    if searcher.settings.method_params.get("layer") is not None or searcher.settings.dense_model \
            or config.idf != "none" or (config.own_tokens and contents is None):
        raise SystemExit(f"{folder}: needs a last-layer last-token index without idf or a dense model "
                         "(scripts/bench_quality.py --only prompteol-512 builds one)")
    unit = np.array(searcher.leg("dense").index.vectors, dtype=np.float32)
    rows = sparse.index.doc_rows
    scores = sparse.projector.token_scores(unit).numpy()
    top = np.array([rows.indptr[r] + int(np.argmax(rows.data[rows.indptr[r]:rows.indptr[r + 1]]))
                    for r in range(rows.shape[0])])
    raw = np.expm1(rows.data[top]) if config.weighting == "log1p" else rows.data[top]
    length = raw / scores[np.arange(len(unit)), rows.indices[top]]
    lexical = unit * length[:, None]
    own = OwnTokens(searcher.backbone.tokenizer, config)(contents, searcher.settings.max_tokens) \
        if config.own_tokens else None
    check = sparse.projector.documents(lexical, own)
    if abs(check - rows).max() >= 1e-3 * rows.data.max():  # a check, not an assert: python -O must not skip it
        raise SystemExit(f"{folder}: the stored key-token rows are not reproduced; not a last-token index")
    return lexical


KEY_TOKEN_BASE = SparseConfig(top_k=16, query_top_m=16, alpha=0.5, final_norm=True, weighting="log1p",
                              own_tokens=True, own_words="content", spelling="space", idf="none", scoring="weighted",
                              query_side="model", fold="none", stem=False, own_span="budget")  # as before issue 27


KEY_TOKEN_VARIANTS = {  # name -> changes to KEY_TOKEN_BASE
    "all own tokens spaced K16 (before)": {"own_words": "all"},
    "content spaced K16": {"top_k": 16},
    "content bare K16": {"spelling": "bare", "top_k": 16},
    "content spaced K16 idf-documents": {"idf": "documents", "top_k": 16},
    "content spaced K16 idf-both": {"idf": "both", "top_k": 16},
    "content bare K16 idf-documents": {"spelling": "bare", "idf": "documents", "top_k": 16},
    "content bare K16 idf-both": {"spelling": "bare", "idf": "both", "top_k": 16},
    "content spaced K0": {"top_k": 0},
    "content spaced K64": {"top_k": 64},
    "content spaced K16 M0": {"top_k": 16, "query_top_m": 0},
    "content spaced K16 M64": {"top_k": 16, "query_top_m": 64},
    "content spaced K16 alpha1": {"top_k": 16, "alpha": 1.0},
    "all own tokens spaced K0": {"own_words": "all", "top_k": 0},
    "content bare K0": {"spelling": "bare", "top_k": 0},
    "content spaced K0 M0": {"top_k": 0, "query_top_m": 0},
    "content spaced K0 M4": {"top_k": 0, "query_top_m": 4},
    "content spaced K0 M64": {"top_k": 0, "query_top_m": 64},
    "content spaced K0 idf-documents": {"top_k": 0, "idf": "documents"},
    "content spaced K0 idf-both": {"top_k": 0, "idf": "both"},
    "content spaced K0 relu": {"top_k": 0, "weighting": "relu"},
    "content spaced K0 alpha0": {"top_k": 0, "alpha": 0.0},
    "content spaced K0 alpha1": {"top_k": 0, "alpha": 1.0},
    "content spaced K16 M0 idf-documents": {"top_k": 16, "query_top_m": 0, "idf": "documents"},
    "content bare K16 M0": {"spelling": "bare", "top_k": 16, "query_top_m": 0},
    "all own tokens spaced K16 M0": {"own_words": "all", "top_k": 16, "query_top_m": 0},
    "content spaced K32 M0": {"top_k": 32, "query_top_m": 0},
    "content spaced K8 M0": {"top_k": 8, "query_top_m": 0},
    "paper K16 M16": {"scoring": "paper", "own_tokens": False, "top_k": 16},
    "paper K64 M16": {"scoring": "paper", "own_tokens": False, "top_k": 64},
    "paper K128 M16": {"scoring": "paper", "own_tokens": False, "top_k": 128},
    "paper K128 M64": {"scoring": "paper", "own_tokens": False, "top_k": 128, "query_top_m": 64},
    "paper K256 M16 all-own-words": {"scoring": "paper", "own_tokens": False, "top_k": 256, "own_words": "all"},
}


def key_token_leg(searcher, lexical_docs: np.ndarray, contents: list[str], queries: dict, config: SparseConfig):
    """A key-token leg under config over the recovered document vectors, built by the engine's own code
    (projector, own tokens, idf) with the index's u_1; and each split's query rows."""
    stored = searcher.leg("sparse")
    settings = dataclasses.replace(searcher.settings, sparse=config)
    projector = make_projector(searcher.backbone, settings, stored.projector.u1)
    own = OwnTokens(searcher.backbone.tokenizer, config)
    doc_rows = projector.documents(lexical_docs, own(contents, settings.max_tokens) if config.own_tokens else None)
    idf = token_idf(doc_rows) if config.idf != "none" else None
    doc_rows = doc_rows if idf is None else with_idf(doc_rows, idf)
    query_rows = {split: projector.queries(lexical, own(texts), idf) for split, (lexical, texts) in queries.items()}
    leg = KeyTokenLeg(projector, SparseIndex(doc_rows), stored.tokenizer, idf, lock=stored.lock)
    return leg, query_rows
