"""Where indexing and query time goes, measured against what this machine can do, in one run.

    python scripts/bench_speed.py --docs 1000 --queries 200 [--methods prompteol,va,...] [--sweep]

Prints:
- the matmul rate: a 4096 x 4096 torch matmul in the model's dtype, on the threads the model uses;
- the plain forward rate: equal-length batches of real corpus tokens through the decoder, no hooks,
  at the encoder's token budget (--sweep: at several budgets and lengths);
- the indexer on the first --docs documents of the corpus (default BEIR SciFact), through build_index
  exactly as `retriever index` runs it: tokens/s, MFU end to end and per stage (the seconds the manifest
  records), padding waste, peak RSS;
- each --methods method's encoding cost on the same documents relative to prompteol (--rounds R: R interleaved
  timings, median ratio; bench_methods.py does the same on STS sentences);
- query latency over --queries test queries, one at a time: median and p95 of encode, dense, sparse,
  lexical and fuse (fuse = the whole search after encoding minus the three legs' retrieval), and the
  search part's share of the encoding time.
MFU = tokens x 2 x non-embedding parameters / seconds / matmul rate: attention's own FLOPs are not
counted, so long texts score a little lower. One run, one machine: compare ratios, not absolute times.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import tempfile
import time
from itertools import islice
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch
from bench_methods import interleaved_costs  # scripts/ is on the path when a script runs

from retriever import Retriever
from retriever.backbones import load_backbone
from retriever.beir import read_split
from retriever.corpus import read_corpus
from retriever.encoders import Encoder, make_method
from retriever.indexer import IndexSettings, build_index
from retriever.searcher import top_positive

SCIFACT = Path(__file__).resolve().parents[2] / "shared" / "data" / "beir" / "scifact"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def matmul_rate(dtype: torch.dtype, size: int = 4096, repeats: int = 3) -> float:
    """FLOP/s of one large square matmul: the best the matrix units do on these threads."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - started)
    return 2 * size**3 / statistics.median(times)


def flops_per_token(backbone) -> float:
    """2 x the parameters every token meets in the decoder layers (embeddings and LM head excluded)."""
    return 2.0 * sum(p.numel() for p in backbone.layers.parameters())


