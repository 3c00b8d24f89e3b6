"""Fusing the legs' results.

Every function here takes, for one query, each leg's exact score for the same candidate list (the union
of the legs' top lists, with a document missing from one leg's list rescored exactly by that leg), so
nothing has to guess a missing score. Raw scores are never added: the legs' scales differ.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

FUSIONS = ("rrf", "convex", "dbsf")
WEIGHTED = ("convex", "dbsf")  # the fusions that take leg weights


def ranks(scores: np.ndarray) -> np.ndarray:
    """1-based rank of each candidate by descending score; ties keep candidate order."""
    order = np.argsort(-scores, kind="stable")
    result = np.empty(len(scores), dtype=np.int64)
    result[order] = np.arange(1, len(scores) + 1)
    return result


def rrf(scores: Mapping[str, np.ndarray], k: float = 60.0) -> np.ndarray:
    """Reciprocal rank fusion: sum over legs of 1 / (k + rank)."""
    return sum((1.0 / (k + ranks(np.asarray(s))) for s in scores.values()), np.zeros(_length(scores)))


def min_max(scores: np.ndarray) -> np.ndarray:
    """Scale to [0, 1] over the candidates; a leg that cannot tell them apart contributes nothing."""
    low, high = float(np.min(scores)), float(np.max(scores))
    return (scores - low) / (high - low) if high > low else np.zeros_like(scores, dtype=np.float64)


def distribution(scores: np.ndarray) -> np.ndarray:
    """Qdrant's distribution-based score fusion (DBSF) scaling: mean -/+ 3 standard deviations over the
    candidates map to 0 and 1, so a leg's scale comes from the spread of all its candidates' scores rather
    than from its two extremes; a leg that cannot tell the candidates apart contributes nothing."""
    x = np.asarray(scores, np.float64)
    spread = float(np.std(x)) if len(x) else 0.0
    if spread <= 0:
        return np.zeros_like(x)
    return (x - (float(np.mean(x)) - 3 * spread)) / (6 * spread)


def convex(scores: Mapping[str, np.ndarray], weights: Mapping[str, float], scale=min_max) -> np.ndarray:
    """Convex combination of per-query normalised scores (min-max, or distribution for DBSF); weights are
    renormalised to sum to 1 over the legs present, so switching a leg off keeps the others' balance."""
    present = {leg: float(weights.get(leg, 0.0)) for leg in scores}
    total = sum(present.values())
    if total <= 0:
        raise ValueError(f"fusion weights {dict(weights)} give no weight to the legs {list(scores)}")
    return sum((w / total * scale(np.asarray(scores[leg], np.float64)) for leg, w in present.items()),
               np.zeros(_length(scores)))


def _length(scores: Mapping[str, np.ndarray]) -> int:
    lengths = {len(s) for s in scores.values()}
    if len(lengths) > 1:
        raise ValueError("every leg must score the same candidates")
    return lengths.pop() if lengths else 0


def fuse(scores: Mapping[str, np.ndarray], method: str = "rrf", rrf_k: float = 60.0,
         weights: Mapping[str, float] | None = None) -> np.ndarray:
    if method == "rrf":
        return rrf(scores, rrf_k)
    if method in WEIGHTED:
        return convex(scores, weights or {leg: 1.0 for leg in scores}, min_max if method == "convex" else distribution)
    raise ValueError(f"fusion must be one of {FUSIONS}, not {method!r}")
