"""KeyTokenLeg: the leg's files (rows before idf, u_1), how it writes, merges, opens, searches and
explains, and the readers of format-1 indexes."""

from __future__ import annotations

import functools
import hashlib
import re
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pyarrow as pa
import scipy.sparse as sp

from ...errors import BadIndexError, RetrieverError
from ...index.store import stored_contents
from ...models.kinds import LLM, TOKENIZER
from ..base import Hits, LegContext, Part, Settings

if TYPE_CHECKING:
    from ...index.segments import Segment
    from ...index.store import FileWriter

from ..inverted import SparseIndex, bm25_impacts, token_idf, with_idf
from .config import BM25_SCORINGS, SparseConfig
from .own_tokens import OwnTokens, own_query_rows, query_words, vocabulary_rules
from .projector import KeyTokenProjector, sample_rows

U1 = "u1"  # u1.npy: the principal component removed before projecting, for queries as for documents


ROWS = "sparse_rows"  # a segment's documents x vocabulary weights before any idf, CSR as three .npy arrays


LEGACY_POSTINGS = "sparse_postings"  # a format-1 index's rows transposed (its rows hold the idf already)


LEGACY_IDF = "sparse_idf"  # a format-1 index's per-token idf


def make_projector(backbone, settings: Settings, u1: np.ndarray | None = None) -> KeyTokenProjector:
    """The key-token projector in fp32 whatever the model's dtype: W_U e' is a sum over the hidden size in
    which u_1's removal cancels most of the vector, and bf16 rounding would move the token scores."""
    vocab = int(backbone.unembedding.shape[0])
    excluded, canon = vocabulary_rules(backbone.tokenizer, settings.sparse, vocab)
    return KeyTokenProjector(backbone.unembedding_fp32, backbone.float32(backbone.final_norm), excluded,
                             settings.sparse, u1, canon)


def document_rows(projector: KeyTokenProjector, own: OwnTokens, settings: Settings, table: pa.Table,
                  residual: np.ndarray) -> sp.csr_matrix:
    """Key-token rows of stored documents (a documents table) from their residual vectors (before idf)."""
    budget = settings.max_tokens if settings.sparse.own_span == "budget" else None
    tokens = own(stored_contents(table), budget) if settings.sparse.own_tokens else None
    return projector.documents(projector.lexical(np.array(residual)), tokens)


def _sample(projector: KeyTokenProjector, parts: Sequence[Part]) -> np.ndarray:
    """The vectors u_1 is fitted on, gathered part by part: never the whole corpus in memory."""
    sizes = [p.documents().num_rows for p in parts]
    rows = sample_rows(sum(sizes))
    sample, offset = [], 0
    for part, n in zip(parts, sizes, strict=True):
        mine = rows[(rows >= offset) & (rows < offset + n)] - offset
        if len(mine):
            sample.append(projector.lexical(np.array(part.array("residual")[mine])))
        offset += n
    return np.concatenate(sample)


