"""Answering queries against a built index: encode once, search each leg, rescore, fuse.

Candidates are the union of the legs' top lists. A document one leg missed is rescored exactly by that
leg (its stored vector, its stored sparse row or postings) rather than given a guessed floor, so fusion
always compares real scores.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import scipy.sparse as sp

from .backbones import Backbone
from .dense import DenseIndex
from .encoders import Encoder, make_method
from .errors import BadIndexError, InputError, RetrieverError
from .fusion import fuse
from .indexer import DENSE_FAISS, LEGS, MODEL_LEGS, IndexSettings, make_projector
from .lexical import VOCAB_FILE, LexicalQueries, parse_vocabulary
from .sparse import SparseIndex, own_token_ids
from .store import load_array, load_csr, read_documents, read_file

MODES = ("hybrid", "dense", "sparse", "lexical")
QUERY_CHUNK = 64


@dataclass
class Result:
    row: int  # internal document id
    score: float
    leg_scores: dict[str, float]


@dataclass
class EncodedQueries:
    """Queries as each requested leg sees them: dense vectors, and rows over an inverted index's vocabulary."""

    count: int
    dense: np.ndarray | None = None
    rows: dict[str, sp.csr_matrix] = field(default_factory=dict)  # "sparse", "lexical"

    def has(self, leg: str) -> bool:
        return self.dense is not None if leg == "dense" else leg in self.rows


def _read_faiss(folder: Path, manifest: dict[str, Any]) -> faiss.Index:
    """FAISS's file, checksummed before FAISS parses it: damaged native data could crash the process."""
    data = read_file(folder, DENSE_FAISS, manifest)
    try:
        return faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
    except RuntimeError as exc:  # FAISS reports a damaged file this way
        raise BadIndexError(f"{folder / DENSE_FAISS}: cannot read the FAISS index "
                            f"({str(exc).splitlines()[0]})") from None


def _dense_index(folder: Path, manifest: dict[str, Any]) -> DenseIndex:
    vectors, index = load_array(folder, "dense"), _read_faiss(folder, manifest)
    if vectors.ndim != 2 or len(vectors) != manifest["documents"] or index.d != vectors.shape[1]:
        raise BadIndexError(f"{folder}: dense.npy has shape {vectors.shape} and the FAISS index dimension "
                            f"{index.d}, for {manifest['documents']} documents")
    try:
        return DenseIndex(vectors, index)
    except ValueError as exc:
        raise BadIndexError(f"{folder}: {exc}") from None


