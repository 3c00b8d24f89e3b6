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

from ..fusion import fuse, fusion_names, get_fusion
from .evaluate import evaluate

Run = dict[str, dict[str, float]]


@dataclass
class Scored:
    """One query's candidates (document ids; in an index of passages, one per passage, so an id can come
    more than once) and each leg's exact scores for them."""

    query_id: str
    doc_ids: list[str]
    scores: dict[str, np.ndarray]


def simplex(legs: Sequence[str], step: float) -> list[dict[str, float]]:
    """Every weight vector over legs with entries in multiples of step that sum to 1."""
    n = round(1 / step)
    return [dict(zip(legs, (c / n for c in combo), strict=True))
            for combo in itertools.product(range(n + 1), repeat=len(legs)) if sum(combo) == n]


def fused_run(scored: Sequence[Scored], fusion: str, weights: Mapping[str, float] | None = None,
              params: Mapping[str, float] | None = None, depth: int = 10) -> Run:
    """The top depth documents per query by the fused scores; a document by its best candidate (MaxP)."""
    run: Run = {}
    for q in scored:
        fused = fuse(q.scores, fusion, weights, params)
        top: dict[str, float] = {}
        for i in np.argsort(-fused, kind="stable"):
            top.setdefault(q.doc_ids[i], float(fused[i]))
            if len(top) == depth:
                break
        run[q.query_id] = top
    return run


def tune_weights(scored: Sequence[Scored], qrels: Mapping[str, Mapping[str, int]], legs: Sequence[str],
                 step: float = 0.05, measure: str = "ndcg_cut_10") -> tuple[dict, list[dict]]:
    """The best fusion on the tuning split, over every registered one (fusion.py): a weighted fusion
    at every point of the weight grid, the others once with their default parameters; a tie goes to the
    plainer (Fusion.plainness: convex, then DBSF, then RRF).

    Returns the chosen setting and every setting tried with its score (for the report and the plot).
    """
    tried = []
    for name in fusion_names():
        fusion = get_fusion(name)
        for weights in simplex(legs, step) if fusion.weighted else [None]:  # every point sums to 1
            value = evaluate(fused_run(scored, name, weights, fusion.params), qrels, [measure])[measure]
            tried.append({"fusion": name, "weights": weights, "params": dict(fusion.params), "value": value})
    best = max(tried, key=lambda t: (t["value"], get_fusion(t["fusion"]).plainness))
    return best, tried