class KeyTokenLeg:
    """The key-token leg's files and search: per segment u1.npy (the index's, the same in every segment)
    and the documents' rows before idf; the idf is taken over every live row when the index opens."""

    name: ClassVar[str] = "sparse"
    config: ClassVar[type] = SparseConfig  # its options (legs/options.py)
    title: ClassVar[str] = "key-token leg"
    explains: ClassVar[bool] = True

    def __init__(self, projector: KeyTokenProjector | None, index: SparseIndex, tokenizer,
                 idf: np.ndarray | None = None, config: SparseConfig | None = None,
                 lock: threading.RLock | None = None):
        """projector: None where queries need no LLM (query_side "own"): the leg then holds the tokenizer
        and the vocabulary's rules only, and config says how it was built."""
        self.projector, self.index, self.tokenizer, self.idf = projector, index, tokenizer, idf
        self.config = config or projector.config
        self.vocab_size = index.doc_rows.shape[1]
        if projector is not None:
            self.excluded, canon = set(projector.excluded.tolist()), projector.canon_array
        else:
            excluded, canon = vocabulary_rules(tokenizer, self.config, self.vocab_size)
            self.excluded = set(excluded)
        self.own = OwnTokens(tokenizer, self.config, canon)
        self.lock = lock or threading.RLock()  # the tokenizer's: a fast tokenizer's settings are shared state
        self._query_words = functools.lru_cache(maxsize=1024)(self._words_of)  # once per query, not per hit

    @classmethod
    def models(cls, settings: Settings) -> frozenset[str]:
        return frozenset({LLM})

    @classmethod
    def query_models(cls, settings: Settings) -> frozenset[str]:
        """A query's own tokens need the tokenizer only; the LLM's query side needs its forward pass."""
        return frozenset({LLM} if settings.sparse.query_side == "model" else {TOKENIZER})

    @classmethod
    def write(cls, writer: FileWriter, parts: Sequence[Part], ctx: LegContext) -> dict[str, Any]:
        """u_1: ctx.u1, else the index's (an add), else fitted on a sample of the whole build before any
        document is projected."""
        backbone, settings = ctx.backbone, ctx.settings
        u1 = ctx.u1 if ctx.u1 is not None else (_index_u1(ctx.segments) if ctx.segments else None)
        with ctx.timing("project"):
            projector = make_projector(backbone, settings, u1)
            if u1 is None:
                projector.fit(_sample(projector, parts))
            elif u1.shape != (backbone.hidden_size,):
                raise RetrieverError(f"u1 has shape {u1.shape}, the model's hidden size is {backbone.hidden_size}")
            own = OwnTokens(backbone.tokenizer, settings.sparse, projector.canon_array)
            rows = sp.vstack([document_rows(projector, own, settings, p.documents(), p.array("residual"))
                              for p in parts], format="csr")
        with ctx.timing("write"):
            return cls._write(writer, projector.u1, rows)

    @classmethod
    def merge(cls, writer: FileWriter, segments: Sequence[Segment], ctx: LegContext) -> dict[str, Any]:
        return cls._write(writer, _index_u1(segments), _live_rows(segments, int(segments[0].fields["vocab_size"])))

    @staticmethod
    def _write(writer: FileWriter, u1: np.ndarray, rows: sp.csr_matrix) -> dict[str, Any]:
        rows = rows.tocsr()
        rows.sort_indices()
        writer.add_array(U1, u1)
        writer.add_csr(ROWS, rows)
        return {"u1_sha256": hashlib.sha256(u1.tobytes()).hexdigest(), "sparse_nnz": int(rows.nnz),
                "vocab_size": int(rows.shape[1])}

    @classmethod
    def summary(cls, segments: Sequence[Segment]) -> dict[str, Any]:
        first = segments[0].fields
        return {"u1_sha256": first["u1_sha256"], "vocab_size": first["vocab_size"],
                "sparse_nnz": sum(int(s.fields["sparse_nnz"]) for s in segments)}

    @classmethod
    def check(cls, segment: Segment, manifest: dict[str, Any]) -> str:
        n, vocab = segment.rows, manifest["vocab_size"]
        rows = segment.csr(ROWS, (n, vocab))
        if not np.all(np.isfinite(rows.data)) or np.any(rows.data <= 0):
            raise BadIndexError(f"{ROWS}: weights must be finite and positive")
        if segment.legacy and (rows.T.tocsr() != segment.csr(LEGACY_POSTINGS, (vocab, n))).nnz:
            raise BadIndexError(f"{LEGACY_POSTINGS} is not the transpose of {ROWS}")
        u1 = segment.array(U1)
        if u1.ndim != 1 or not np.all(np.isfinite(u1)) or abs(float(np.linalg.norm(u1)) - 1) > 1e-3:
            raise BadIndexError(f"{U1}.npy: not a finite unit vector")
        if not segment.legacy and hashlib.sha256(np.asarray(u1).tobytes()).hexdigest() != manifest["u1_sha256"]:
            raise BadIndexError(f"{U1}.npy is not the index's u_1 (its sha256 differs from the manifest's)")
        if segment.legacy and f"{LEGACY_IDF}.npy" in manifest.get("files", {}):
            idf = segment.array(LEGACY_IDF)
            if idf.shape != (vocab,) or not np.all(np.isfinite(idf)) or np.any(idf <= 0):
                raise BadIndexError(f"{LEGACY_IDF}.npy: not {vocab} finite positive weights")
        return f"{rows.nnz} weights over {vocab} tokens; u1 is the index's unit vector"

    @classmethod
    def open(cls, segments: Sequence[Segment], ctx: LegContext) -> KeyTokenLeg:
        """With the LLM (ctx.backbone) the leg can project queries; without it (a query side of own tokens)
        it opens on ctx.tokenizer alone, and the index's vocabulary width is the manifest's."""
        backbone, config = ctx.backbone, ctx.settings.sparse
        projector, (tokenizer, lock) = None, (ctx.tokenizer, None)
        if backbone is not None:
            u1 = _index_u1(segments)
            if u1.shape != (backbone.hidden_size,) or not np.all(np.isfinite(u1)):
                raise BadIndexError(f"{segments[0].folder / (U1 + '.npy')}: not a finite vector of the model's "
                                    f"width {backbone.hidden_size} (shape {u1.shape})")
            projector, (tokenizer, lock) = make_projector(backbone, ctx.settings, u1), backbone.side_tokenizer()
        vocab = projector.vocab_size if projector is not None else int(segments[0].fields["vocab_size"])
        if segments[0].legacy:
            idf = _legacy_idf(segments[0], vocab) if config.idf != "none" else None
            return cls(projector, _legacy_index(segments[0], vocab), tokenizer, idf, config, lock)
        index, idf = scored_index(_live_rows(segments, vocab), config)
        return cls(projector, index, tokenizer, idf, config, lock)

    def encode(self, texts: Sequence[str], vectors: Any) -> sp.csr_matrix:
        """Query rows, with the leg's own tokenizer (never the one a forward pass is using): the query's
        own tokens (weight 1, or idf where the index puts idf on both sides), or the LLM's projection."""
        with self.lock:
            own = self.own(texts)
        if self.config.query_side == "own":
            on_query = self.config.idf == "both" and self.config.scoring == "weighted"  # paper, bm25: a set
            return own_query_rows(own, self.vocab_size, self.excluded, self.idf if on_query else None)
        return self.projector.queries(self.projector.lexical(vectors.residual), own, self.idf)

    def hits(self, queries: sp.csr_matrix, depth: int, mask: np.ndarray | None = None) -> Hits:
        return self.index.hits(queries, depth, mask)

    def explain(self, queries: sp.csr_matrix, qi: int, row: int, text: str,
                document: str = "") -> list[tuple[str, float]]:
        """A token of the query reads as the query word it is part of (sub-word pieces merge into it) where
        the document has that word; else as itself (a piece shared with another word, "SC" of "GSCs" in
        "MSCs", or an expansion token the model added)."""
        words, held = self._query_words(text), _word_finder(document)
        out = []
        for token, weight in self.index.shared_tokens(queries[qi], row):
            word = words.get(token)
            out.append((word if word is not None and held(word) else self._text(token), weight))
        return out

    def _words_of(self, text: str) -> dict[int, str]:
        with self.lock:
            if self.config.own_words == "content":
                return self.own.words(text)
            words = query_words(self.tokenizer, text)
        canon = self.own.canon
        return words if canon is None else {int(canon[t]): w for t, w in reversed(words.items())}

    def _text(self, token: int) -> str:
        raw = self.tokenizer.decode([token])
        return raw.strip() or repr(raw)


