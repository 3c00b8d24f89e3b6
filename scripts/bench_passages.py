"""Long documents with and without passages, on a long-document SciFact built here.

    python scripts/bench_passages.py [--out indexes/passages] [--size 1500] [--group 8] [--dtype auto]
                                     [--passages 128:64,128:0]

The test set: SciFact's abstracts (every one judged in train or test, and others sampled with seed 0 up to
--size, as scripts/scifact_subset.py picks them; 0: all 5,183) concatenated, --group at a time, into long
documents (shuffled with seed 0, every judged abstract placed after the unjudged ones of its document, so
that the answer sits past the first 512 tokens), and the train and test qrels mapped to them (a query's
relevant abstract makes its long document relevant, with the same grade). It is written to OUT/long-scifact
(corpus.jsonl, queries.jsonl, qrels/) with the share of judged pairs whose first relevant abstract starts
past 128 and 512 tokens.

Then one fresh build of the default configuration per row: documents whole (cut at --max-tokens, 128),
and each TOKENS:OVERLAP of --passages. Each is measured on train and test (nDCG@10 of the fusion and of
each leg alone, by the engine's own search and trec_eval), with the paired difference over queries
against whole documents (mean and its standard error), the build's seconds and tokens (from its
manifest), and the index's size. Prints the markdown table docs/quality.md quotes.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import time
from pathlib import Path

from common import ROOT, SCIFACT, folder_mb  # isort: skip (first: the offline environment)
from retriever import Retriever
from retriever.eval.beir import read_split, run_split
from retriever.eval.evaluate import evaluate_queries, retrieval_measures
from retriever.models.backbones import DEFAULT_MODEL, load_tokenizer

LEGS = ("dense", "sparse", "lexical")


def make_long_scifact(source: Path, out: Path, group: int, size: int = 0) -> dict:
    """The long-document set in out (rebuilt every run: it is cheap), and what describes it."""
    docs = [json.loads(line) for line in (source / "corpus.jsonl").read_text().splitlines()]
    qrels = {split: [line.split("\t") for line in (source / "qrels" / f"{split}.tsv").read_text().splitlines()[1:]]
             for split in ("train", "test")}
    judged = {row[1] for rows in qrels.values() for row in rows}
    if size:
        others = [d["_id"] for d in docs if d["_id"] not in judged]
        keep = judged | set(random.Random(0).sample(others, max(0, size - len(judged))))
        docs = [d for d in docs if d["_id"] in keep]
    rng = random.Random(0)
    plain, wanted = [d for d in docs if d["_id"] not in judged], [d for d in docs if d["_id"] in judged]
    rng.shuffle(plain)
    rng.shuffle(wanted)
    count = len(docs) // group
    groups = [[] for _ in range(count)]
    for i, d in enumerate(wanted):  # judged ones spread over the documents, each after the others of its group
        groups[i % count].append(d)
    fill = iter(plain)
    for g in groups:
        g[:0] = [next(fill) for _ in range(group - len(g))]
    for i, d in enumerate(fill):  # what is left over joins the groups at their front
        groups[i % count].insert(0, d)
    where, corpus = {}, []
    for n, g in enumerate(groups):
        long_id, parts, offset = f"long-{n:04d}", [], 0
        for d in g:
            part = f"{d['title']}. {d['text']}".strip()
            where[d["_id"]] = (long_id, offset)
            parts.append(part)
            offset += len(part) + 2
        corpus.append({"_id": long_id, "title": "", "text": "\n\n".join(parts)})
    out.mkdir(parents=True, exist_ok=True)
    (out / "qrels").mkdir(exist_ok=True)
    (out / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in corpus))
    shutil.copy(source / "queries.jsonl", out / "queries.jsonl")
    for split, rows in qrels.items():
        mapped: dict[tuple[str, str], int] = {}
        for query, doc, grade in rows:
            key = (query, where[doc][0])
            mapped[key] = max(mapped.get(key, 0), int(grade))
        lines = [f"{q}\t{d}\t{g}" for (q, d), g in mapped.items()]
        (out / "qrels" / f"{split}.tsv").write_text("query-id\tcorpus-id\tscore\n" + "\n".join(lines) + "\n")
    return _describe(corpus, qrels, where)


def _describe(corpus: list[dict], qrels: dict, where: dict) -> dict:
    """Tokens per long document and where the judged abstracts start, in the default LLM's tokens."""
    tokenizer = load_tokenizer(DEFAULT_MODEL)
    text = {d["_id"]: d["text"] for d in corpus}
    lengths = [len(tokenizer(d["text"], add_special_tokens=False).input_ids) for d in corpus]
    starts = []
    for rows in qrels.values():
        first: dict[tuple[str, str], int] = {}
        for query, doc, _ in rows:
            long_id, offset = where[doc]
            first[(query, long_id)] = min(first.get((query, long_id), offset), offset)
        for (_, long_id), offset in first.items():
            starts.append(len(tokenizer(text[long_id][:offset], add_special_tokens=False).input_ids))
    lengths.sort()
    return {"abstracts": len(where), "documents": len(corpus), "median_tokens": lengths[len(lengths) // 2],
            "max_tokens": lengths[-1],
            "judged_pairs": len(starts), "past_128": sum(s >= 128 for s in starts) / len(starts),
            "past_512": sum(s >= 512 for s in starts) / len(starts)}


def measure(data: Path, index: Path, passages: tuple[int, int] | None, dtype: str) -> dict:
    """One fresh build and its nDCG@10 on train and test, per query too (for the paired differences)."""
    shutil.rmtree(index, ignore_errors=True)
    options = {} if passages is None else {"passage_tokens": passages[0], "passage_overlap": passages[1]}
    started = time.perf_counter()
    retriever = Retriever.build(data / "corpus.jsonl", index, dtype=dtype, **options)
    wall = time.perf_counter() - started
    m = retriever.manifest
    row = {"passages": passages, "dtype": m["model"]["dtype"], "rows": m["documents"],
           "build_seconds": m["build_seconds"], "wall_seconds": wall,
           "tokens": m["tokens_embedded"], "truncated": m["documents_truncated"], "mb": folder_mb(index)}
    for split in ("train", "test"):
        queries = read_split(data, split)
        runs = run_split(retriever, queries)
        row[split] = {name: retrieval_measures(run, queries.qrels)["nDCG@10"] for name, run in runs.runs.items()}
        row[f"{split}_per_query"] = _per_query(runs.runs["hybrid"], queries.qrels)
    return row


def _per_query(run, qrels) -> dict[str, float]:
    return {q: v["ndcg_cut_10"] for q, v in evaluate_queries(run, qrels, ["ndcg_cut_10"]).items()}


def paired(a: dict[str, float], b: dict[str, float]) -> tuple[float, float]:
    """Mean of b - a over queries and its standard error."""
    diffs = [b[q] - a[q] for q in a]
    mean = sum(diffs) / len(diffs)
    var = sum((d - mean) ** 2 for d in diffs) / max(len(diffs) - 1, 1)
    return mean, math.sqrt(var / len(diffs))


def table(rows: list[dict], described: dict) -> str:
    base = rows[0]
    lines = [f"Long-document SciFact: {described['abstracts']:,} abstracts as {described['documents']} documents of "
             f"{described['median_tokens']:,} tokens "
             f"(median; longest {described['max_tokens']:,}); of {described['judged_pairs']} judged pairs, "
             f"{described['past_128']:.0%} start past 128 tokens and {described['past_512']:.0%} past 512.", "",
             "| documents | rows | nDCG@10 test (hybrid / dense / key tokens / BM25) | test vs whole (paired SE) "
             "| nDCG@10 train (hybrid) | train vs whole (paired SE) | build s | tokens embedded | ms per 1k tokens "
             "| index MB | bytes per token |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        name = _name(row)
        legs = " / ".join(f"{row['test'][leg]:.4f}" for leg in ("hybrid", *LEGS))
        versus = {s: paired(base[f"{s}_per_query"], row[f"{s}_per_query"]) for s in ("train", "test")}
        vs = {s: "—" if row is base else f"{m:+.4f} ({se:.4f})" for s, (m, se) in versus.items()}
        per_token = 1000 * 1000 * row["build_seconds"] / max(row["tokens"], 1)
        lines.append(f"| {name} | {row['rows']:,} | {legs} | {vs['test']} | {row['train']['hybrid']:.4f} "
                     f"| {vs['train']} | {row['build_seconds']:.0f} | {row['tokens']:,} | {per_token:.1f} "
                     f"| {row['mb']:.1f} | {row['mb'] * 2**20 / max(row['tokens'], 1):.0f} |")
    if len(rows) > 2:
        lines += ["", f"Against {_name(rows[1])}, paired over queries (mean, SE, queries changed):"]
        for row in rows[2:]:
            said = []
            for split in ("train", "test"):
                a, b = rows[1][f"{split}_per_query"], row[f"{split}_per_query"]
                mean, se = paired(a, b)
                said.append(f"{split} {mean:+.4f} ({se:.4f}, {sum(a[q] != b[q] for q in a)} of {len(a)})")
            lines.append(f"- {_name(row)}: {'; '.join(said)}")
    return "\n".join(lines)


def _name(row: dict) -> str:
    return "whole, cut at 128 tokens" if row["passages"] is None else \
        f"passages of {row['passages'][0]}, overlap {row['passages'][1]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "indexes" / "passages")
    parser.add_argument("--data", type=Path, default=SCIFACT)
    parser.add_argument("--group", type=int, default=8, help="Abstracts per long document.")
    parser.add_argument("--size", type=int, default=1500, help="Abstracts to use (0: all); 1,500 keeps the three "
                        "builds to about 20 minutes on 2 cores.")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--passages", default="128:64,128:0", help="TOKENS:OVERLAP configurations, comma separated.")
    parser.add_argument("--from-results", type=Path, help="Print the table of an earlier run's results.json.")
    args = parser.parse_args()
    if args.from_results:
        saved = json.loads(args.from_results.read_text())
        print(table(saved["rows"], saved["set"]))
        return
    data = args.out / "long-scifact"
    described = make_long_scifact(args.data, data, args.group, args.size)
    print(json.dumps(described), flush=True)
    configs = [None, *(tuple(int(x) for x in c.split(":")) for c in args.passages.split(",") if c)]
    rows = []
    for i, config in enumerate(configs):
        rows.append(measure(data, args.out / f"index-{i}", config, args.dtype))
        print(json.dumps({k: v for k, v in rows[-1].items() if not k.endswith("per_query")}), flush=True)
    (args.out / "results.json").write_text(json.dumps({"set": described, "rows": rows}, indent=2))
    print(table(rows, described))


if __name__ == "__main__":
    main()
