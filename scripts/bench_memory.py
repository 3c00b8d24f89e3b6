"""Peak memory of a build against corpus size: does it grow by more than the index itself?

    python scripts/bench_memory.py --docs 5000,50000 --max-tokens 8

Each size is built by `retriever index` in its own process (so each peak is its own), from SciFact's
corpus repeated with new ids until it has that many documents. A short --max-tokens keeps the 50k build
to minutes: the forward pass's working memory depends on the token budget per batch, not on the corpus,
so what this measures, growth with corpus size, is the same at any length. Prints, per size, the peak
RSS, the index's size on disk, and the growth of both from the smallest size.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from common import SCIFACT, folder_mb, peak_mib, repeated_corpus  # isort: skip (first: the offline environment)

CORPUS = SCIFACT / "corpus.jsonl"


def build(corpus: Path, index: Path, max_tokens: int, model: str) -> dict:
    """One build in a child process; the children's peak RSS is read before and after it runs."""
    cmd = [sys.executable, "-c", "from retriever.cli import main; main()", "index", str(corpus),
           "--index", str(index), "--model", model, "--max-tokens", str(max_tokens), "--quiet", "--json"]
    before = peak_mib(children=True)
    done = subprocess.run(cmd, capture_output=True, text=True)  # the offline environment is inherited
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    peak = peak_mib(children=True)
    if peak <= before:
        raise SystemExit("a smaller build must come first: children's peak RSS is a running maximum")
    return {"peak_rss_mb": round(peak, 1), "index_mb": round(folder_mb(index), 1),
            "build_seconds": json.loads(done.stdout)["build_seconds"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", default="5000,50000", help="Sizes, smallest first.")
    parser.add_argument("--max-tokens", type=int, default=8)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    args = parser.parse_args()
    sizes = sorted(int(x) for x in args.docs.split(","))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            corpus = repeated_corpus(args.corpus, size, Path(tmp) / f"corpus-{size}.jsonl")
            row = {"documents": size, **build(corpus, Path(tmp) / f"index-{size}", args.max_tokens, args.model)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    first = rows[0]
    print("\n| documents | peak RSS MB | index MB | RSS growth MB | index growth MB | build s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['documents']:,} | {r['peak_rss_mb']} | {r['index_mb']} | "
              f"{r['peak_rss_mb'] - first['peak_rss_mb']:.1f} | {r['index_mb'] - first['index_mb']:.1f} | "
              f"{r['build_seconds']} |")


if __name__ == "__main__":
    main()
