"""What each index configuration costs: its build time (from its manifest) and one query's latency.

    python scripts/bench_configs.py --index DIR [--index DIR ...] [--queries 50] [--data DIR]

For each index: the first N SciFact test queries searched one at a time in hybrid mode after two warm-up
queries (median and p95 of the wall time of Retriever.search, explanations off), with every model the
index needs loaded once; and its manifest's build seconds and where they went.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from common import SCIFACT  # isort: skip (first: the offline environment)

from retriever.api import Retriever
from retriever.eval.beir import read_split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path, action="append", required=True)
    parser.add_argument("--data", type=Path, default=SCIFACT)
    parser.add_argument("--queries", type=int, default=50)
    args = parser.parse_args()
    texts = list(read_split(args.data, "test").queries.values())[: args.queries]
    print("| index | legs | dense model | build s (stages) | query median ms | p95 ms |")
    print("|---|---|---|---|---|---|")
    for folder in args.index:
        retriever = Retriever.load(folder)
        for text in texts[:2]:
            retriever.search(text, explain=False)
        seconds = []
        for text in texts:
            started = time.perf_counter()
            retriever.search(text, explain=False)
            seconds.append(time.perf_counter() - started)
        m, s = retriever.manifest, retriever.searcher.settings
        p95 = sorted(seconds)[int(0.95 * (len(seconds) - 1))]
        print(f"| {folder.name} | {', '.join(s.legs)} | {s.dense_model or '-'} | {m['build_seconds']:.0f} "
              f"({json.dumps(m['stage_seconds'])}) | {statistics.median(seconds) * 1000:.1f} | {p95 * 1000:.1f} |",
              flush=True)


if __name__ == "__main__":
    main()
