"""The key-token leg without the LLM at query time, its folds, BM25-shaped scorings and the LLM's budget
(issue 27), measured on a BEIR collection for docs/quality.md and docs/benchmarks.md.

    python scripts/bench_keytokens.py encode --max-tokens 512 --dtype float32 --out DIR [--data DIR]
        The default method's forward pass over the corpus, in corpus order, as the indexer runs it; saves
        DIR/residual.npy and DIR/encode.json (seconds, tokens). One per LLM budget and dtype.
    python scripts/bench_keytokens.py table FILE [FILE ...]
        The JSON lines of variants runs as a markdown table (docs/quality.md).
    python scripts/bench_keytokens.py variants --residuals DIR --base INDEX [--variants A,B] [--out FILE]
        Each key-token variant's rows rebuilt from DIR's residuals by the engine's own projector, its
        queries encoded as the variant says (the LLM's forward pass or the query's own tokens), alone on
        train and test, and fused with INDEX's MiniLM and BM25 legs (a --legs dense,lexical index of the
        same corpus) by DBSF weights tuned on train: one JSON line per variant.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

from common import SCIFACT  # isort: skip (first: the offline environment)

import numpy as np

DATA = SCIFACT


def encode(data: Path, max_tokens: int, dtype: str, out: Path) -> None:
    from retriever.corpus.readers import read_corpus
    from retriever.eval.beir import corpus_file
    from retriever.models.backbones import load_backbone
    from retriever.models.encoders import Encoder, defaults_for
    from retriever.settings import IndexSettings

    backbone = load_backbone("smollm2-135m", dtype=dtype, quiet=True)
    settings = IndexSettings(max_tokens=max_tokens)
    settings = replace(settings, method_params=defaults_for(backbone.name, settings.method))
    encoder = Encoder(backbone, settings.make_method(), max_tokens)
    texts = [d.content for d in read_corpus(corpus_file(data))]
    residuals, tokens, started = [], 0, time.perf_counter()
    for start in range(0, len(texts), 256):
        encoded = encoder.encode(texts[start:start + 256])
        residuals.append(encoded.residual)
        tokens += encoded.stats.tokens
        elapsed = time.perf_counter() - started
        print(f"{start + len(encoded.residual)} docs, {tokens / elapsed:.0f} tok/s, {elapsed:.0f} s", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "residual.npy", np.concatenate(residuals))
    (out / "encode.json").write_text(json.dumps({"max_tokens": max_tokens, "dtype": dtype, "documents": len(texts),
                                                 "tokens": tokens, "seconds": round(time.perf_counter() - started, 1)}))


# Key-token variants, each a SparseConfig: the leg every index was built with before issue 27 ("today": the
# LLM's projection of the query, idf on documents, no fold, own tokens within the budget) with each variant's
# changes over it, so that a variant means the same whatever the engine's defaults become.
BEFORE = {"query_side": "model", "idf": "documents", "fold": "none", "stem": False, "own_span": "budget",
          "scoring": "weighted", "top_k": 16}
VARIANTS: dict[str, dict] = {
    "today": {"query_side": "model"},
    "own-1": {"query_side": "own"},
    "own-idf": {"query_side": "own", "idf": "both"},
    "own-1-text": {"query_side": "own", "own_span": "text"},
    "fold-max": {"query_side": "own", "fold": "max"},
    "fold-sum": {"query_side": "own", "fold": "sum"},
    "fold-max-stem": {"query_side": "own", "fold": "max", "stem": True},
    "fold-sum-stem": {"query_side": "own", "fold": "sum", "stem": True},
    "fold-max-stem-k0": {"query_side": "own", "fold": "max", "stem": True, "top_k": 0},
    "fold-max-stem-k32": {"query_side": "own", "fold": "max", "stem": True, "top_k": 32},
    "bm25": {"query_side": "own", "scoring": "bm25"},
    "bm25-count": {"query_side": "own", "scoring": "bm25-count"},
    "bm25-fold-max-stem": {"query_side": "own", "scoring": "bm25", "fold": "max", "stem": True},
    "bm25-count-fold-max-stem": {"query_side": "own", "scoring": "bm25-count", "fold": "max", "stem": True},
    "own-idf-fold-max-stem": {"query_side": "own", "idf": "both", "fold": "max", "stem": True},
    "default": {},  # the engine's defaults now (SparseConfig()), whatever they are
    "own-idf-fold-max-stem-k32": {"query_side": "own", "idf": "both", "fold": "max", "stem": True, "top_k": 32},
    "bm25-count-fold-max-stem-k32": {"query_side": "own", "scoring": "bm25-count", "fold": "max", "stem": True,
                                     "top_k": 32},
    "bm25-count-fold-max-stem-k64": {"query_side": "own", "scoring": "bm25-count", "fold": "max", "stem": True,
                                     "top_k": 64},
}


class Vectors:
    """What a leg's encode takes from the forward pass: the queries' residual vectors."""

    def __init__(self, residual: np.ndarray):
        self.residual = residual


def base_streams(base, texts: list[str], depth: int):
    """The MiniLM and BM25 legs of the base index, per query: (top rows, scorer)."""
    searcher = base.searcher
    encoded = searcher.encode_models(texts, ["dense"])
    encoded["lexical"] = searcher.leg("lexical").encode(texts, None)
    return {leg: list(searcher.leg(leg).hits(encoded[leg], depth)) for leg in ("dense", "lexical")}


def scored_queries(ids: list[str], doc_ids: list[str], streams: dict[str, list]) -> list:
    """Per query the union of every leg's top list, each candidate scored exactly by every leg."""
    from retriever.eval.tuning import Scored

    out = []
    for qi, qid in enumerate(ids):
        tops = {leg: s[qi][0] for leg, s in streams.items()}
        rows = np.array(sorted(set(np.concatenate(list(tops.values())).tolist())), dtype=np.int64)
        out.append(Scored(qid, [doc_ids[r] for r in rows], {leg: s[qi][1](rows) for leg, s in streams.items()}))
    return out


