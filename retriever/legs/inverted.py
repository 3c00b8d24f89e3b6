"""The inverted index the sparse legs share (key tokens, BM25, a leg of your own): document rows as CSR,
their postings, idf and BM25 impacts, top-k of positive scores. numpy and scipy only."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .base import Hits

QUERY_CHUNK = 64  # queries scored together against every document: bounds the queries x documents block


def token_idf(rows: sp.csr_matrix) -> np.ndarray:
    """BM25's idf of every vocabulary token over the document rows: log(1 + (N - df + 0.5) / (df + 0.5))."""
    df = np.bincount(rows.indices, minlength=rows.shape[1]).astype(np.float64)
    return np.log1p((rows.shape[0] - df + 0.5) / (df + 0.5)).astype(np.float32)


def with_idf(rows: sp.csr_matrix, idf: np.ndarray) -> sp.csr_matrix:
    """Each row's weights times its tokens' idf."""
    scaled = rows.copy()
    scaled.data = (scaled.data * idf[scaled.indices]).astype(np.float32)
    return scaled


def bm25_impacts(rows: sp.csr_matrix, idf: np.ndarray, k1: float, b: float) -> sp.csr_matrix:
    """BM25 with each row's weight as the term frequency and the row's weight mass as the document's
    length: idf * w (k1 + 1) / (w + k1 (1 - b + b |d| / avg |d|)), precomputed per entry so that a query
    (a set of its own tokens) is scored by summing, as BM25 over an impact index."""
    lengths = np.asarray(rows.sum(axis=1), np.float64).ravel()
    average = lengths.mean() if len(lengths) and lengths.mean() > 0 else 1.0
    norm = np.repeat(k1 * (1 - b + b * lengths / average), np.diff(rows.indptr))
    tf = rows.data.astype(np.float64)
    impacts = rows.copy()
    impacts.data = (idf[rows.indices] * tf * (k1 + 1) / (tf + norm)).astype(np.float32)
    return impacts


def ragged_to_csr(ids: list[np.ndarray], weights: list[np.ndarray], vocab_size: int) -> sp.csr_matrix:
    """Rows of (token ids, weights) as a CSR matrix, zero weights dropped and columns sorted."""
    indptr, all_ids, all_w = [0], [], []
    for row_ids, row_w in zip(ids, weights, strict=True):
        keep = row_w > 0
        order = np.argsort(row_ids[keep], kind="stable")
        all_ids.append(row_ids[keep][order].astype(np.int32))
        all_w.append(row_w[keep][order].astype(np.float32))
        indptr.append(indptr[-1] + int(keep.sum()))
    data = np.concatenate(all_w) if all_w else np.zeros(0, np.float32)
    indices = np.concatenate(all_ids) if all_ids else np.zeros(0, np.int32)
    return sp.csr_matrix((data, indices, np.asarray(indptr, np.int64)), shape=(len(ids), vocab_size))


class SparseIndex:
    """An inverted index over document rows: postings (vocabulary x documents) for search, and the
    document rows themselves for exact rescoring and for explaining a hit."""

    def __init__(self, doc_rows: sp.csr_matrix, postings: sp.csr_matrix | None = None):
        self.doc_rows = doc_rows
        self.postings = postings if postings is not None else doc_rows.T.tocsr()

    @classmethod
    def from_postings(cls, postings: sp.csr_matrix) -> SparseIndex:
        return cls(postings.T.tocsr(), postings)

    def __len__(self) -> int:
        return self.doc_rows.shape[0]

    def score_all(self, queries: sp.csr_matrix) -> np.ndarray:
        """Scores of every document for each query (queries x documents).

        Only the postings of the queries' tokens are touched: those rows are gathered and multiplied, as a
        documents x tokens matrix, by the dense tokens x queries weights. scipy's sparse x sparse product
        builds a sparse result first and was 2.3x slower at a million documents (scripts/bench_scale.py).
        """
        tokens = np.unique(queries.indices)
        if len(tokens) == 0:
            return np.zeros((queries.shape[0], len(self)), np.float32)
        weights = queries[:, tokens].toarray().T.astype(np.float32)
        scores = self.postings[tokens].T @ weights  # documents x queries, dense
        return np.ascontiguousarray(scores.T, dtype=np.float32)

    def shared_tokens(self, query: sp.csr_matrix, doc: int) -> list[tuple[int, float]]:
        """Tokens a query row and a document share, with their contribution w_q * w_d, largest first."""
        row = self.doc_rows[doc]
        q = dict(zip(query.indices.tolist(), query.data.tolist(), strict=True))
        shared = [(t, q[t] * w) for t, w in zip(row.indices.tolist(), row.data.tolist(), strict=True) if t in q]
        return sorted(shared, key=lambda tw: -tw[1])

    def hits(self, queries: sp.csr_matrix, depth: int, mask: np.ndarray | None = None,
             chunk: int = QUERY_CHUNK) -> Hits:
        """Per query row: the documents of its top-depth positive scores (among the rows mask keeps) and a
        scorer over all of them, scored chunk queries at a time (bounding the queries x documents block)."""
        for start in range(0, queries.shape[0], chunk):
            for scores in self.score_all(queries[start:start + chunk]):
                allowed = scores if mask is None else np.where(mask, scores, 0.0)
                yield top_positive(allowed, depth), scores.__getitem__


def top_positive(scores: np.ndarray, depth: int) -> np.ndarray:
    """Ids of the highest positive scores: a document sharing no token with the query was not found.

    The top depth are taken first and filtered after: a common token can make most of a million
    documents positive, and selecting them first cost twice as much (scripts/bench_scale.py).
    """
    top = np.argpartition(scores, len(scores) - depth)[-depth:] if len(scores) > depth else np.arange(len(scores))
    top = top[scores[top] > 0]
    return top[np.argsort(-scores[top], kind="stable")]
