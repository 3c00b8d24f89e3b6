"""The key-token sparse index: embeddings projected through the LLM's own unembedding onto its vocabulary.

W_U e ranks a text's key tokens highest once the first principal component u_1 of the embedding space
is adjusted (that direction mostly drives "the", "and" and punctuation). A document keeps its own tokens
plus its top-K (own_tokens), or only its top-K; a word's case, space and (with stem) Snowball variants
are folded into one canonical token first, so K expansions are K distinct words. A query is, by default,
its own tokens weighted by their idf: the doc-only recipe, in which the LLM runs at index time only and a
query needs the tokenizer alone (query_side "own"); or the LLM's projection of it plus its top-M (query_side
"model", every index built before). Scoring is a sparse dot product over an inverted index, or BM25 with
the model's weights as term frequencies (the bm25 scorings). u_1 and every parameter are stored with the
index and applied to queries exactly as to documents.

KeyTokenLeg owns the leg's files (leg.py); KeyTokenProjector and SparseIndex are its math, the second
shared with the lexical leg. The projector holds tensors, not a model: the leg hands it the backbone's.

Defaults measured on SciFact train (docs/quality.md): a document's own tokens plus 16 expansion tokens,
half of u_1 removed and log-saturated weights make the leg 3.6x better than top-128 alone; own-token
queries fuse as well as the LLM's (issue 27).
"""

from __future__ import annotations

import functools
import hashlib
import re
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pyarrow as pa
import scipy.sparse as sp
import torch
from bm25s.stopwords import STOPWORDS_EN_PLUS

from ..errors import BadIndexError, RetrieverError
from ..index.store import stored_contents
from ..models.invariance import pad_rows
from .base import LLM, TOKENIZER, Hits, LegContext, Part

if TYPE_CHECKING:
    from ..index.segments import Segment
    from ..index.store import FileWriter
    from ..settings import IndexSettings

WEIGHTINGS = ("relu", "log1p")
OWN_WORDS = ("content", "all")  # a text's own tokens: its content words' pieces, or every token it has
SPELLINGS = ("space", "bare")  # a word's pieces as mid-sentence (" word") or bare ("word", PromptReps)
IDF = ("none", "documents", "both")  # where the corpus idf multiplies the weights
# "weighted": sum of w_q w_d; "paper": the sum of w_d over the query's token set (documents top-K only);
# "bm25": BM25 with a token's model weight as its term frequency and a row's weight mass as its length;
# "bm25-count": the same with the weight times the token's count in the text (issue 27, docs/quality.md)
SCORINGS = ("weighted", "paper", "bm25", "bm25-count")
BM25_SCORINGS = ("bm25", "bm25-count")
QUERY_SIDES = ("model", "own")  # a query's row: the LLM's projection of it, or its own tokens (no LLM)
FOLDS = ("none", "max", "sum")  # how a word's case and space variants' weights become one canonical token's
OWN_SPANS = ("budget", "text")  # own tokens from the text within the LLM's token budget, or the whole text
QUERY_CHUNK = 64  # queries scored together against every document: bounds the queries x documents block


