"""Answering queries against a built index: encode once, search each leg, rescore, fuse.

Candidates are the union of the legs' top lists. A document one leg missed is rescored exactly by that
leg (its stored vector, its stored sparse row) rather than given a guessed floor, so fusion always
compares real scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import scipy.sparse as sp

from .dense import DenseIndex
from .encoders import Encoder, make_method
from .errors import BadIndexError, InputError, RetrieverError
from .fusion import fuse
from .indexer import DENSE_FAISS, IndexSettings, make_projector
from .sparse import SparseIndex
from .store import load_array, read_documents

MODES = ("hybrid", "dense", "sparse")
QUERY_CHUNK = 64


@dataclass
class Result:
    row: int  # internal document id
    score: float
    leg_scores: dict[str, float]


@dataclass
class EncodedQueries:
    dense: np.ndarray
    sparse: sp.csr_matrix


def _load_csr(folder: Path, name: str, shape: tuple[int, int]) -> sp.csr_matrix:
    parts = [load_array(folder, f"{name}_{part}") for part in ("data", "indices", "indptr")]
    try:
        return sp.csr_matrix(tuple(parts), shape=shape)
    except ValueError as exc:
        raise BadIndexError(f"{folder}: sparse arrays '{name}' are inconsistent ({exc})") from None


def _read_faiss(path: Path) -> faiss.Index:
    try:
        return faiss.read_index(str(path))
    except RuntimeError as exc:  # FAISS reports a damaged or missing file this way
        raise BadIndexError(f"{path}: cannot read the FAISS index ({str(exc).splitlines()[0]})") from None


class Searcher:
    def __init__(self, folder: str | Path, manifest: dict[str, Any], backbone):
        folder = Path(folder)
        self.settings = IndexSettings.from_dict(manifest["settings"])
        self.backbone = backbone
        self.encoder = Encoder(backbone, make_method(self.settings.method, **self.settings.method_params),
                               self.settings.max_tokens)
        self.projector = make_projector(backbone, self.settings, np.array(load_array(folder, "u1")))
        self.documents = read_documents(folder)
        self.ids: list[str] = self.documents.column("id").to_pylist()
        n = len(self.ids)
        if n != manifest["documents"]:
            raise BadIndexError(f"{folder}: manifest says {manifest['documents']} documents, found {n}")
        self.dense = self.sparse = None
        if "dense" in self.settings.legs:
            self.dense = DenseIndex(load_array(folder, "dense"), _read_faiss(folder / DENSE_FAISS))
        if "sparse" in self.settings.legs:
            vocab = self.projector.vocab_size
            self.sparse = SparseIndex(_load_csr(folder, "sparse_rows", (n, vocab)),
                                      _load_csr(folder, "sparse_postings", (vocab, n)))
        self.legs = tuple(leg for leg in ("dense", "sparse") if getattr(self, leg) is not None)

    def encode(self, queries: Sequence[str]) -> EncodedQueries:
        for i, q in enumerate(queries):
            if not isinstance(q, str) or not q.strip():
                raise InputError("empty query" if isinstance(q, str) else "a query must be a string",
                                 "queries", i + 1)
        encoded = self.encoder.encode(list(queries))
        tokenizer = self.backbone.tokenizer
        own = tokenizer([" " + q.strip() for q in queries], add_special_tokens=False).input_ids
        sparse = self.projector.queries(self.projector.lexical(encoded.residual), own)
        return EncodedQueries(encoded.dense, sparse)

    def _legs_for(self, mode: str) -> tuple[str, ...]:
        if mode not in MODES:
            raise RetrieverError(f"mode must be one of {MODES}, not {mode!r}")
        if mode == "hybrid":
            return self.legs
        if mode not in self.legs:
            raise RetrieverError(f"this index was built without the {mode} leg (legs: {', '.join(self.legs)})")
        return (mode,)

    def search(self, queries: Sequence[str], k: int = 10, mode: str = "hybrid", depth: int = 100,
               encoded: EncodedQueries | None = None) -> list[list[Result]]:
        """Top-k results per query. depth: how deep each leg's list goes before fusion."""
        if k < 1:
            raise RetrieverError("k must be at least 1")
        legs = self._legs_for(mode)
        encoded = encoded or self.encode(queries)
        depth = max(depth, k) if len(legs) > 1 else k
        dense_top = self.dense.search(encoded.dense, depth)[1] if "dense" in legs else None
        results: list[list[Result]] = []
        for start in range(0, len(queries), QUERY_CHUNK):  # bounds the queries x documents score block
            stop = min(start + QUERY_CHUNK, len(queries))
            sparse_block = self.sparse.score_all(encoded.sparse[start:stop]) if self.sparse is not None else None
            for qi in range(start, stop):
                sparse_all = sparse_block[qi - start] if sparse_block is not None else None
                lists = []
                if dense_top is not None:
                    lists.append(dense_top[qi][dense_top[qi] >= 0])
                if "sparse" in legs:
                    lists.append(_top_positive(sparse_all, depth))
                candidates = np.array(list(dict.fromkeys(np.concatenate(lists).tolist())), dtype=np.int64)
                scores = self._exact_scores(encoded, qi, candidates, sparse_all)
                fused = fuse({leg: scores[leg] for leg in legs}, self.settings.fusion, self.settings.rrf_k,
                             self.settings.weights) if len(legs) > 1 else scores[legs[0]]
                order = np.argsort(-fused, kind="stable")[:k]
                results.append([Result(int(candidates[i]), float(fused[i]),
                                       {leg: float(s[i]) for leg, s in scores.items()}) for i in order])
        return results

    def _exact_scores(self, encoded: EncodedQueries, qi: int, candidates: np.ndarray,
                      sparse_scores: np.ndarray | None) -> dict[str, np.ndarray]:
        """Every available leg's exact score for each candidate, whichever leg found it."""
        scores = {}
        if self.dense is not None:
            scores["dense"] = self.dense.score(encoded.dense[qi], candidates)
        if sparse_scores is not None:  # this query's sparse score for every document
            scores["sparse"] = sparse_scores[candidates]
        return scores

    def shared_tokens(self, encoded: EncodedQueries, qi: int, row: int, limit: int = 8) -> list[dict]:
        """Why a document matched: the vocabulary tokens it shares with the query, by contribution.

        Tokens that read the same (" bees" and "bees") are merged: the user sees words, not token ids.
        """
        if self.sparse is None:
            return []
        merged: dict[str, float] = {}
        for token, weight in self.sparse.shared_tokens(encoded.sparse[qi], row):
            text = self.backbone.tokenizer.decode([token]).strip() or repr(self.backbone.tokenizer.decode([token]))
            merged[text] = merged.get(text, 0.0) + weight
        top = sorted(merged.items(), key=lambda tw: -tw[1])[:limit]
        return [{"token": text, "weight": round(weight, 4)} for text, weight in top]


def _top_positive(scores: np.ndarray, depth: int) -> np.ndarray:
    """Ids of the highest positive scores: a document sharing no token with the query was not found."""
    positive = np.flatnonzero(scores > 0)
    if len(positive) > depth:
        positive = positive[np.argpartition(-scores[positive], depth - 1)[:depth]]
    return positive[np.argsort(-scores[positive], kind="stable")]
