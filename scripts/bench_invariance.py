"""A query alone against the same query inside a batch, in each dtype: what `retriever search` returns against
what `retriever eval beir` (batched) measures.

    python scripts/bench_invariance.py [--dtypes float32,bfloat16] [--docs 400] [--queries 100] [--max-tokens 256]

Two indexes per dtype, built in a temporary folder with the default settings: the packaged demo corpus
(searched with the demo queries and the first --queries SciFact test queries), and the first --docs SciFact
documents at --max-tokens (searched with the SciFact queries). Each query is searched alone (`search`) and
inside one `search_batch` of all of them, k = 10. Prints per dtype and index: how many queries have the
same top-10 ids, how many are identical to the bit (ids, fused and every leg's scores), and the worst gap
between a document's leg score alone and batched, over the documents both top-10s hold, as a fraction of
that leg's largest top-10 score alone.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from itertools import islice
from pathlib import Path

from common import ROOT, SCIFACT  # isort: skip (first: the offline environment)


from retriever import Retriever
from retriever.corpus.readers import read_corpus
from retriever.models.backbones import load_backbone

DEMO = ROOT / "retriever/data/demo.jsonl"
DEMO_QUERIES = ["why does lava come out of a mountain", "how do bees make honey", "fix a flat bike tire",
                "insulin and blood sugar", "first man on the moon", "ocean tides", "sourdough starter and yeast",
                "fix a flat tire on my bike", "first man to walk on the moon"]


def scifact_queries(count: int) -> list[str]:
    texts = {q["_id"]: q["text"] for q in map(json.loads, (SCIFACT / "queries.jsonl").open())}
    ids = dict.fromkeys(line.split("\t")[0] for line in (SCIFACT / "qrels/test.tsv").read_text().splitlines()[1:])
    return [texts[i] for i in list(ids)[:count]]


def compare(index: Retriever, queries: list[str]) -> dict:
    """Alone against batched, per query; a leg's gap is over the documents both top-10s hold, by id."""
    batched = index.search_batch(queries, k=10)
    same = exact = 0
    worst = 0.0
    for query, together in zip(queries, batched, strict=True):
        alone = index.search(query, k=10, explain=False)
        same += [h.id for h in alone] == [h.id for h in together]
        exact += [(h.id, h.score, h.scores) for h in alone] == [(h.id, h.score, h.scores) for h in together]
        inside = {h.id: h.scores for h in together}
        for leg in alone[0].scores if alone else ():
            top = max(abs(h.scores[leg]) for h in alone)
            gaps = [abs(h.scores[leg] - inside[h.id][leg]) for h in alone if h.id in inside]
            if gaps and top > 0:
                worst = max(worst, max(gaps) / top)
    return {"queries": len(queries), "same_top10": same, "identical": exact, "worst_leg_gap": round(worst, 6)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--docs", type=int, default=400)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--max-tokens", type=int, default=256)
    args = parser.parse_args()
    scifact = scifact_queries(args.queries)
    rows = []
    for dtype in args.dtypes.split(","):
        backbone = load_backbone("smollm2-135m", dtype=dtype, quiet=True)
        with tempfile.TemporaryDirectory() as tmp:
            demo = Retriever.build(DEMO, Path(tmp) / "demo", backbone=backbone, dense_model=None)
            docs = list(islice(read_corpus(SCIFACT / "corpus.jsonl"), args.docs))
            sci = Retriever.build(docs, Path(tmp) / "scifact", backbone=backbone, max_tokens=args.max_tokens,
                                  dense_model=None)
            runs = (("demo", demo, DEMO_QUERIES + scifact), (f"scifact-{args.docs}", sci, scifact))
            for name, index, queries in runs:
                row = {"dtype": dtype, "index": name, **compare(index, queries)}
                rows.append(row)
                print(json.dumps(row), flush=True)
    print("\n| dtype | index | queries | same top-10 | identical to the bit | worst leg-score gap |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['dtype']} | {r['index']} | {r['queries']} | {r['same_top10']} | {r['identical']} | "
              f"{100 * r['worst_leg_gap']:.4f}% |")


if __name__ == "__main__":
    main()
