"""The projection: u_1 fitted and removed, W_U e onto the vocabulary, weights saturated and a word's
variants folded into one canonical token before top-K. Holds tensors, not a model."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np
import scipy.sparse as sp
import torch

from ...models.invariance import pad_rows
from ..inverted import ragged_to_csr, with_idf
from .config import SparseConfig

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
