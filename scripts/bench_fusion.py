"""Every combination of legs from several indexes of one corpus, each fusion tuned on train, reported on test.

    python scripts/bench_fusion.py --index LLM_INDEX --index MINILM_INDEX [--data DIR] [--step 0.05]
        [--key-tokens VARIANT] [--json FILE]

The indexes must hold the same documents in the same order (built from the same corpus). Their legs are
pooled under distinct names (a dense leg from a trained encoder is named after it: dense:minilm-l6), the
lexical leg is taken once. For every query every leg scores the union of all legs' top-100 lists exactly,
once; then every subset of legs and every fusion (convex min-max, DBSF, RRF) is tuned on train by the
engine's own grid search (retriever.eval.tuning) and reported on test, with per-query wins and losses against
the best tuned subset without the LLM's legs. --key-tokens: a variant of scripts/sweep_knobs.py's
KEY_TOKEN_VARIANTS applied to the LLM index's key-token leg (rebuilt from its stored vectors).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import time
from pathlib import Path

from common import SCIFACT  # isort: skip (first: the offline environment)

import numpy as np
from key_token_variants import KEY_TOKEN_BASE, KEY_TOKEN_VARIANTS, key_token_leg, recover_lexical

from retriever.api import Retriever
from retriever.eval.beir import read_split
from retriever.eval.evaluate import evaluate, evaluate_queries, retrieval_measures
from retriever.eval.tuning import Scored, fused_run, simplex
from retriever.fusion import fusion_names, get_fusion

LLM_LEGS = ("sparse", "dense")  # legs whose vectors come from the LLM (the dense one unless a dense model)
RESIDUALS: dict[tuple[str, ...], np.ndarray] = {}  # each split's query vectors, encoded once


def leg_names(retriever: Retriever) -> dict[str, str]:
    """Index leg -> pooled name."""
    s = retriever.searcher.settings
    return {leg: f"dense:{Path(s.dense_model).name}" if leg == "dense" and s.dense_model else leg for leg in s.legs}


def scores_per_query(indexes: list[Retriever], texts: list[str], variant, depth: int = 100):
    """Per query: candidate rows and each pooled leg's exact scores for them; and encode seconds per leg."""
    streams, seconds = {}, {}
    for retriever in indexes:
        searcher = retriever.searcher
        names = leg_names(retriever)
        for leg, name in names.items():
            if name in streams:
                continue
            started = time.perf_counter()
            if leg == "sparse" and variant is not None:
                sparse, rows = variant(texts)
                encoded, opened = rows, sparse
            else:
                encoded, opened = searcher.encode(texts, [leg])[leg], searcher.leg(leg)
            seconds[name] = time.perf_counter() - started
            streams[name] = opened.hits(encoded, depth)
    per_query = []
    for _ in texts:
        tops, scorers = {}, {}
        for name, stream in streams.items():
            tops[name], scorers[name] = next(stream)
        rows = np.array(sorted(set(np.concatenate(list(tops.values())).tolist())), dtype=np.int64)
        found = {name: np.isin(rows, top) for name, top in tops.items()}
        per_query.append((rows, {name: scorer(rows) for name, scorer in scorers.items()}, found))
    return per_query, seconds


def tune(scored: list[Scored], qrels, legs: tuple[str, ...], fusion: str, step: float) -> dict:
    """The best setting of one fusion over one subset of legs on the tuning split."""
    if len(legs) == 1 or not get_fusion(fusion).weighted:
        weights = None if len(legs) > 1 else {legs[0]: 1.0}
        run = fused_run(scored, fusion if len(legs) > 1 else "convex", weights, depth=10)
        return {"weights": weights, "value": evaluate(run, qrels, ["ndcg_cut_10"])["ndcg_cut_10"]}
    best = None
    for weights in simplex(legs, step):
        if min(weights.values()) == 0:  # a corner or edge is a smaller subset, measured on its own
            continue
        value = evaluate(fused_run(scored, fusion, weights, depth=10), qrels, ["ndcg_cut_10"])["ndcg_cut_10"]
        if best is None or value > best["value"]:
            best = {"weights": weights, "value": value}
    return best


def restrict(scored: list[tuple[Scored, dict]], legs: tuple[str, ...]) -> list[Scored]:
    """Each query as the engine would fuse it with only these legs: the union of their top lists, each
    candidate scored exactly by each of them."""
    out = []
    for q, found in scored:
        keep = np.flatnonzero(np.logical_or.reduce([found[leg] for leg in legs]))
        out.append(Scored(q.query_id, [q.doc_ids[i] for i in keep], {leg: q.scores[leg][keep] for leg in legs}))
    return out


def per_query_ndcg(run, qrels) -> dict[str, float]:
    return {q: v["ndcg_cut_10"] for q, v in evaluate_queries(run, qrels, ["ndcg_cut_10"]).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path, action="append", required=True)
    parser.add_argument("--data", type=Path, default=SCIFACT)
    parser.add_argument("--step", type=float, default=0.05)
    parser.add_argument("--key-tokens", help=f"comma-separated variants of {', '.join(KEY_TOKEN_VARIANTS)}")
    parser.add_argument("--subsets", help="only these leg subsets, comma-separated, legs joined by +")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    for name in (args.key_tokens or "").split(",") if args.key_tokens else [None]:
        if name is not None and name not in KEY_TOKEN_VARIANTS:
            parser.error(f"unknown --key-tokens variant {name!r}")
    indexes = [Retriever.load(i) for i in args.index]
    subsets = [tuple(s.split("+")) for s in args.subsets.split(",")] if args.subsets else None
    for name in (args.key_tokens.split(",") if args.key_tokens else [None]):
        if name:
            print(f"\n## key-token leg: {name}", flush=True)
        measure(args, indexes, name, subsets)


