"""Where to cut a micro-batch of mixed-length queries into passes (Encoder.batches, Encoder.CPU_PASS_TOKENS).

    python scripts/bench_batches.py [--index DIR] [--sizes 8,16,32] [--draws 8]

For each batch size, the same random draws of SciFact test queries are encoded (the LLM's pass only) with
the batches cut as one pass padded to the longest (a pass priced at 10^9 tokens) and at the cheapest cut
for a pass priced at 32, 64 and 128 tokens: median milliseconds, passes, and real / computed tokens.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from pathlib import Path

from common import SCIFACT  # isort: skip (first: the offline environment)

from retriever.api import Retriever
from retriever.eval.beir import read_split
from retriever.models.invariance import padded_width

PRICES = {"one pass": 10**9, "64 (default)": 64, "32": 32, "128": 128}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path, default=None, help="an index with an LLM leg (default: the last built)")
    parser.add_argument("--data", type=Path, default=SCIFACT)
    parser.add_argument("--sizes", default="1,8,16,32")
    parser.add_argument("--draws", type=int, default=8)
    args = parser.parse_args()
    queries = list(read_split(args.data, "test").queries.values())
    encoder = Retriever.load(args.index).searcher.encoder
    rng = random.Random(0)
    draws = {n: [rng.sample(queries, n) for _ in range(args.draws)] for n in map(int, args.sizes.split(","))}
    encoder.encode(queries[:16])  # warm-up
    print("| batch | cut | median ms | passes | real / computed tokens |\n|---|---|---|---|---|")
    for n, samples in draws.items():
        for label, price in PRICES.items():
            encoder.pass_tokens = price
            seconds, passes, efficiency = [], [], []
            for texts in samples:
                lengths = [len(w.ids) for w in encoder.wrapped(texts)]
                groups = encoder.batches(lengths)
                passes.append(len(groups))
                computed = sum(len(g) * padded_width(len(g), max(lengths[i] for i in g)) for g in groups)
                efficiency.append(sum(lengths) / computed)
                started = time.perf_counter()
                encoder.encode(texts)
                seconds.append(time.perf_counter() - started)
            print(f"| {n} | {label} | {statistics.median(seconds) * 1000:.0f} | {statistics.mean(passes):.1f} | "
                  f"{statistics.mean(efficiency):.2f} |", flush=True)


if __name__ == "__main__":
    main()