def measures(scored, qrels, fusion: str, weights) -> dict:
    from retriever.eval.evaluate import evaluate
    from retriever.eval.tuning import fused_run

    at10 = evaluate(fused_run(scored, fusion, weights, depth=10), qrels, ["ndcg_cut_10"])
    at100 = evaluate(fused_run(scored, fusion, weights, depth=100), qrels, ["recall_100"])
    return {"ndcg@10": round(at10["ndcg_cut_10"], 4), "recall@100": round(at100["recall_100"], 4)}


def per_query(scored, qrels, fusion: str, weights) -> dict[str, float]:
    import pytrec_eval

    from retriever.eval.tuning import fused_run

    run = fused_run(scored, fusion, weights, depth=10)
    evaluated = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut_10"}).evaluate(run)
    return {q: v["ndcg_cut_10"] for q, v in evaluated.items()}


def best_dbsf(scored, qrels, legs, step: float) -> dict:
    """DBSF (the default fusion) weights on the simplex grid, chosen on the given split."""
    from retriever.eval.evaluate import evaluate
    from retriever.eval.tuning import fused_run, simplex

    best = None
    for weights in simplex(legs, step):
        value = evaluate(fused_run(scored, "dbsf", weights, depth=10), qrels, ["ndcg_cut_10"])["ndcg_cut_10"]
        if best is None or value > best[1]:
            best = (weights, value)
    return best[0]


def word_counts(rows, own: list[list[int]], key) -> dict:
    """Per document on average: expansion tokens (not among its own), the distinct words they are (case
    and space folded), and how many of those words the document does not contain already."""
    exp = tokens = new = 0
    for r, mine in enumerate(own):
        row = set(rows.indices[rows.indptr[r]:rows.indptr[r + 1]].tolist())
        expansions = row - set(mine)
        words = {key[t] for t in expansions}
        exp, tokens, new = exp + len(expansions), tokens + len(words), new + len(words - {key[t] for t in mine})
    n = max(len(own), 1)
    return {"expansions/doc": round(exp / n, 2), "expansion words/doc": round(tokens / n, 2),
            "new words/doc": round(new / n, 2), "entries/doc": round(rows.nnz / n, 1)}


