"""Kill-and-resume trials: SIGKILL `retriever index` at random moments, run the same command again, and
compare the index with an uninterrupted build's (every array, the documents, and search results).

A trial picks a number of committed chunks from 0 to all of them, waits for it, waits a random 0-1 s
more, and kills: the kill points spread over model loading, encoding, committing and assembling.

    python scripts/kill_resume.py [--corpus retriever/data/demo.jsonl] [--trials 20] [--chunk-size 2]

Prints one row per trial (when it was killed, what was committed by then) and a summary for
docs/reliability.md. Runs the real CLI in subprocesses, so the kills are real.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from common import ROOT  # isort: skip (first: the offline environment)

import numpy as np

from retriever import Retriever

QUERIES = ["honey bees", "volcano eruption", "bicycle repair", "diabetes insulin", "the moon landing"]


def _command(corpus: Path, index: Path, model: str, chunk_size: int) -> list[str]:
    return [sys.executable, "-m", "retriever.cli", "index", str(corpus), "--index", str(index), "--model", model,
            "--chunk-size", str(chunk_size), "--quiet"]


def _committed(index: Path) -> int:
    return len(list((index.parent / f".{index.name}.partial").glob("chunk-*/chunk.json")))


def _state(index: Path) -> str:
    """What a kill interrupted: the chunks committed, and whether the index was being assembled."""
    chunks = _committed(index)
    if (index / "manifest.json").exists():
        return "finished"
    assembling = any(index.parent.glob(f".{index.name}.tmp-*"))
    return f"{chunks} chunks committed" + (", assembling" if assembling else "")


def _same(a: Path, b: Path) -> bool:
    a, b = a / "seg-000001", b / "seg-000001"  # a build writes one segment
    if (a / "documents.parquet").read_bytes() != (b / "documents.parquet").read_bytes():
        return False
    arrays = sorted(p.name for p in a.glob("*.npy"))
    return arrays == sorted(p.name for p in b.glob("*.npy")) and all(
        np.array_equal(np.load(a / name), np.load(b / name)) for name in arrays)


def _results(path: Path, backbone) -> list:
    r = Retriever.load(path, backbone=backbone)
    return [[(h.id, round(h.score, 6)) for h in hits] for hits in r.search_batch(QUERIES, k=10)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=ROOT / "retriever/data/demo.jsonl")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--chunk-size", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path("/tmp/kill-resume"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    whole = args.work / "whole"
    started = time.perf_counter()
    subprocess.run(_command(args.corpus, whole, args.model, args.chunk_size), check=True)
    full = time.perf_counter() - started
    chunks = -(-sum(1 for line in args.corpus.read_text().splitlines() if line.strip()) // args.chunk_size)
    backbone = Retriever.load(whole).backbone
    expected = _results(whole, backbone)
    rng, rows = random.Random(args.seed), []
    for trial in range(args.trials):
        index = args.work / f"t{trial}"
        wanted, extra = rng.randint(0, chunks), rng.uniform(0.0, 1.0)  # kill points spread over the work
        proc = subprocess.Popen(_command(args.corpus, index, args.model, args.chunk_size))
        started = time.perf_counter()
        while _committed(index) < wanted and proc.poll() is None:
            time.sleep(0.01)
        time.sleep(extra)
        delay = time.perf_counter() - started
        killed = proc.poll() is None
        state = _state(index)
        if killed:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        old_gone = not index.exists() or (index / "manifest.json").exists()
        subprocess.run(_command(args.corpus, index, args.model, args.chunk_size), check=True)
        equal = _same(index, whole) and _results(index, backbone) == expected
        rows.append({"trial": trial, "kill_at_s": round(delay, 2), "killed": killed, "state": state,
                     "no_half_index": old_gone, "equal": equal})
        print(json.dumps(rows[-1]), flush=True)
        shutil.rmtree(index)
    kills = [r for r in rows if r["killed"]]
    print(f"\nuninterrupted build {full:.1f}s; {len(kills)} SIGKILLs at random moments "
          f"({sum('assembling' in r['state'] for r in kills)} while assembling), "
          f"{sum(r['equal'] for r in kills)}/{len(kills)} resumed to an equal index and equal results; "
          f"half-written index under the real name: {sum(not r['no_half_index'] for r in rows)}")


if __name__ == "__main__":
    main()