def _word_finder(document: str):
    """Whether document holds a word, as a whole word, in any case; every word where document is unknown."""
    if not document:
        return lambda word: True
    lowered = document.lower()
    return lambda word: re.search(rf"(?<!\w){re.escape(word.lower())}(?!\w)", lowered) is not None


def scored_index(raw: sp.csr_matrix, config: SparseConfig) -> tuple[SparseIndex, np.ndarray | None]:
    """The index a search scores, from the documents' rows before idf (the corpus statistics are taken
    over them): BM25 impacts under the bm25 scorings, else the weights times the idf where the config puts
    it; and the idf itself (None without one)."""
    if config.scoring in BM25_SCORINGS:
        idf = token_idf(raw)
        return SparseIndex(bm25_impacts(raw, idf, config.k1, config.b)), idf
    idf = token_idf(raw) if config.idf != "none" else None
    return SparseIndex(raw if idf is None else with_idf(raw, idf)), idf


def _index_u1(segments: Sequence[Segment]) -> np.ndarray:
    """The index's u_1: every segment holds the same one (an add projects with it)."""
    u1 = np.array(segments[0].array(U1))
    for segment in segments[1:]:
        if not np.array_equal(np.asarray(segment.array(U1)), u1):
            raise BadIndexError(f"{segment.folder / (U1 + '.npy')} differs from {segments[0].name}'s: the segments "
                                "were not projected alike")
    return u1


def _live_rows(segments: Sequence[Segment], vocab: int) -> sp.csr_matrix:
    """The live documents' rows before idf, every segment's in index-row order."""
    parts = []
    for segment in segments:
        rows = segment.csr(ROWS, (segment.rows, vocab))
        if segment.legacy and f"{LEGACY_IDF}.npy" in segment.sha256:  # its rows hold the idf already
            rows = with_idf(rows, 1.0 / np.asarray(segment.array(LEGACY_IDF)))
        parts.append(rows if segment.live is None else rows[segment.live_rows()])
    return parts[0] if len(parts) == 1 else sp.vstack(parts, format="csr")


def _legacy_index(segment: Segment, vocab: int) -> SparseIndex:
    n = segment.rows
    return SparseIndex(segment.csr(ROWS, (n, vocab)), segment.csr(LEGACY_POSTINGS, (vocab, n)))


def _legacy_idf(segment: Segment, vocab: int) -> np.ndarray:
    idf = np.array(segment.array(LEGACY_IDF))
    if idf.shape != (vocab,):
        raise BadIndexError(f"{segment.folder / (LEGACY_IDF + '.npy')}: shape {idf.shape}, not ({vocab},)")
    return idf
