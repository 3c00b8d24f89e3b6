"""Where indexing and query time goes, measured against what this machine can do, in one run.

    python scripts/bench_speed.py --docs 1000 --queries 200 [--dtypes native] [--layouts] [--methods ...] [--sweep]

Prints, for each dtype of --dtypes (default `native`: fp32, and bf16 too where the CPU has native bf16):
- the matmul rate: the median over many single products (2048-4096 square, interleaved) in that dtype, on
  the threads the model uses (single products vary 3x on a shared machine, so never a best-of);
- the plain forward rate: equal-length batches of real corpus tokens through the decoder, no hooks,
  at the encoder's token budget (--sweep: at several budgets and lengths);
- the indexer on the first --docs documents of the corpus (default BEIR SciFact), through build_index
  exactly as `retriever index` runs it: tokens/s, MFU end to end and per stage (the seconds the manifest
  records), padding waste, peak RSS; and against the bare forward pass over the very batches it forms
  (transformers' own SDPA attention, no hooks, no vectors kept): the ratio says what the engine adds to
  the model's own cost, on the same lengths (a 256-token plain rate would flatter a corpus of longer texts);
- each --methods method's encoding cost on the same documents relative to prompteol (--rounds R: R interleaved
  timings, median ratio; bench_methods.py does the same on STS sentences);
- query latency over --queries test queries, one at a time, from the engine's own clock (Searcher.run):
  median and p95 of encode, each leg's retrieval and exact rescoring, filter (no filter here: ~0), fuse,
  search (all after encoding) and total, and the search part's share of the encoding time;
- --layouts: the plain forward rate and one short text's forward time with the decoder's weights stored
  transposed (what load_backbone does for fp32 on a CPU) and as loaded, interleaved over rounds.
MFU = tokens x 2 x non-embedding parameters / seconds / matmul rate: attention's own FLOPs are not
counted, so long texts score a little lower. One run, one machine: compare ratios, not absolute times.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import platform
import statistics
import tempfile
import time
from itertools import islice
from pathlib import Path

from common import SCIFACT, peak_mib  # isort: skip (first: the offline environment)

import numpy as np
import torch
from costs import flops_per_token, interleaved_costs, matmul_rate  # scripts/ is on the path when a script runs

from retriever import Retriever
from retriever.corpus.readers import read_corpus
from retriever.eval.beir import read_split
from retriever.indexing.indexer import build_index
from retriever.models.backbones import auto_dtype, load_backbone, pick_device, store_weights_transposed
from retriever.models.encoders import EOL, Encoder, Method, make_method
from retriever.settings import IndexSettings


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


class Bare(Method):
    """No hooks and no vectors: the decoder alone, on the batches an Encoder forms."""

    name, templates = "bare", EOL

    def parameters(self) -> dict:
        return {}

    def layers_needed(self, num_layers: int) -> int:
        return num_layers

    def attach(self, backbone, batch):
        return [], lambda: None


def bare_same_batches(backbone, documents, max_tokens: int) -> float:
    """Tokens/s of transformers alone over the batches the indexer forms for documents (its prompt included)."""
    encoder = Encoder(backbone, Bare(), max_tokens)
    inputs = encoder.wrapped([d.content for d in documents])
    previous = backbone.model.config._attn_implementation
    backbone.model.set_attn_implementation("sdpa")
    try:
        started = time.perf_counter()
        for group in encoder.batches([len(w.ids) for w in inputs]):
            encoder.forward([inputs[i] for i in group])
        seconds = time.perf_counter() - started
    finally:
        backbone.model.set_attn_implementation(previous)
    return sum(len(w.ids) for w in inputs) / seconds


def index_run(backbone, documents, folder: Path, method: str, max_tokens: int) -> tuple[dict, float]:
    started = time.perf_counter()
    settings = IndexSettings(method=method, max_tokens=max_tokens, dense_model=None)  # the LLM's pass alone
    manifest = build_index(documents, folder, backbone, settings)
    return manifest, time.perf_counter() - started


def query_latency(retriever: Retriever, queries: list[str], depth: int = 100) -> dict[str, dict]:
    """Per-part latency of single queries, from the engine's own clock (Searcher.run): encoding, each leg's
    retrieval and exact rescoring, fusion; search = everything after encoding, total = the whole call."""
    searcher = retriever.searcher
    parts: dict[str, list[float]] = {p: [] for p in ("encode", *searcher.legs, "filter", "fuse", "search", "total")}
    retriever.search(queries[0], explain=False)
    for query in queries:
        started = time.perf_counter()
        run = searcher.run([query], k=10, depth=depth)
        total = 1000 * (time.perf_counter() - started)
        for part, seconds in run.seconds.items():
            parts[part].append(1000 * seconds)
        parts["total"].append(total)
        parts["search"].append(total - 1000 * run.seconds["encode"])
    return {p: {"median_ms": round(statistics.median(v), 2), "p95_ms": round(float(np.percentile(v, 95)), 2)}
            for p, v in parts.items() if v}


def stage_table(manifest: dict, wall: float, flops: float, rate: float) -> list[dict]:
    tokens = manifest["tokens_embedded"]
    rows = []
    for stage, seconds in sorted(manifest["stage_seconds"].items(), key=lambda kv: -kv[1]):
        rows.append({"stage": stage, "seconds": round(seconds, 2), "share": round(seconds / wall, 4),
                     "tokens_per_s": round(tokens / seconds) if seconds else None,
                     "mfu_if_alone": round(tokens * flops / seconds / rate, 3) if seconds else None})
    return rows


def native_dtypes() -> list[str]:
    """fp32, and bf16 where `--dtype auto` would pick it (native bf16 on this CPU, or a GPU)."""
    auto = auto_dtype(pick_device())
    return ["float32"] + (["bfloat16"] if auto == torch.bfloat16 else [])


def untransposed(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of model with every decoder Linear's weight as a plain contiguous (out, in) matrix."""
    plain = copy.deepcopy(model)
    for module in plain.get_decoder().modules():
        if isinstance(module, torch.nn.Linear) and not module.weight.is_contiguous():
            module.weight = torch.nn.Parameter(module.weight.contiguous(), requires_grad=False)
    return plain