@dataclass(frozen=True)
class SparseConfig:
    top_k: int = 16  # aligned tokens per document (added to its own tokens when own_tokens)
    query_top_m: int = 0  # aligned tokens added to a query's own tokens (query_side "model")
    alpha: float = 0.5  # how much of u_1 to remove: e' = e - alpha (e . u_1) u_1
    final_norm: bool = True  # apply the model's final norm before W_U
    weighting: str = "log1p"  # relu(s) or log(1 + relu(s))
    own_tokens: bool = True  # documents keep the tokens they contain, as queries do
    own_words: str = "content"  # which tokens a text contains count (OWN_WORDS): no stopwords, punctuation
    spelling: str = "space"  # how a content word's pieces are spelled (SPELLINGS)
    idf: str = "both"  # the corpus idf of each token on the weights (IDF): with own-token queries, BM25's idf
    scoring: str = "weighted"  # SCORINGS
    query_side: str = "own"  # QUERY_SIDES: "own" needs the tokenizer only, never the LLM, at query time
    fold: str = "max"  # FOLDS, before top-K, on documents and queries alike
    stem: bool = True  # fold a word's Snowball stem's variants too ("cancers" and "cancer" meet)
    own_span: str = "text"  # OWN_SPANS
    k1: float = 1.2  # BM25's saturation and length normalisation under the bm25 scorings (Robertson's values)
    b: float = 0.75

    @classmethod
    def from_dict(cls, data: dict) -> SparseConfig:
        """Indexes written before a field existed behave as they were built: own_tokens off before it
        existed, every token a text contains before own_words, no idf, weighted scoring, the LLM's query
        side, no fold, own tokens within the LLM's budget."""
        return cls(**{"own_tokens": False, "own_words": "all", "query_top_m": 16, "idf": "none",
                      "query_side": "model", "fold": "none", "stem": False, "own_span": "budget", **data})

    def __post_init__(self):
        for name, allowed in (("weighting", WEIGHTINGS), ("own_words", OWN_WORDS), ("spelling", SPELLINGS),
                              ("idf", IDF), ("scoring", SCORINGS), ("query_side", QUERY_SIDES), ("fold", FOLDS),
                              ("own_span", OWN_SPANS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, not {getattr(self, name)!r}")
        if self.scoring == "paper" and self.own_tokens:
            raise ValueError("paper scoring keeps a document's top-K aligned tokens only (own_tokens off)")
        if self.top_k < (0 if self.own_tokens else 1) or self.query_top_m < 0:
            raise ValueError("top_k must be >= 1 (>= 0 with own_tokens) and query_top_m >= 0")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError("alpha must lie in [0, 1]")
        if self.query_side == "own" and self.query_top_m:
            raise ValueError("query_top_m adds the LLM's tokens to a query: it needs query_side 'model'")
        if self.stem and self.fold == "none":
            raise ValueError("stem folds a word's variants into one token: choose a fold (max or sum)")
        if self.k1 < 0 or not 0.0 <= self.b <= 1.0:
            raise ValueError("k1 must be >= 0 and b in [0, 1]")

    def to_dict(self) -> dict:
        return asdict(self)


PC_SAMPLE = 20000  # documents u_1 is fitted on: plenty for one direction, and bounded memory at any size


def sample_rows(n: int, size: int = PC_SAMPLE, seed: int = 0) -> np.ndarray:
    """Sorted row numbers of the documents u_1 is fitted on: all of them up to size, else a seeded sample."""
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size, replace=False))


def first_component(vectors: np.ndarray) -> np.ndarray:
    """u_1: first right singular vector of the uncentered embedding matrix (callers pass a sample).

    The sign is fixed so that the embeddings project positively on average: the same data always
    yields the same u_1, which keeps index builds reproducible.
    """
    x = np.asarray(vectors, dtype=np.float64)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    u1 = vt[0]
    if (x @ u1).sum() < 0:
        u1 = -u1
    return u1.astype(np.float32)


def adjust(vectors: np.ndarray, u1: np.ndarray, alpha: float) -> np.ndarray:
    """e' = e - alpha (e . u_1) u_1, row-wise, in float64 and returned in float32: the BLAS's matrix-vector
    kernel groups rows, and fp32 would round a row by its neighbours (invariance.py)."""
    x = np.asarray(vectors, dtype=np.float64)
    return (x - alpha * np.outer(x @ np.asarray(u1, np.float64), u1)).astype(np.float32)


def weigh(scores: torch.Tensor, weighting: str) -> torch.Tensor:
    positive = scores.clamp_min(0.0)
    return torch.log1p(positive) if weighting == "log1p" else positive


def fold_weights(weights: torch.Tensor, canon: torch.Tensor, fold: str) -> torch.Tensor:
    """Each canonical token's weight, the max or the sum of its variants' (weights are >= 0); every other
    token's 0. Before top-K, so that K expansions are K distinct words."""
    folded = torch.zeros_like(weights)
    return folded.scatter_reduce_(1, canon.expand_as(weights), weights, reduce="amax" if fold == "max" else "sum")


