"""What an add of a few documents costs against the index's size: seconds and bytes written.

    python scripts/bench_add.py --docs 5000,50000 --add 10 --max-tokens 8 --dense-model none

Each size is built once by `retriever index` (SciFact's corpus repeated with new ids, as bench_memory.py
does; reused from --work when already there) and copied; then, in a fresh process per size, the model is
loaded and `Retriever.add` is timed on `--add` new documents, with the bytes the process wrote during the
add (wchar of /proc/self/io: every write call, page cache included) against the index's size on disk;
then the index of two segments is opened three times (a Searcher: what a load costs besides the model; the
median is printed), and `Retriever.optimize` (the merge of the two segments: a full rewrite) is timed the
same way as the add.
An add writes one new segment and the manifest (segments.py); before segments it rewrote the whole index
(docs/benchmarks.md has both).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import SCIFACT, folder_mb, repeated_corpus  # isort: skip (first: the offline environment)

ADD = """
import json, statistics, sys, time
from retriever import Retriever
from retriever.search.searcher import Searcher
path, docs = sys.argv[1], json.loads(sys.argv[2])
r = Retriever.load(path)
def written():
    return int(dict(line.split(": ") for line in open("/proc/self/io").read().splitlines())["wchar"])
before, started = written(), time.perf_counter()
r.add(docs)
added = {"seconds": time.perf_counter() - started, "bytes": written() - before, "documents": r.manifest["documents"]}
opens = []
for _ in range(3):
    started = time.perf_counter()
    Searcher(r.path, r.manifest, r.models)
    opens.append(time.perf_counter() - started)
added["open_seconds"] = statistics.median(opens)
before, started = written(), time.perf_counter()
r.optimize()
print(json.dumps({**added, "optimize_seconds": time.perf_counter() - started, "optimize_bytes": written() - before}))
"""


def build(size: int, work: Path, options: list[str]) -> Path:
    index = work / f"index-{size}"
    if (index / "manifest.json").exists():
        return index
    corpus = repeated_corpus(SCIFACT / "corpus.jsonl", size, work / f"corpus-{size}.jsonl")
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "retriever.cli", "index", str(corpus), "--index", str(index), "--quiet",
                    *options], check=True)
    print(f"built {size:,} documents in {time.perf_counter() - started:.0f} s", flush=True)
    return index


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", default="5000,50000")
    parser.add_argument("--add", type=int, default=10)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "bench-add")
    parser.add_argument("--max-tokens", default="8", help="the build's --max-tokens (speed of the build only)")
    parser.add_argument("--dense-model", default=None, help="the build's --dense-model (default: the default)")
    parser.add_argument("--legs", default=None, help="the build's --legs (default: the default)")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    options = ["--max-tokens", args.max_tokens]
    options += ["--dense-model", args.dense_model] if args.dense_model else []
    options += ["--legs", args.legs] if args.legs else []
    new = [{"_id": f"new-{i}", "title": f"Added note {i}",
            "text": f"An added abstract number {i} on protein folding and its measurement in cells."}
           for i in range(args.add)]
    print("| documents | index MB | add seconds | MB written | written / index | open seconds | optimize seconds "
          "| optimize MB |\n|---|---|---|---|---|---|---|---|", flush=True)
    for size in (int(s) for s in args.docs.split(",")):
        index = build(size, args.work, options)
        trial = args.work / f"trial-{size}"
        shutil.rmtree(trial, ignore_errors=True)
        shutil.copytree(index, trial)
        size_mb = folder_mb(trial)
        done = subprocess.run([sys.executable, "-c", ADD, str(trial), json.dumps(new)], check=True,
                              capture_output=True, text=True)
        got = json.loads(done.stdout.strip().splitlines()[-1])
        assert got["documents"] == size + args.add
        written = got["bytes"] / 2**20
        print(f"| {size:,} | {size_mb:.1f} | {got['seconds']:.2f} | {written:.2f} | {written / size_mb:.4f} | "
              f"{got['open_seconds']:.2f} | {got['optimize_seconds']:.2f} | {got['optimize_bytes'] / 2**20:.1f} |",
              flush=True)


if __name__ == "__main__":
    main()
