"""Load test of `retriever serve`: throughput and latency with and without micro-batching, on loopback.

    python scripts/bench_serve.py --index DIR [--clients 1,4,16,64] [--seconds 20] [--json]

First the SciFact test queries are searched through the Python API in this process (the reference). Then,
for each server setting (micro-batched: --batch-wait-ms 5 --max-batch 64; one at a time: --batch-wait-ms 0
--max-batch 1), a server is started in its own process on a free loopback port and, for each client count
N, N concurrent clients (asyncio + httpx, one connection each) send POST /search with the test queries in
turn for a fixed time. Printed per run: requests, throughput, p50/p95/p99 latency, errors, responses that
differ from the API's, and the server's mean batch. Bounded: --seconds per run, --max-requests per run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path

from common import SCIFACT  # isort: skip (first: the offline environment)

import httpx

from retriever.api import Retriever
from retriever.eval.beir import read_split
from retriever.serve.server import ServerProcess

SETTINGS = {"micro-batched": ["--batch-wait-ms", "5", "--max-batch", "64"],
            "one at a time": ["--batch-wait-ms", "0", "--max-batch", "1"]}


def reference(index: Path, queries: list[str], k: int) -> dict[str, list[dict]]:
    """What the API answers for each query, searched one at a time (explanations on, as /search's default)."""
    retriever = Retriever.load(index)
    return {q: [h.to_dict() for h in retriever.search(q, k=k)] for q in queries}


async def client(http: httpx.AsyncClient, url: str, queries: list[str], start: int, k: int, until: float,
                 budget: list[int], out: dict) -> None:
    i = start
    while time.monotonic() < until and budget[0] > 0:
        budget[0] -= 1
        query = queries[i % len(queries)]
        i += 1
        sent = time.perf_counter()
        try:
            response = await http.post(url, json={"query": query, "k": k})
            elapsed = time.perf_counter() - sent
            if response.status_code != 200:
                out["errors"] += 1
                continue
            out["latencies"].append(elapsed)
            if response.json()["hits"] != out["reference"][query]:
                out["mismatches"] += 1
        except httpx.HTTPError:
            out["errors"] += 1


async def load(url: str, queries: list[str], clients: int, seconds: float, k: int, max_requests: int,
               expected: dict) -> dict:
    out = {"latencies": [], "errors": 0, "mismatches": 0, "reference": expected}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=120) as http:
        started = time.monotonic()
        until, budget = started + seconds, [max_requests]
        step = max(1, len(queries) // clients)
        await asyncio.gather(*(client(http, url + "/search", queries, c * step, k, until, budget, out)
                               for c in range(clients)))
        wall = time.monotonic() - started
    lat = sorted(out["latencies"])

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(p * len(lat)))] * 1000 if lat else float("nan")

    return {"clients": clients, "requests": len(lat) + out["errors"], "seconds": round(wall, 1),
            "throughput": round(len(lat) / wall, 2), "p50_ms": round(pct(0.50), 1), "p95_ms": round(pct(0.95), 1),
            "p99_ms": round(pct(0.99), 1), "mean_ms": round(statistics.fmean(lat) * 1000, 1) if lat else None,
            "errors": out["errors"], "mismatches": out["mismatches"]}


def batch_counts(server: ServerProcess) -> dict[str, tuple[int, int]]:
    """Per served index's micro-batcher: (passes, texts) so far."""
    return {m["name"]: (m["batches"], m["texts"]) for m in server.health().get("batching", {}).get("indexes", [])}


def mean_batch(before: dict, after: dict) -> str:
    """Texts per pass of each index's batcher during one run."""
    means = []
    for name, (passes, texts) in after.items():
        passes0, texts0 = before.get(name, (0, 0))
        means.append(f"{name} {(texts - texts0) / max(1, passes - passes0):.1f}")
    return ", ".join(means) or "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=SCIFACT)
    parser.add_argument("--clients", default="1,4,16,64")
    parser.add_argument("--seconds", type=float, default=20.0, help="per run (setting x client count)")
    parser.add_argument("--max-requests", type=int, default=5000, help="per run")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--settings", default=",".join(SETTINGS), help="which server settings to run")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON too")
    args = parser.parse_args()
    queries = list(read_split(args.data, "test").queries.values())
    counts = [int(c) for c in args.clients.split(",")]
    started = time.perf_counter()
    expected = reference(args.index, queries, args.k)
    print(f"reference: {len(queries)} queries through the API in {time.perf_counter() - started:.0f} s", flush=True)
    rows = []
    print("| server | clients | requests | throughput q/s | p50 ms | p95 ms | p99 ms | errors | differ from API "
          "| mean batch |\n|---|---|---|---|---|---|---|---|---|---|", flush=True)
    for name in args.settings.split(","):
        with ServerProcess(["--index", str(args.index), "--quiet", *SETTINGS[name]]) as server:
            asyncio.run(load(server.url, queries[:8], 1, 2.0, args.k, 8, expected))  # warm-up, not counted
            for clients in counts:
                before = batch_counts(server)
                row = {"server": name, **asyncio.run(load(server.url, queries, clients, args.seconds, args.k,
                                                          args.max_requests, expected))}
                row["mean_batch"] = mean_batch(before, batch_counts(server))
                rows.append(row)
                print(f"| {name} | {clients} | {row['requests']} | {row['throughput']} | {row['p50_ms']} | "
                      f"{row['p95_ms']} | {row['p99_ms']} | {row['errors']} | {row['mismatches']} | "
                      f"{row['mean_batch']} |", flush=True)
            code = server.stop()
            print(f"server ({name}) stopped by SIGTERM with exit code {code}", flush=True)
    _speedups(rows, counts)
    if args.json:
        print(json.dumps(rows, indent=2))


def _speedups(rows: list[dict], counts: list[int]) -> None:
    by = {(r["server"], r["clients"]): r["throughput"] for r in rows}
    single = by.get(("one at a time", 1))
    for clients in counts:
        on, off = by.get(("micro-batched", clients)), by.get(("one at a time", clients))
        if on and off:
            print(f"{clients} clients: micro-batched / one at a time at the same concurrency {on / off:.2f}x"
                  + (f"; / the one-query-at-a-time rate (1 client, unbatched) {on / single:.2f}x" if single else ""))


if __name__ == "__main__":
    main()
