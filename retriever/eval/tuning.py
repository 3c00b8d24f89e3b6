"""Choosing fusion weights by measurement on a split that is not reported.

Every leg's exact score for every candidate is computed once per query; each weight setting on the grid
then only re-fuses those numbers, so a full simplex grid costs seconds, not searches. The grid includes
its corners (one leg alone at weight 1), so the chosen fusion is never worse than the best single leg on
the tuning split.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..search.fusion import WEIGHTED, fuse
from .evaluate import evaluate

Run = dict[str, dict[str, float]]
TIE_ORDER = ("rrf", "dbsf", "convex")  # equal scores pick the later: the plainer function


@dataclass
class Scored:
    """One query's candidates (document ids) and each leg's exact scores for them."""

    query_id: str
    doc_ids: list[str]
    scores: dict[str, np.ndarray]


def simplex(legs: Sequence[str], step: float) -> list[dict[str, float]]:
    """Every weight vector over legs with entries in multiples of step that sum to 1."""
    n = round(1 / step)
    return [dict(zip(legs, (c / n for c in combo), strict=True))
            for combo in itertools.product(range(n + 1), repeat=len(legs)) if sum(combo) == n]


def fused_run(scored: Sequence[Scored], fusion: str, weights: Mapping[str, float] | None = None,
              rrf_k: float = 60.0, depth: int = 10) -> Run:
    run: Run = {}
    for q in scored:
        fused = fuse(q.scores, fusion, rrf_k, weights)
        top = np.argsort(-fused, kind="stable")[:depth]
        run[q.query_id] = {q.doc_ids[i]: float(fused[i]) for i in top}
    return run


def tune_weights(scored: Sequence[Scored], qrels: Mapping[str, Mapping[str, int]], legs: Sequence[str],
                 step: float = 0.05, measure: str = "ndcg_cut_10") -> tuple[dict, list[dict]]:
    """The best fusion on the tuning split: convex (min-max) or DBSF weights over the grid, or RRF if it
    measures better; a tie goes to convex, then DBSF.

    Returns the chosen setting and every setting tried with its score (for the report and the plot).
    """
    tried = []
    for fusion, weights in itertools.product(WEIGHTED, simplex(legs, step)):  # every point sums to 1
        value = evaluate(fused_run(scored, fusion, weights), qrels, [measure])[measure]
        tried.append({"fusion": fusion, "weights": weights, "value": value})
    value = evaluate(fused_run(scored, "rrf"), qrels, [measure])[measure]
    tried.append({"fusion": "rrf", "weights": None, "value": value})
    best = max(tried, key=lambda t: (t["value"], TIE_ORDER.index(t["fusion"])))
    return best, tried
