"""Offline evaluation with trec_eval's own measures (through pytrec_eval), never hand-written formulas."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from ..corpus.queries import read_tsv
from ..errors import InputError

MEASURES = {"ndcg_cut_10": "nDCG@10", "recall_100": "Recall@100", "recip_rank": "MRR", "map": "MAP"}
REPORTED = ("nDCG@10", "Recall@100", "MRR@10", "MAP@100")


def run_from_hits(query_ids: Sequence[str], hits: Sequence[Sequence]) -> dict[str, dict[str, float]]:
    """A TREC run {query: {doc: score}} from per-query hit lists (objects with .id and .score)."""
    return {qid: {h.id: float(h.score) for h in per_query} for qid, per_query in zip(query_ids, hits, strict=True)}


def evaluate(run: Mapping[str, Mapping[str, float]], qrels: Mapping[str, Mapping[str, int]],
             measures: Sequence[str] = tuple(MEASURES)) -> dict[str, float]:
    """Mean of each measure over the judged queries (a judged query missing from the run scores 0)."""
    per_query = evaluate_queries(run, qrels, measures)
    return {m: sum(v[m] for v in per_query.values()) / max(len(per_query), 1) for m in measures}


def evaluate_queries(run: Mapping[str, Mapping[str, float]], qrels: Mapping[str, Mapping[str, int]],
                     measures: Sequence[str] = tuple(MEASURES)) -> dict[str, dict[str, float]]:
    """Each measure per judged query (0 for one missing from the run): what a paired difference needs."""
    import pytrec_eval

    judged = {q: dict(d) for q, d in qrels.items()}
    full_run = {q: dict(run.get(q, {})) or {"__none__": 0.0} for q in judged}
    return pytrec_eval.RelevanceEvaluator(judged, set(measures)).evaluate(full_run)


def retrieval_measures(run: Mapping[str, Mapping[str, float]],
                       qrels: Mapping[str, Mapping[str, int]]) -> dict[str, float]:
    """The BEIR table's measures: nDCG@10, Recall@100, MRR@10 (trec_eval's recip_rank on the run cut at
    10) and MAP over the run's depth (100 here, where BEIR uses 1000)."""
    full = evaluate(run, qrels, ["ndcg_cut_10", "recall_100", "map"])
    top10 = {q: dict(sorted(docs.items(), key=lambda d: -d[1])[:10]) for q, docs in run.items()}
    mrr = evaluate(top10, qrels, ["recip_rank"])["recip_rank"]
    return {"nDCG@10": full["ndcg_cut_10"], "Recall@100": full["recall_100"], "MRR@10": mrr, "MAP@100": full["map"]}


def read_sts(path: str | Path) -> tuple[list[str], list[str], list[float]]:
    """STS pairs from a TSV with a header sentence1, sentence2, score (no quoting, as the datasets ship)."""
    rows = read_tsv(path)
    header = next(rows, (1, []))[1]
    if [c.strip().lower() for c in header[:3]] != ["sentence1", "sentence2", "score"]:
        raise InputError("expected a header: sentence1, sentence2, score", str(path), 1)
    first, second, gold = [], [], []
    for number, row in rows:
        if not row:
            continue
        if len(row) < 3:
            raise InputError(f"expected 3 tab-separated fields, found {len(row)}", str(path), number)
        try:
            gold.append(float(row[2]))
        except ValueError:
            raise InputError(f"score is not a number: {row[2]!r}", str(path), number, "score") from None
        first.append(row[0])
        second.append(row[1])
    if not gold:
        raise InputError("no sentence pairs", str(path))
    return first, second, gold


def sts_spearman(encode: Callable[[list[str]], np.ndarray], path: str | Path) -> dict[str, float]:
    """Spearman x 100 between cosine similarity and the gold scores, as the papers report it.

    Each distinct sentence is encoded once, whatever pairs it appears in.
    """
    from scipy.stats import spearmanr

    first, second, gold = read_sts(path)
    unique = list(dict.fromkeys(first + second))
    started = time.perf_counter()
    vectors = encode(unique)
    seconds = time.perf_counter() - started
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    row = {s: i for i, s in enumerate(unique)}
    cosine = np.einsum("ij,ij->i", unit[[row[s] for s in first]], unit[[row[s] for s in second]])
    statistic = float(spearmanr(cosine, gold).statistic) if len(gold) > 1 else float("nan")
    return {"spearman": statistic * 100 if np.isfinite(statistic) else None, "pairs": len(gold),
            "sentences": len(unique), "seconds": seconds, "seconds_per_1000": seconds / len(unique) * 1000}