class Bench:
    """The fixed half of every measurement: the base index's MiniLM and BM25 lists for each split's queries,
    their pair fused (DBSF tuned on train, the baseline), and the queries' residuals for the LLM's query side."""

    def __init__(self, args):
        from retriever.api import Retriever
        from retriever.eval.beir import read_split
        from retriever.models.backbones import load_backbone
        from retriever.models.encoders import Encoder, defaults_for
        from retriever.settings import IndexSettings

        self.args, self.base = args, Retriever.load(args.base)
        self.backbone = load_backbone("smollm2-135m", dtype="float32", quiet=True)
        self.doc_ids, self.table = self.base.searcher.ids, self.base.searcher.documents
        self.splits = {name: read_split(args.data, name) for name in ("train", "test")}
        settings = IndexSettings()
        method = replace(settings, method_params=defaults_for(self.backbone.name, settings.method)).make_method()
        encoder = Encoder(self.backbone, method, settings.max_tokens)
        self.streams, self.vectors = {}, {}
        for name, judged in self.splits.items():
            texts = list(judged.queries.values())
            self.streams[name] = base_streams(self.base, texts, args.depth)
            self.vectors[name] = Vectors(encoder.encode(texts).residual)
        self.pair = self.fused({}, ("dense", "lexical"))

    def fused(self, extra: dict[str, list], legs: tuple[str, ...]) -> dict:
        """legs (the base's and extra's) fused by DBSF weights tuned on train; each split's measures and
        per-query nDCG@10."""
        result = {}
        for name, judged in self.splits.items():
            scored = scored_queries(list(judged.queries), self.doc_ids, {**self.streams[name], **extra.get(name, {})})
            if name == "train":
                result["weights"] = best_dbsf(scored, judged.qrels, legs, self.args.step)
            result[name] = measures(scored, judged.qrels, "dbsf", result["weights"])
            if "sparse" in legs:
                result[name] = {"sparse": measures(scored, judged.qrels, "dbsf", {"sparse": 1.0}),
                                "hybrid": result[name]}
            result[f"{name}-per-query"] = per_query(scored, judged.qrels, "dbsf", result["weights"])
        return result

    def paired(self, result: dict, name: str) -> dict:
        """Per-query differences of a fused run against BM25 + MiniLM on one split: the noise of a gain."""
        mine, theirs = result[f"{name}-per-query"], self.pair[f"{name}-per-query"]
        diffs = np.array([mine[q] - theirs.get(q, 0.0) for q in mine])
        return {"mean": round(float(diffs.mean()), 4), "se": round(float(diffs.std(ddof=1) / np.sqrt(len(diffs))), 4),
                "wins": int((diffs > 0).sum()), "losses": int((diffs < 0).sum())}


def leg_from(bench: Bench, residual: np.ndarray, max_tokens: int, overrides: dict):
    """The key-token leg a build with these settings writes and opens, from the documents' residuals."""
    from retriever.index.store import stored_contents
    from retriever.legs.keytokens.config import SparseConfig
    from retriever.legs.keytokens.leg import KeyTokenLeg, document_rows, make_projector, scored_index
    from retriever.legs.keytokens.own_tokens import OwnTokens
    from retriever.legs.keytokens.projector import sample_rows
    from retriever.settings import IndexSettings

    config = SparseConfig(**({**BEFORE, **overrides} if overrides else {}))
    settings = IndexSettings(max_tokens=max_tokens, sparse=config)
    projector = make_projector(bench.backbone, settings)
    projector.fit(projector.lexical(residual[sample_rows(len(residual))]))
    own = OwnTokens(bench.backbone.tokenizer, config, projector.canon_array)
    rows = document_rows(projector, own, settings, bench.table, residual)
    index, idf = scored_index(rows, config)
    leg = KeyTokenLeg(projector, index, bench.backbone.tokenizer, idf, config)
    budget = max_tokens if config.own_span == "budget" else None
    return leg, rows, own(stored_contents(bench.table), budget)


def measure_variant(bench: Bench, residuals: Path, variant: str, key: list[str]) -> dict:
    encoded_with = json.loads((residuals / "encode.json").read_text())
    started = time.perf_counter()
    leg, rows, own = leg_from(bench, np.load(residuals / "residual.npy"), encoded_with["max_tokens"], VARIANTS[variant])
    record = {"variant": variant, "residuals": encoded_with, "config": VARIANTS[variant],
              "project_s": round(time.perf_counter() - started, 1), **word_counts(rows, own, key)}
    extra = {}
    for name, judged in bench.splits.items():
        texts = list(judged.queries.values())
        started = time.perf_counter()
        queries = leg.encode(texts, bench.vectors[name])
        record[f"{name}-encode-ms/query"] = round(1000 * (time.perf_counter() - started) / len(texts), 3)
        extra[name] = {"sparse": list(leg.hits(queries, bench.args.depth))}
    fused = bench.fused(extra, ("dense", "sparse", "lexical"))
    record["weights"] = fused["weights"]
    for name in bench.splits:
        record[name] = {**fused[name], "vs minilm+bm25": bench.paired(fused, name)}
        record[f"{name}-per-query"] = {q: round(v, 5) for q, v in fused[f"{name}-per-query"].items()}
    return record