class Searcher:
    def __init__(self, folder: str | Path, manifest: dict[str, Any], backbone: Backbone | None):
        folder = Path(folder)
        try:
            self.settings = IndexSettings.from_dict(manifest["settings"])
        except (TypeError, ValueError, RetrieverError) as exc:
            raise BadIndexError(f"{folder}: the manifest's settings are damaged ({exc})") from None
        self.backbone = backbone
        self.encoder = None  # a lexical-only index is searched without the LLM
        if self.settings.needs_model:
            if backbone is None:
                raise RetrieverError(f"{folder}: its {' and '.join(self.settings.legs)} legs need the model "
                                     "it was built with")
            self.encoder = Encoder(backbone, make_method(self.settings.method, **self.settings.method_params),
                                   self.settings.max_tokens)
        self.documents = read_documents(folder)
        self.ids: list[str] = self.documents.column("id").to_pylist()
        n = len(self.ids)
        if n != manifest["documents"]:
            raise BadIndexError(f"{folder}: manifest says {manifest['documents']} documents, found {n}")
        self.dense, self.projector, self.lexical = None, None, None
        self.inverted: dict[str, SparseIndex] = {}  # the legs searched by a sparse product
        if "dense" in self.settings.legs:
            self.dense = _dense_index(folder, manifest)
        if "sparse" in self.settings.legs:
            u1 = np.array(load_array(folder, "u1"))
            if u1.shape != (backbone.hidden_size,) or not np.all(np.isfinite(u1)):
                raise BadIndexError(f"{folder / 'u1.npy'}: not a finite vector of the model's width "
                                    f"{backbone.hidden_size} (shape {u1.shape})")
            self.projector = make_projector(backbone, self.settings, u1)
            vocab = self.projector.vocab_size
            self.inverted["sparse"] = SparseIndex(load_csr(folder, "sparse_rows", (n, vocab)),
                                                  load_csr(folder, "sparse_postings", (vocab, n)))
        if "lexical" in self.settings.legs:
            vocabulary = parse_vocabulary(read_file(folder, VOCAB_FILE, manifest), str(folder / VOCAB_FILE))
            self.lexical = LexicalQueries(self.settings.lexical, vocabulary)
            self.inverted["lexical"] = SparseIndex.from_postings(
                load_csr(folder, "lexical_postings", (len(vocabulary), n)))
        self.legs = tuple(leg for leg in LEGS if leg in self.settings.legs)

    def encode(self, queries: Sequence[str], legs: Sequence[str] | None = None) -> EncodedQueries:
        """Queries for the given legs (default: all); the LLM runs only when a leg needs it."""
        legs = self.legs if legs is None else legs
        for i, q in enumerate(queries):
            _check_query(q, i + 1)
        encoded = EncodedQueries(len(queries))
        if any(leg in MODEL_LEGS for leg in legs):
            with self.backbone.lock:  # the tokenizer too is shared state (encoders: Encoder.encode)
                vectors = self.encoder.encode(list(queries))
                own = own_token_ids(self.backbone.tokenizer, queries) if "sparse" in legs else None
            if "dense" in legs:
                encoded.dense = vectors.dense
            if own is not None:
                encoded.rows["sparse"] = self.projector.queries(self.projector.lexical(vectors.residual), own)
        if "lexical" in legs:
            encoded.rows["lexical"] = self.lexical.encode(queries)
        return encoded

    def legs_for(self, mode: str) -> tuple[str, ...]:
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
        legs = self.legs_for(mode)
        encoded = encoded or self.encode(queries, legs)
        depth = max(depth, k) if len(legs) > 1 else k
        results: list[list[Result]] = []
        for candidates, scores in self.candidates(encoded, legs, depth):
            fused = fuse({leg: scores[leg] for leg in legs}, self.settings.fusion, self.settings.rrf_k,
                         self.settings.weights) if len(legs) > 1 else scores[legs[0]]
            order = np.argsort(-fused, kind="stable")[:k]
            results.append([Result(int(candidates[i]), float(fused[i]),
                                   {leg: float(s[i]) for leg, s in scores.items()}) for i in order])
        return results

    def candidates(self, encoded: EncodedQueries, legs: Sequence[str],
                   depth: int) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
        """Per query: the union of the legs' top-depth lists, and every encoded leg's exact score for each.

        A document one leg missed is rescored exactly by that leg, so fusion never guesses a score.
        """
        if missing := [leg for leg in legs if not encoded.has(leg)]:
            raise RetrieverError(f"the queries were not encoded for the {', '.join(missing)} leg")
        dense_top = self.dense.search(encoded.dense, depth)[1] if "dense" in legs else None
        for start in range(0, encoded.count, QUERY_CHUNK):  # bounds the queries x documents score blocks
            stop = min(start + QUERY_CHUNK, encoded.count)
            blocks = {leg: self.inverted[leg].score_all(rows[start:stop]) for leg, rows in encoded.rows.items()}
            for qi in range(start, stop):
                full = {leg: block[qi - start] for leg, block in blocks.items()}
                lists = [dense_top[qi][dense_top[qi] >= 0]] if dense_top is not None else []
                lists += [top_positive(full[leg], depth) for leg in legs if leg in full]
                candidates = np.array(list(dict.fromkeys(np.concatenate(lists).tolist())), dtype=np.int64)
                scores = {leg: s[candidates] for leg, s in full.items()}
                if encoded.dense is not None:
                    scores = {"dense": self.dense.score(encoded.dense[qi], candidates), **scores}
                yield candidates, scores

    def shared_tokens(self, encoded: EncodedQueries, qi: int, row: int, limit: int = 8) -> list[dict]:
        """Why a document matched: the key tokens it shares with the query by contribution, or, without
        the key-token leg, the words it shares with it by BM25 contribution.

        Tokens that read the same (" bees" and "bees") are merged: the user sees words, not token ids.
        """
        leg = next((leg for leg in ("sparse", "lexical") if leg in encoded.rows), None)
        if leg is None:
            return []
        merged: dict[str, float] = {}
        for token, weight in self.inverted[leg].shared_tokens(encoded.rows[leg][qi], row):
            text = self._token_text(leg, token)
            merged[text] = merged.get(text, 0.0) + weight
        top = sorted(merged.items(), key=lambda tw: -tw[1])[:limit]
        return [{"token": text, "weight": round(weight, 4)} for text, weight in top]

    def _token_text(self, leg: str, token: int) -> str:
        if leg == "lexical":
            return self.lexical.vocabulary[token]
        raw = self.backbone.tokenizer.decode([token])
        return raw.strip() or repr(raw)


def _check_query(query: Any, number: int) -> None:
    if not isinstance(query, str):
        raise InputError("a query must be a string", "queries", number)
    if not query.strip():
        raise InputError("empty query", "queries", number)
    try:
        query.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(f"invalid Unicode (a lone surrogate) at character {exc.start}", "queries", number) from None


def top_positive(scores: np.ndarray, depth: int) -> np.ndarray:
    """Ids of the highest positive scores: a document sharing no token with the query was not found.

    The top depth are taken first and filtered after: a common token can make most of a million
    documents positive, and selecting them first cost twice as much (scripts/bench_scale.py).
    """
    top = np.argpartition(scores, len(scores) - depth)[-depth:] if len(scores) > depth else np.arange(len(scores))
    top = top[scores[top] > 0]
    return top[np.argsort(-scores[top], kind="stable")]
