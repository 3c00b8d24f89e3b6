"""Single-leg knob sweeps on a BEIR split, for docs/quality.md (nDCG@10 and friends, one JSON line each).

    python scripts/sweep_knobs.py bm25 [--data DIR] [--split train] [--work /tmp/sweep]
        BM25 k1 x b: a lexical-only index per pair (seconds each, no model run).
    python scripts/sweep_knobs.py query-m --index INDEX [--data DIR] [--split train]
        The key-token leg's query expansion M (query-side only: queries are encoded once, the index reused).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np

from retriever.api import Retriever
from retriever.backbones import load_backbone
from retriever.beir import corpus_file, read_split, run_split
from retriever.evaluate import retrieval_measures

ROOT = Path(__file__).resolve().parents[1]


def sweep_bm25(data: Path, split: str, work: Path) -> None:
    backbone = load_backbone("smollm2-135m")  # only to satisfy the index's model record; never run
    judged = read_split(data, split)
    for k1, b in itertools.product([0.9, 1.2, 1.5, 2.0], [0.5, 0.75, 0.9]):
        index = Retriever.build(corpus_file(data), work / f"bm25-{k1}-{b}", backbone=backbone,
                                legs=("lexical",), lexical={"k1": k1, "b": b})
        runs = run_split(index, judged)
        print(json.dumps({"k1": k1, "b": b, "split": split,
                          **retrieval_measures(runs.runs["lexical"], judged.qrels)}), flush=True)


def sweep_query_m(data: Path, split: str, index_dir: Path) -> None:
    searcher = Retriever.load(index_dir).searcher
    judged = read_split(data, split)
    ids, texts = list(judged.queries), list(judged.queries.values())
    lexical = searcher.projector.lexical(searcher.encoder.encode(texts).residual)
    own = searcher.backbone.tokenizer([" " + q.strip() for q in texts], add_special_tokens=False).input_ids
    base = searcher.projector.config
    for m in (0, 4, 8, 16, 32, 64):
        searcher.projector.config = dataclasses.replace(base, query_top_m=m)
        scores = searcher.inverted["sparse"].score_all(searcher.projector.queries(lexical, own))
        run = {}
        for qi, qid in enumerate(ids):
            top = np.argsort(-scores[qi])[:100]
            run[qid] = {searcher.ids[d]: float(scores[qi, d]) for d in top if scores[qi, d] > 0}
        print(json.dumps({"M": m, "split": split, **retrieval_measures(run, judged.qrels)}), flush=True)
    searcher.projector.config = base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("knob", choices=["bm25", "query-m"])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/beir/scifact")
    parser.add_argument("--split", default="train")
    parser.add_argument("--work", type=Path, default=Path("/tmp/sweep"))
    parser.add_argument("--index", type=Path, help="for query-m: an index with the sparse leg")
    args = parser.parse_args()
    if args.knob == "bm25":
        sweep_bm25(args.data, args.split, args.work)
    elif args.index is None:
        parser.error("query-m needs --index")
    else:
        sweep_query_m(args.data, args.split, args.index)


if __name__ == "__main__":
    main()