def variants(args) -> None:
    bench = Bench(args)
    pair = {name: bench.pair[name] for name in ("weights", "train", "test")}
    emit({"variant": "minilm+bm25", **pair}, args.out)
    tokenizer = bench.backbone.tokenizer
    key = [t.strip().lower() for t in tokenizer.batch_decode([[i] for i in range(len(tokenizer))])]
    key += [""] * (int(bench.backbone.unembedding.shape[0]) - len(key))
    for residuals in args.residuals:
        for variant in args.variants.split(",") if args.variants else VARIANTS:
            emit(measure_variant(bench, residuals, variant, key), args.out)


def emit(record: dict, out: Path | None) -> None:
    line = json.dumps(record)
    print(line, flush=True)
    if out:
        with open(out, "a") as fh:
            fh.write(line + "\n")


def table(files: list[Path]) -> None:
    """The variants' JSON lines as docs/quality.md's table: one row per residual set and variant."""
    print("| LLM budget / dtype | LLM pass s | variant | expansions / doc: tokens, words, new words | alone train | "
          "alone test | alone test R@100 | fused train (vs today) | fused test | fused test R@100 | DBSF weights "
          "MiniLM / key tokens / BM25 | query encode ms |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    records, seen = [], {}
    for line in (line for f in files for line in f.read_text().splitlines() if line.startswith("{")):
        r = json.loads(line)  # a variant measured twice: the run with per-query figures, else the first
        key = (json.dumps(r.get("residuals")), r["variant"])
        if key not in seen:
            seen[key] = len(records)
            records.append(r)
        elif "train-per-query" in r and "train-per-query" not in records[seen[key]]:
            records[seen[key]] = r
    today = next((r for r in records if r["variant"] == "today" and "train-per-query" in r), None)
    for r in records:
        if "residuals" not in r:
            print(f"| - | 0 | BM25 + MiniLM alone | - | - | - | - | {r['train']['ndcg@10']:.4f} | "
                  f"{r['test']['ndcg@10']:.4f} | {r['test']['recall@100']:.4f} | "
                  f"{' / '.join(str(v) for v in r['weights'].values())} | - |")
            continue
        e, tr, te = r["residuals"], r["train"], r["test"]
        versus = ""
        if today is not None and "train-per-query" in r and "train-per-query" in today:
            diffs = np.array([v - today["train-per-query"][q] for q, v in r["train-per-query"].items()])
            versus = f" ({diffs.mean():+.4f} ± {diffs.std(ddof=1) / np.sqrt(len(diffs)):.4f})"
        w = r["weights"]
        print(f"| {e['max_tokens']} / {e['dtype']} | {e['seconds']:.0f} | {r['variant']} | {r['expansions/doc']}, "
              f"{r['expansion words/doc']}, {r['new words/doc']} | {tr['sparse']['ndcg@10']:.4f} | "
              f"{te['sparse']['ndcg@10']:.4f} | {te['sparse']['recall@100']:.4f} | {tr['hybrid']['ndcg@10']:.4f}"
              f"{versus} | {te['hybrid']['ndcg@10']:.4f} | {te['hybrid']['recall@100']:.4f} | "
              f"{w['dense']} / {w['sparse']} / {w['lexical']} | {r['test-encode-ms/query']} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    enc = sub.add_parser("encode")
    enc.add_argument("--data", type=Path, default=DATA)
    enc.add_argument("--max-tokens", type=int, default=512)
    enc.add_argument("--dtype", default="float32")
    enc.add_argument("--out", type=Path, required=True)
    var = sub.add_parser("variants")
    var.add_argument("--data", type=Path, default=DATA)
    var.add_argument("--residuals", type=Path, action="append", required=True)
    var.add_argument("--base", type=Path, required=True, help="a --legs dense,lexical index of the same corpus")
    var.add_argument("--variants", help=f"comma-separated, of {', '.join(VARIANTS)}")
    var.add_argument("--step", type=float, default=0.05)
    var.add_argument("--depth", type=int, default=100)
    var.add_argument("--out", type=Path, help="append each variant's JSON line here too")
    tab = sub.add_parser("table")
    tab.add_argument("files", type=Path, nargs="+")
    args = parser.parse_args()
    if args.command == "table":
        table(args.files)
    elif args.command == "encode":
        encode(args.data, args.max_tokens, args.dtype, args.out)
    else:
        variants(args)


if __name__ == "__main__":
    main()
