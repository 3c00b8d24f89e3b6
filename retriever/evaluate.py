"""Offline evaluation with trec_eval's own measures (through pytrec_eval), never hand-written formulas."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

MEASURES = {"ndcg_cut_10": "nDCG@10", "recall_100": "Recall@100", "recip_rank": "MRR", "map": "MAP"}


def run_from_hits(query_ids: Sequence[str], hits: Sequence[Sequence]) -> dict[str, dict[str, float]]:
    """A TREC run {query: {doc: score}} from per-query hit lists (objects with .id and .score)."""
    return {qid: {h.id: float(h.score) for h in per_query} for qid, per_query in zip(query_ids, hits, strict=True)}


def evaluate(run: Mapping[str, Mapping[str, float]], qrels: Mapping[str, Mapping[str, int]],
             measures: Sequence[str] = tuple(MEASURES)) -> dict[str, float]:
    """Mean of each measure over the judged queries (a judged query missing from the run scores 0)."""
    import pytrec_eval

    judged = {q: dict(d) for q, d in qrels.items()}
    full_run = {q: dict(run.get(q, {})) or {"__none__": 0.0} for q in judged}
    per_query = pytrec_eval.RelevanceEvaluator(judged, set(measures)).evaluate(full_run)
    return {m: sum(v[m] for v in per_query.values()) / max(len(per_query), 1) for m in measures}