class KeyTokenProjector:
    """Turns raw residual-stream vectors into weighted vocabulary tokens.

    It holds tensors, not a model: the caller hands over the unembedding matrix and the final norm, so
    it knows nothing about how a model is loaded.
    """

    def __init__(self, unembedding: torch.Tensor, norm: Callable[[torch.Tensor], torch.Tensor],
                 excluded_ids: Sequence[int], config: SparseConfig, u1: np.ndarray | None = None,
                 canon: np.ndarray | None = None):
        self.unembedding, self.norm, self.config = unembedding, norm, config
        self.vocab_size = int(unembedding.shape[0])
        self.excluded = torch.tensor(sorted(set(excluded_ids)), dtype=torch.long)
        self.u1 = u1
        self.canon = None if canon is None else torch.from_numpy(np.asarray(canon, np.int64))  # canonical_ids

    @property
    def canon_array(self) -> np.ndarray | None:
        return None if self.canon is None else self.canon.numpy()

    def lexical(self, residual: np.ndarray) -> np.ndarray:
        """The vector the vocabulary sees: the residual stream, after the final norm if configured."""
        if not self.config.final_norm or len(residual) == 0:
            return np.asarray(residual, dtype=np.float32)
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(residual, dtype=np.float32))
            x = x.to(self.unembedding.device, self.unembedding.dtype)
            return self.norm(x).float().cpu().numpy()

    def fit(self, sample: np.ndarray) -> np.ndarray:
        """u_1 from lexical vectors of the documents sample_rows picks (all of them in a small corpus)."""
        self.u1 = first_component(sample)
        return self.u1

    def token_scores(self, lexical: np.ndarray) -> torch.Tensor:
        """s = W_U e' for each row, special tokens excluded (n x vocab, float32)."""
        if self.u1 is None:
            raise RuntimeError("the principal component is not fitted yet")
        adjusted = adjust(lexical, self.u1, self.config.alpha)
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(adjusted, dtype=np.float32))
            x = pad_rows(x.to(self.unembedding.device, self.unembedding.dtype))  # invariance.py
            scores = (x @ self.unembedding.T).float()[: len(adjusted)]
            scores[:, self.excluded.to(scores.device)] = float("-inf")
        return scores

    def weights(self, lexical: np.ndarray) -> torch.Tensor:
        """Token weights of each row, folded onto canonical tokens where the config folds."""
        weights = weigh(self.token_scores(lexical), self.config.weighting)
        return weights if self.canon is None else fold_weights(weights, self.canon.to(weights.device), self.config.fold)

    def top_tokens(self, lexical: np.ndarray, k: int, chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """Top-k token ids and their weights per row, chunked so no n x vocab matrix is ever whole."""
        ids, weights = [], []
        for start in range(0, len(lexical), chunk):
            top = torch.topk(self.weights(lexical[start:start + chunk]), min(k, self.vocab_size), dim=1)
            ids.append(top.indices.cpu().numpy().astype(np.int32))
            weights.append(top.values.cpu().numpy().astype(np.float32))
        if not ids:
            return np.zeros((0, k), np.int32), np.zeros((0, k), np.float32)
        return np.concatenate(ids), np.concatenate(weights)

    def documents(self, lexical: np.ndarray, own_tokens: Sequence[Sequence[int]] | None = None) -> sp.csr_matrix:
        """Document rows (documents x vocabulary): own tokens plus top-K, or top-K alone, weights > 0."""
        if self.config.own_tokens:
            if own_tokens is None:
                raise ValueError("own_tokens is set: the documents' own token ids are needed")
            return self.with_own_tokens(lexical, own_tokens, self.config.top_k)
        ids, weights = self.top_tokens(lexical, self.config.top_k)
        return ragged_to_csr(list(ids), list(weights), self.vocab_size)

    def queries(self, lexical: np.ndarray, own_tokens: Sequence[Sequence[int]],
                idf: np.ndarray | None = None) -> sp.csr_matrix:
        """Query rows: the top-M aligned tokens plus the query's own tokens; under paper scoring a set
        (every weight 1), else weighted, times the corpus idf where the index applies it to queries."""
        rows = self.with_own_tokens(lexical, own_tokens, self.config.query_top_m)
        if self.config.scoring == "paper":
            rows.data[:] = 1.0
        elif idf is not None and self.config.idf == "both":
            rows = with_idf(rows, idf)
        return rows

    def with_own_tokens(self, lexical: np.ndarray, own_tokens: Sequence[Sequence[int]], m: int,
                        chunk: int = 64) -> sp.csr_matrix:
        """Rows of a text's own tokens plus its top-m aligned tokens.

        An own token keeps its aligned weight, but never less than the weakest top-m token: the text
        contains it, so it should count at least as much as an expansion the model guessed. Under
        bm25-count scoring an own token's weight is multiplied by its count in the text.
        """
        excluded = set(self.excluded.tolist())
        rows_ids, rows_w = [], []
        for start in range(0, len(lexical), chunk):
            weights = self.weights(lexical[start:start + chunk])
            top = torch.topk(weights, m, dim=1) if m else None
            for r in range(weights.shape[0]):
                chosen = dict(zip(top.indices[r].tolist(), top.values[r].tolist(), strict=True)) if m else {}
                floor = min((w for w in chosen.values() if w > 0), default=1.0)
                counts = Counter(t for t in own_tokens[start + r] if t not in excluded and 0 <= t < self.vocab_size)
                for t, count in counts.items():
                    chosen[t] = max(float(weights[r, t]), floor) * (count if self.config.scoring == "bm25-count" else 1)
                rows_ids.append(np.fromiter(chosen.keys(), np.int32, len(chosen)))
                rows_w.append(np.fromiter(chosen.values(), np.float32, len(chosen)))
        return ragged_to_csr(rows_ids, rows_w, self.vocab_size)


WORD = re.compile(r"\w+")
STOPWORDS = frozenset(STOPWORDS_EN_PLUS)  # NLTK's English list, as PromptReps removes


class OwnTokens:
    """The tokens a text contains, as its key-token row and its query keep them.

    own_words "all": every token of the text spelled as mid-sentence words (a leading space, as W_U ranks
    them). "content", PromptReps' recipe: the lowercased text's words without stopwords and punctuation,
    each word tokenized alone and all its pieces kept, except pieces the vocabulary mask drops (single
    characters, punctuation, stopwords). Words are tokenized once and remembered. canon (canonical_ids):
    every token as its word's canonical token, where the index folds variants.
    """

    CACHE = 200_000  # words remembered; cleared when full (a server's queries must not grow it forever)

    def __init__(self, tokenizer, config: SparseConfig, canon: np.ndarray | None = None):
        self.tokenizer, self.config, self.canon = tokenizer, config, canon
        self._pieces: dict[str, list[int]] = {}

    def __call__(self, texts: Sequence[str], max_tokens: int | None = None) -> list[list[int]]:
        if self.config.own_words == "all":
            spaced = [" " + t.strip() for t in texts]
            cut = {} if max_tokens is None else {"truncation": True, "max_length": max_tokens}
            ids = self.tokenizer(spaced, add_special_tokens=False, **cut).input_ids if spaced else []
        else:
            words = [WORD.findall(t.lower()) for t in texts]
            self._learn({w for ws in words for w in ws})
            ids = [self._text_ids(ws, max_tokens) for ws in words]
        return ids if self.canon is None else [self.canon[np.asarray(row, np.int64)].tolist() for row in ids]

    def _learn(self, words: set[str]) -> None:
        new = sorted(w for w in words if w not in self._pieces)
        if not new:
            return
        if len(self._pieces) + len(new) > self.CACHE:
            self._pieces.clear()
        prefix = " " if self.config.spelling == "space" else ""
        ids = self.tokenizer([prefix + w for w in new], add_special_tokens=False).input_ids
        self._pieces.update(zip(new, ids, strict=True))

    def words(self, text: str) -> dict[int, str]:
        """Each own token of a text -> the word of the text (as written) it is a piece of."""
        written = [w for w in WORD.findall(text) if w.lower() not in STOPWORDS]
        self._learn({w.lower() for w in written})
        pieces: dict[int, str] = {}
        for word in written:
            for token in self._pieces[word.lower()]:
                pieces.setdefault(token if self.canon is None else int(self.canon[token]), word)
        return pieces

    def _text_ids(self, words: list[str], max_tokens: int | None) -> list[int]:
        """Content words' pieces within the text's token budget (every word's pieces count towards it)."""
        kept, used = [], 0
        for word in words:
            pieces = self._pieces[word]
            used += len(pieces)
            if max_tokens is not None and used > max_tokens:
                break
            if word not in STOPWORDS:
                kept.extend(pieces)
        return kept


def noise_token_ids(tokenizer) -> list[int]:
    """Vocabulary tokens that carry no topic: punctuation-only, single characters, stopwords (as decoded,
    stripped and lowercased). With own_words "content" they are neither own tokens nor expansions."""
    return [i for i, text in enumerate(_vocabulary(tokenizer)) if _is_noise(text.strip().lower())]


@functools.lru_cache(maxsize=4)
def _vocabulary(tokenizer) -> tuple[str, ...]:
    """Every token of the tokenizer decoded alone (0.5 s for 49k tokens: once per tokenizer)."""
    return tuple(tokenizer.batch_decode([[i] for i in range(len(tokenizer))]))


def canonical_ids(tokenizer, vocab_size: int, excluded: Sequence[int], stem: bool = False) -> np.ndarray:
    """Each vocabulary id -> its word's canonical token: the tokens that read the same once stripped and
    lowercased (" Target", "target", "TARGET"), and with stem the same Snowball stem (" targets",
    " targeted"), are one word; its token is the lowercase spaced form where the vocabulary has one (what a
    query's own pieces are), else the shortest. Excluded tokens stay themselves."""
    texts = _vocabulary(tokenizer)
    keys = [text.strip().lower() for text in texts]
    if stem:
        import Stemmer

        keys = Stemmer.Stemmer("english").stemWords(keys)
    skip, groups = set(excluded), {}
    for i, key in enumerate(keys):
        if key and i not in skip:
            groups.setdefault(key, []).append(i)
    canon = np.arange(vocab_size, dtype=np.int64)
    for members in groups.values():
        if len(members) > 1:
            canon[members] = min(members, key=lambda i: (not _spaced_lower(texts[i]), len(texts[i]), i))
    return canon


def _spaced_lower(text: str) -> bool:
    return text.startswith(" ") and text[1:] == text[1:].lower() and text[1:].strip() == text[1:]


def own_query_rows(own_tokens: Sequence[Sequence[int]], vocab_size: int, excluded: set[int],
                   idf: np.ndarray | None = None) -> sp.csr_matrix:
    """Query rows without the LLM: each of a query's own tokens once, weighted 1, or its idf where given
    (the doc-only recipe: the documents' rows carry the model's weights, the query is a set of its words)."""
    ids = [np.array(sorted({t for t in row if t not in excluded and 0 <= t < vocab_size}), np.int32)
           for row in own_tokens]
    weights = [np.ones(len(row), np.float32) if idf is None else idf[row].astype(np.float32) for row in ids]
    return ragged_to_csr(ids, weights, vocab_size)


def _is_noise(text: str) -> bool:
    return len(text) < 2 or not any(c.isalnum() for c in text) or text in STOPWORDS


def own_token_ids(tokenizer, texts: Sequence[str], max_tokens: int | None = None,
                  config: SparseConfig | None = None) -> list[list[int]]:
    """The tokens each text contains under config's own_words and spelling (OwnTokens)."""
    return OwnTokens(tokenizer, config or SparseConfig(own_words="all"))(texts, max_tokens)


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


U1 = "u1"  # u1.npy: the principal component removed before projecting, for queries as for documents
ROWS = "sparse_rows"  # a segment's documents x vocabulary weights before any idf, CSR as three .npy arrays
LEGACY_POSTINGS = "sparse_postings"  # a format-1 index's rows transposed (its rows hold the idf already)
LEGACY_IDF = "sparse_idf"  # a format-1 index's per-token idf


def excluded_token_ids(tokenizer) -> list[int]:
    """Control tokens carry no topic: they must never be a document's key token."""
    special = set(tokenizer.all_special_ids)
    special |= {i for i, tok in getattr(tokenizer, "added_tokens_decoder", {}).items() if tok.special}
    return sorted(special)


def make_projector(backbone, settings: IndexSettings, u1: np.ndarray | None = None) -> KeyTokenProjector:
    """The key-token projector in fp32 whatever the model's dtype: W_U e' is a sum over the hidden size in
    which u_1's removal cancels most of the vector, and bf16 rounding would move the token scores."""
    vocab = int(backbone.unembedding.shape[0])
    excluded, canon = vocabulary_rules(backbone.tokenizer, settings.sparse, vocab)
    return KeyTokenProjector(backbone.unembedding_fp32, backbone.float32(backbone.final_norm), excluded,
                             settings.sparse, u1, canon)


def vocabulary_rules(tokenizer, config: SparseConfig, vocab_size: int) -> tuple[list[int], np.ndarray | None]:
    """The tokens a row never holds (control tokens; noise too with own_words "content") and the
    canonical token of each (None when the config does not fold): what documents and queries share."""
    excluded = excluded_token_ids(tokenizer)
    if config.own_words == "content":
        excluded += _noise_ids(tokenizer)
    canon = None if config.fold == "none" else _canonical(tokenizer, vocab_size, tuple(excluded), config.stem)
    return excluded, canon


@functools.lru_cache(maxsize=4)
def _noise_ids(tokenizer) -> list[int]:
    return noise_token_ids(tokenizer)


@functools.lru_cache(maxsize=4)
def _canonical(tokenizer, vocab_size: int, excluded: tuple[int, ...], stem: bool) -> np.ndarray:
    return canonical_ids(tokenizer, vocab_size, excluded, stem)


def document_rows(projector: KeyTokenProjector, own: OwnTokens, settings: IndexSettings, table: pa.Table,
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
    def models(cls, settings: IndexSettings) -> frozenset[str]:
        return frozenset({LLM})

    @classmethod
    def query_models(cls, settings: IndexSettings) -> frozenset[str]:
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

    def explain(self, queries: sp.csr_matrix, qi: int, row: int, text: str) -> list[tuple[str, float]]:
        """A token of the query reads as the query word it is part of (sub-word pieces merge into it); an
        expansion token the model added reads as itself."""
        words = self._query_words(text)
        return [(words.get(token) or self._text(token), weight)
                for token, weight in self.index.shared_tokens(queries[qi], row)]

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


def query_words(tokenizer, text: str) -> dict[int, str]:
    """Each of a text's own tokens (spelled as own_token_ids spells them) -> the word of the text it lies in;
    {} where the tokenizer gives no character offsets (a slow tokenizer)."""
    spaced = " " + text.strip()
    try:
        encoded = tokenizer(spaced, add_special_tokens=False, return_offsets_mapping=True)
    except NotImplementedError:
        return {}
    spans = [(m.start(), m.end(), m.group()) for m in re.finditer(r"\w+", spaced)]
    words: dict[int, str] = {}
    for token, (start, end) in zip(encoded.input_ids, encoded.offset_mapping, strict=True):
        word = next((w for s, e, w in spans if s < end and start < e), None)
        if word is not None:
            words.setdefault(token, word)
    return words
