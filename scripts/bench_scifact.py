"""Core-engine figures on BEIR SciFact: build cost, index size, memory, query latency and nDCG@10.

    python scripts/bench_scifact.py [--data ../shared/data/beir/scifact] [--index indexes/scifact] [--reuse]

Build: time, documents/s, tokens/s, size on disk, peak RSS. Latency: 100 test queries one at a time,
encoding included (median, p95). Quality: the 300 test queries in each mode, nDCG@10 via pytrec_eval.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from retriever import Retriever, read_qrels, read_queries
from retriever.eval.evaluate import evaluate, run_from_hits
from retriever.models.backbones import load_backbone

ROOT = Path(__file__).resolve().parents[1]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/beir/scifact")
    parser.add_argument("--index", type=Path, default=ROOT / "indexes/scifact")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--reuse", action="store_true", help="search an existing index instead of building")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    report: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor() or ''}"}
    t0 = time.perf_counter()
    backbone = load_backbone(args.model)
    report["model_load_s"] = round(time.perf_counter() - t0, 2)
    rss_before = peak_rss_mb()
    if args.reuse and (args.index / "manifest.json").exists():
        retriever = Retriever.load(args.index, backbone=backbone)
    else:
        t0 = time.perf_counter()
        retriever = Retriever.build(args.data / "corpus.jsonl", args.index, backbone=backbone, overwrite=True)
        report["build_wall_s"] = round(time.perf_counter() - t0, 1)
    m = retriever.manifest
    report.update({
        "dtype": m["model"]["dtype"], "documents": m["documents"], "tokens_embedded": m["tokens_embedded"],
        "documents_truncated": m["documents_truncated"], "build_s": m["build_seconds"],
        "docs_per_s": round(m["documents"] / m["build_seconds"], 2),
        "tokens_per_s": round(m["tokens_embedded"] / m["build_seconds"], 1),
        "padding_efficiency": round(m["tokens_embedded"] / m["padded_tokens"], 3),
        "index_size_mb": round(retriever.info()["size_bytes"] / 2**20, 2),
        "peak_rss_mb_after_model_load": round(rss_before, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    })

    queries = read_queries(args.data / "queries.jsonl")
    qrels = read_qrels(args.data / "qrels/test.tsv")
    test_ids = [q for q in queries if q in qrels]
    retriever.search(queries[test_ids[0]])  # warm-up
    latencies = []
    for qid in test_ids[:100]:
        t0 = time.perf_counter()
        retriever.search(queries[qid], k=10, mode="hybrid", explain=False)
        latencies.append((time.perf_counter() - t0) * 1000)
    latencies.sort()
    report["latency_ms_median"] = round(statistics.median(latencies), 1)
    report["latency_ms_p95"] = round(latencies[94], 1)

    texts = [queries[q] for q in test_ids]
    for mode in ("dense", "sparse", "hybrid"):
        hits = retriever.search_batch(texts, k=100, mode=mode)
        scores = evaluate(run_from_hits(test_ids, hits), qrels)
        report[f"ndcg@10_{mode}"] = round(scores["ndcg_cut_10"], 4)
        report[f"recall@100_{mode}"] = round(scores["recall_100"], 4)
    report["peak_rss_mb"] = round(peak_rss_mb(), 1)
    for key, value in report.items():
        print(f"{key:<32} {value}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
