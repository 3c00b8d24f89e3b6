"""What a build on Ray costs against the same build in one process, and whether it gives the same index.

    python scripts/bench_ray.py --docs 2000 --max-tokens 64 --repeat 3

Builds the first --docs SciFact documents with `retriever index`, each command in a fresh process timed
from start to exit (model loading and, for Ray, starting a local cluster and its workers included): in one
process; with --ray --workers 1 (the worker gets every core); with --ray --workers 2 --threads 1; --repeat
times, interleaved. Prints one JSON line per build (wall seconds, the manifest's build and stage seconds)
and a summary: each Ray kind's median time over the single-process median (and the ratio within each
repeat), and whether the first Ray build's results equal the first single-process index's (every mode, a
few SciFact queries: same ids, scores within 1e-6). Also what the two ways to fit u_1 cost here: keeping
the residual vectors and projecting on the driver (what the engine does: the driver's 'project' stage, and
the residual bytes the workers send) against a first pass that encodes u_1's sample before the build (its
forward time at the measured rate).
Extra arguments after -- go to every `retriever index` (e.g. -- --dense-model none).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path

from common import SCIFACT  # isort: skip (first: the offline environment)

QUERIES = SCIFACT / "queries.jsonl"
RUNS = {"single": [], "ray-1x2": ["--ray", "--workers", "1"], "ray-2x1": ["--ray", "--workers", "2", "--threads", "1"]}

COMPARE = """
import json, sys
from retriever import Retriever
from retriever.legs.keytokens.projector import PC_SAMPLE
a, b = Retriever.load(sys.argv[1]), Retriever.load(sys.argv[2])
queries = [json.loads(line)["text"] for line in open(sys.argv[3])][:20]
same = a.searcher.ids == b.searcher.ids
worst = 0.0
for mode in a.modes:
    for x, y in zip(a.search_batch(queries, k=10, mode=mode), b.search_batch(queries, k=10, mode=mode)):
        same = same and [h.id for h in x] == [h.id for h in y]
        worst = max([worst] + [abs(h.score - g.score) / max(abs(g.score), 1e-9) for h, g in zip(x, y)])
print(json.dumps({"same_ids": same, "max_rel_score_diff": worst, "pc_sample": PC_SAMPLE}))
"""


def build(corpus: Path, index: Path, extra: list[str]) -> dict:
    cmd = [sys.executable, "-c", "from retriever.cli import main; main()", "index", str(corpus), "--index",
           str(index), "--quiet", "--json", *extra]
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    manifest = json.loads((index / "manifest.json").read_text())
    return {"wall_seconds": round(wall, 1), "build_seconds": manifest["build_seconds"],
            "stage_seconds": manifest["stage_seconds"], "documents": manifest["documents"],
            "hidden_size": manifest["model"].get("hidden_size")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--max-tokens", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=1, help="Builds of each kind, interleaved; medians printed.")
    parser.add_argument("--work", type=Path, default=None, help="Folder for the corpus and indexes (default: temp).")
    parser.add_argument("extra", nargs="*", help="Arguments for every `retriever index` (after --).")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-ray-"))
    work.mkdir(parents=True, exist_ok=True)
    corpus = work / "corpus.jsonl"
    with open(SCIFACT / "corpus.jsonl", encoding="utf-8") as src:
        corpus.write_text("".join(islice(src, args.docs)), encoding="utf-8")
    results: dict[str, list[dict]] = {name: [] for name in RUNS}
    for repeat in range(args.repeat):  # interleaved, so that a slow spell of a shared machine hits every kind
        for name, options in RUNS.items():
            index = work / f"{name}-{repeat}"
            shutil.rmtree(index, ignore_errors=True)
            results[name].append(build(corpus, index, ["--max-tokens", str(args.max_tokens), *options, *args.extra]))
            print(json.dumps({"run": name, "repeat": repeat, **results[name][-1]}), flush=True)
    single = statistics.median(r["wall_seconds"] for r in results["single"])
    for name in RUNS:
        if name == "single":
            continue
        compare = subprocess.run([sys.executable, "-c", COMPARE, str(work / "single-0"), str(work / f"{name}-0"),
                                  str(QUERIES)], capture_output=True, text=True, check=True)
        wall = statistics.median(r["wall_seconds"] for r in results[name])
        print(json.dumps({"run": name, "median_wall_seconds": wall, "single_median_wall_seconds": single,
                          "over_single": round(wall / single, 3),
                          "per_repeat": [round(r["wall_seconds"] / s["wall_seconds"], 3)
                                         for r, s in zip(results[name], results["single"], strict=True)],
                          **json.loads(compare.stdout)}))
    stages, n = results["single"][0]["stage_seconds"], results["single"][0]["documents"]
    sample = min(n, json.loads(compare.stdout)["pc_sample"])
    print(json.dumps({"u1": "residual-keep vs first pass", "project_seconds": stages.get("project"),
                      "residual_mb": round(n * (results["single"][0]["hidden_size"] or 0) * 4 / 2**20, 1),
                      "first_pass_forward_seconds": round(stages.get("forward", 0) * sample / n, 1),
                      "first_pass_documents": sample}))


if __name__ == "__main__":
    main()