def transposed(model: torch.nn.Module) -> torch.nn.Module:
    stored = copy.deepcopy(model)
    store_weights_transposed(stored)
    return stored


def layout_ab(backbone, texts: list[str], rounds: int = 5) -> dict:
    """Both weight layouts, interleaved: tokens/s of 8 x 256 and 4 x 512 batches, and a 24-token text's ms."""
    layouts = {"transposed": transposed(backbone.model), "as_loaded": untransposed(backbone.model)}
    samples: dict[str, dict[str, list[float]]] = {name: {"8x256": [], "4x512": [], "24_tokens_ms": []}
                                                  for name in layouts}
    for _ in range(rounds):
        for name, model in layouts.items():
            view = dataclasses.replace(backbone, model=model)
            samples[name]["8x256"].append(plain_forward(view, texts, 256, 2048, batches=1))
            samples[name]["4x512"].append(plain_forward(view, texts, 512, 2048, batches=1))
            samples[name]["24_tokens_ms"].append(forward_latency(view, (24,), repeats=5)[24])
    return {name: {k: round(statistics.median(v), 1) for k, v in parts.items()} for name, parts in samples.items()}


def measure(args, dtype: str, documents, texts: list[str]) -> dict:
    backbone = load_backbone(args.model, dtype=dtype, quiet=True)
    report: dict = {"dtype": str(backbone.dtype).removeprefix("torch."),
                    "weights_transposed": any(not m.weight.is_contiguous() for m in backbone.layers.modules()
                                              if isinstance(m, torch.nn.Linear)),
                    "rss_mb_after_model_load": round(peak_mib(), 1)}
    rate, flops = matmul_rate(backbone.dtype), flops_per_token(backbone)
    report.update(matmul_gflops=round(rate / 1e9, 1), gflop_per_token=round(flops / 1e9, 4))
    report["single_text_forward_ms_by_tokens"] = forward_latency(backbone)
    budget = Encoder(backbone, make_method("prompteol")).batch_tokens
    forward = plain_forward(backbone, texts, 256, budget)
    report["plain_forward"] = {"length": 256, "budget": budget, "tokens_per_s": round(forward),
                               "mfu": round(forward * flops / rate, 3)}
    if args.layouts:
        report["layouts"] = layout_ab(backbone, texts)
    if args.sweep:
        report["sweep"] = [{"length": n, "budget": b, "tokens_per_s": round(r := plain_forward(backbone, texts, n, b)),
                            "mfu": round(r * flops / rate, 3)}
                           for n in (256, 512) for b in (1024, 2048, 4096, 8192, 16384) if b >= n]
    if args.docs == 0:  # the machine's rates only
        return report
    with tempfile.TemporaryDirectory() as tmp:
        manifest, wall = index_run(backbone, documents[: args.docs], Path(tmp) / "index", "prompteol",
                                   args.max_tokens)
        tokens = manifest["tokens_embedded"]
        bare = bare_same_batches(backbone, documents[: args.docs], args.max_tokens)
        report["bare_forward_same_batches"] = {"tokens_per_s": round(bare), "mfu": round(bare * flops / rate, 3)}
        report["indexer"] = {
            "documents": manifest["documents"], "tokens": tokens, "wall_s": round(wall, 2),
            "tokens_per_s": round(tokens / wall), "mfu_end_to_end": round(tokens * flops / wall / rate, 3),
            "vs_bare_forward_same_batches": round(tokens / wall / bare, 3),
            "vs_plain_forward_256": round(tokens / wall / forward, 3),
            "padding_waste": round(1 - tokens / manifest["padded_tokens"], 4),
            "peak_rss_mb": round(peak_mib(), 1), "stages": stage_table(manifest, wall, flops, rate)}
        if args.methods:
            names = ["prompteol"] + [m for m in args.methods.split(",") if m != "prompteol"]
            report["methods"] = interleaved_costs(backbone, names, texts[: args.method_docs], args.rounds,
                                                  args.max_tokens)
        retriever = Retriever.load(Path(tmp) / "index", backbone=backbone)
        queries = list(read_split(args.beir, "test").queries.values())[: args.queries]
        latency = query_latency(retriever, queries)
        report["query_latency"] = latency
        report["search_share_of_encode"] = round(latency["search"]["median_ms"] / latency["encode"]["median_ms"], 4)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--beir", type=Path, default=SCIFACT, help="A BEIR folder (corpus, queries, qrels).")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--dtypes", default="native", help="Comma-separated dtypes, or native (fp32 + native bf16).")
    parser.add_argument("--docs", type=int, default=1000, help="0: only the rates, no index and no queries.")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--max-tokens", type=int, default=512)
    parser.add_argument("--methods", default="", help="Comma-separated methods to cost against prompteol.")
    parser.add_argument("--method-docs", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=1, help="Time each method this many times, interleaved.")
    parser.add_argument("--layouts", action="store_true", help="Compare the two weight layouts, interleaved.")
    parser.add_argument("--sweep", action="store_true", help="Plain forward rate at several budgets/lengths.")
    parser.add_argument("--json", type=Path, help="Also write the report here.")
    args = parser.parse_args()

    dtypes = native_dtypes() if args.dtypes == "native" else args.dtypes.split(",")
    documents = list(islice(read_corpus(args.beir / "corpus.jsonl"), max(args.docs, 100)))
    texts = [d.content for d in documents]
    report = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}, "
                         f"{cpu_flags()}", "model": args.model,
              "runs": [measure(args, dtype, documents, texts) for dtype in dtypes]}
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


def cpu_flags() -> str:
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return "cpu flags unknown"
    return "native bf16: " + (", ".join(f for f in ("avx512_bf16", "amx_bf16") if f in flags) or "none")


if __name__ == "__main__":
    main()