def plain_forward(backbone, texts: list[str], length: int, budget: int, batches: int = 3) -> float:
    """Tokens/s of the bare decoder over equal-length batches cut from real texts: no padding, no hooks."""
    ids = [t for t in backbone.tokenizer(texts, add_special_tokens=False).input_ids if len(t) >= length]
    rows = max(1, budget // length)
    if len(ids) < rows:
        raise SystemExit(f"fewer than {rows} texts have {length} tokens: pass more --docs")
    batch = torch.tensor([t[:length] for t in ids[:rows]], device=backbone.device)
    with torch.inference_mode():
        backbone.decoder(input_ids=batch, use_cache=False)
        started = time.perf_counter()
        for _ in range(batches):
            backbone.decoder(input_ids=batch, use_cache=False)
    return rows * length * batches / (time.perf_counter() - started)


def forward_latency(backbone, lengths=(1, 8, 16, 32), repeats: int = 15) -> dict[int, float]:
    """Median milliseconds of one text's bare forward pass by its length: the floor under query latency."""
    out = {}
    with torch.inference_mode():
        for n in lengths:
            ids = torch.randint(100, 1000, (1, n), device=backbone.device)
            backbone.decoder(input_ids=ids, use_cache=False)
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                backbone.decoder(input_ids=ids, use_cache=False)
                times.append(1000 * (time.perf_counter() - started))
            out[n] = round(statistics.median(times), 1)
    return out


def index_run(backbone, documents, folder: Path, method: str, max_tokens: int) -> tuple[dict, float]:
    started = time.perf_counter()
    manifest = build_index(documents, folder, backbone, IndexSettings(method=method, max_tokens=max_tokens))
    return manifest, time.perf_counter() - started


def query_latency(retriever: Retriever, queries: list[str], depth: int = 100) -> dict[str, dict]:
    """Per-part latency of single queries; each query is searched once as a whole and once per leg."""
    searcher = retriever.searcher
    parts: dict[str, list[float]] = {p: [] for p in ("encode", "dense", "sparse", "lexical", "fuse", "search", "total")}
    retriever.search(queries[0], explain=False)
    for query in queries:
        t0 = time.perf_counter()
        encoded = searcher.encode([query])
        t1 = time.perf_counter()
        searcher.search([query], k=10, encoded=encoded)
        t2 = time.perf_counter()
        legs = leg_times(searcher, encoded, depth)
        for leg, ms in legs.items():
            parts[leg].append(ms)
        parts["encode"].append(1000 * (t1 - t0))
        parts["search"].append(1000 * (t2 - t1))
        parts["total"].append(1000 * (t2 - t0))
        parts["fuse"].append(max(0.0, parts["search"][-1] - sum(legs.values())))
    return {p: {"median_ms": round(statistics.median(v), 2), "p95_ms": round(float(np.percentile(v, 95)), 2)}
            for p, v in parts.items()}


def leg_times(searcher, encoded, depth: int) -> dict[str, float]:
    """Milliseconds of each leg's retrieval alone: the dense FAISS search, each inverted leg's product + top."""
    times = {}
    started = time.perf_counter()
    searcher.dense.search(encoded.dense, depth)
    times["dense"] = 1000 * (time.perf_counter() - started)
    for leg in ("sparse", "lexical"):
        started = time.perf_counter()
        top_positive(searcher.inverted[leg].score_all(encoded.rows[leg])[0], depth)
        times[leg] = 1000 * (time.perf_counter() - started)
    return times


def stage_table(manifest: dict, wall: float, flops: float, rate: float) -> list[dict]:
    tokens = manifest["tokens_embedded"]
    rows = []
    for stage, seconds in sorted(manifest["stage_seconds"].items(), key=lambda kv: -kv[1]):
        rows.append({"stage": stage, "seconds": round(seconds, 2), "share": round(seconds / wall, 4),
                     "tokens_per_s": round(tokens / seconds) if seconds else None,
                     "mfu_if_alone": round(tokens * flops / seconds / rate, 3) if seconds else None})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--beir", type=Path, default=SCIFACT, help="A BEIR folder (corpus, queries, qrels).")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--docs", type=int, default=1000, help="0: only the rates, no index and no queries.")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--max-tokens", type=int, default=512)
    parser.add_argument("--methods", default="", help="Comma-separated methods to cost against prompteol.")
    parser.add_argument("--method-docs", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=1, help="Time each method this many times, interleaved.")
    parser.add_argument("--sweep", action="store_true", help="Plain forward rate at several budgets/lengths.")
    parser.add_argument("--json", type=Path, help="Also write the report here.")
    args = parser.parse_args()

    backbone = load_backbone(args.model, dtype=args.dtype, quiet=True)
    report: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, torch threads "
                               f"{torch.get_num_threads()}", "model": args.model, "dtype": str(backbone.dtype),
                    "rss_mb_after_model_load": round(peak_rss_mb(), 1)}
    rate, flops = matmul_rate(backbone.dtype), flops_per_token(backbone)
    report.update(matmul_gflops=round(rate / 1e9, 1), gflop_per_token=round(flops / 1e9, 4))
    report["single_text_forward_ms_by_tokens"] = forward_latency(backbone)
    documents = list(islice(read_corpus(args.beir / "corpus.jsonl"), max(args.docs, 100)))
    texts = [d.content for d in documents]
    budget = Encoder(backbone, make_method("prompteol")).batch_tokens
    forward = plain_forward(backbone, texts, 256, budget)
    report["plain_forward"] = {"length": 256, "budget": budget, "tokens_per_s": round(forward),
                               "mfu": round(forward * flops / rate, 3)}
    if args.sweep:
        report["sweep"] = [{"length": n, "budget": b, "tokens_per_s": round(r := plain_forward(backbone, texts, n, b)),
                            "mfu": round(r * flops / rate, 3)}
                           for n in (256, 512) for b in (1024, 2048, 4096, 8192, 16384) if b >= n]
    if args.docs == 0:  # the machine's rates only
        print(json.dumps(report, indent=1))
        return
    with tempfile.TemporaryDirectory() as tmp:
        manifest, wall = index_run(backbone, documents, Path(tmp) / "index", "prompteol", args.max_tokens)
        tokens = manifest["tokens_embedded"]
        report["indexer"] = {
            "documents": manifest["documents"], "tokens": tokens, "wall_s": round(wall, 2),
            "tokens_per_s": round(tokens / wall), "mfu_end_to_end": round(tokens * flops / wall / rate, 3),
            "vs_plain_forward": round(tokens / wall / forward, 3),
            "padding_waste": round(1 - tokens / manifest["padded_tokens"], 4),
            "peak_rss_mb": round(peak_rss_mb(), 1), "stages": stage_table(manifest, wall, flops, rate)}
        if args.methods:
            names = ["prompteol"] + [m for m in args.methods.split(",") if m != "prompteol"]
            report["methods"] = interleaved_costs(backbone, names, texts[: args.method_docs], args.rounds,
                                                  args.max_tokens)
        retriever = Retriever.load(Path(tmp) / "index", backbone=backbone)
        queries = list(read_split(args.beir, "test").queries.values())[: args.queries]
        latency = query_latency(retriever, queries)
        report["query_latency"] = latency
        report["search_share_of_encode"] = round(latency["search"]["median_ms"] / latency["encode"]["median_ms"], 4)
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