def measure(args, indexes: list[Retriever], key_tokens: str | None, subsets) -> None:
    ids = indexes[0].searcher.ids
    if any(r.searcher.ids != ids for r in indexes[1:]):
        raise SystemExit("the indexes do not hold the same documents in the same order")
    splits = {name: read_split(args.data, name) for name in ("train", "test")}
    variant = None
    if key_tokens:
        holder = next(r for r in indexes if "sparse" in r.searcher.legs).searcher
        from retriever.corpus.readers import read_corpus
        from retriever.eval.beir import corpus_file

        contents = [d.content for d in read_corpus(corpus_file(args.data))]
        lexical_docs = recover_lexical(holder, args.index[0], contents)
        config = dataclasses.replace(KEY_TOKEN_BASE, **KEY_TOKEN_VARIANTS[key_tokens])

        def variant(texts):
            key = tuple(texts)
            if key not in RESIDUALS:  # the LLM encodes each split's queries once for every variant
                RESIDUALS[key] = holder.encoder.encode(texts).residual
            queries = {"q": (holder.leg("sparse").projector.lexical(RESIDUALS[key]), texts)}
            leg, rows = key_token_leg(holder, lexical_docs, contents, queries, config)
            return leg, rows["q"]

    scored, seconds = {}, {}
    for name, split in splits.items():
        texts = list(split.queries.values())
        per_query, seconds[name] = scores_per_query(indexes, texts, variant)
        scored[name] = [(Scored(qid, [ids[r] for r in rows.tolist()], scores), found)
                        for qid, (rows, scores, found) in zip(split.queries, per_query, strict=True)]
    legs = tuple(scored["train"][0][0].scores)
    results = []
    for size in range(1, len(legs) + 1):
        for subset in itertools.combinations(legs, size):
            if subsets is not None and not any(set(subset) == set(s) for s in subsets):
                continue
            for fusion in (("convex",) if size == 1 else fusion_names()):
                best = tune(restrict(scored["train"], subset), splits["train"].qrels, subset, fusion, args.step)
                test_run = fused_run(restrict(scored["test"], subset), fusion, best["weights"], depth=100)
                measures = retrieval_measures(test_run, splits["test"].qrels)
                results.append({"legs": list(subset), "fusion": fusion if size > 1 else "-",
                                "weights": best["weights"], "train": best["value"], "test": measures["nDCG@10"],
                                "recall@100": measures["Recall@100"], "run": test_run})
                print(json.dumps({k: v for k, v in results[-1].items() if k != "run"}), flush=True)
    report(results, seconds, indexes, splits["test"].qrels)
    if args.json:
        args.json.write_text(json.dumps({"results": [{k: v for k, v in r.items() if k != "run"} for r in results],
                                         "encode_seconds": seconds}, indent=1))


def report(results: list[dict], seconds: dict, indexes: list[Retriever], qrels) -> None:
    print("\n| legs | fusion | weights (tuned on train) | train nDCG@10 | test nDCG@10 | test Recall@100 |")
    print("|---|---|---|---|---|---|")
    for r in sorted(results, key=lambda r: -r["train"]):
        w = "-" if r["weights"] is None else " / ".join(f"{v:.2f}" for v in r["weights"].values())
        print(f"| {' + '.join(r['legs'])} | {r['fusion']} | {w} | {r['train']:.4f} | {r['test']:.4f} "
              f"| {r['recall@100']:.4f} |")
    trained = [r for r in results if not any(leg in LLM_LEGS for leg in r["legs"])]
    with_llm = [r for r in results if any(leg in LLM_LEGS for leg in r["legs"])]
    if trained and with_llm:
        base, best = max(trained, key=lambda r: r["train"]), max(with_llm, key=lambda r: r["train"])
        a, b = per_query_ndcg(base["run"], qrels), per_query_ndcg(best["run"], qrels)
        wins = sum(b.get(q, 0) > a.get(q, 0) + 1e-9 for q in qrels)
        losses = sum(b.get(q, 0) < a.get(q, 0) - 1e-9 for q in qrels)
        print(f"\nbest by train without the LLM: {' + '.join(base['legs'])} ({base['fusion']}) test {base['test']:.4f}")
        print(f"best by train with the LLM's legs: {' + '.join(best['legs'])} ({best['fusion']}) test "
              f"{best['test']:.4f}: {best['test'] - base['test']:+.4f}; per test query {wins} wins, {losses} "
              f"losses, {len(qrels) - wins - losses} ties")
    print("\nencode seconds per leg (train + test queries):",
          json.dumps({leg: round(sum(s.get(leg, 0) for s in seconds.values()), 1) for leg in seconds["test"]}))
    for r in indexes:
        m = r.manifest
        print(f"{r.path}: build {m['build_seconds']:.0f} s ({json.dumps(m['stage_seconds'])})")


if __name__ == "__main__":
    main()
