"""Search at scale: synthetic indexes shaped like a real one, searched the way the engine searches.

    python scripts/bench_scale.py --index /tmp/bench/scifact-prompteol-512-default --docs 1000000

From a built index it takes the shape of each leg: the dense vectors (synthetic ones lie between pairs of
real vectors, plus noise, so they spread like real ones), the key-token rows' length distribution, each token's document
frequency and the weight distribution. It builds --docs documents of that shape and times single
queries (median, p95 over --queries) on:
- the dense leg: FAISS flat (exact), HNSW and IVF-PQ, with their recall@10 against flat;
- the sparse leg: the engine's path (one scipy sparse product over the postings, then the top positive
  scores), and bm25s's query path on the same postings matrix (bm25s stores exactly this: per token, its
  documents and weights), with bm25s's numba backend too when numba is installed.
Also prints the memory of each structure. One run, one machine: compare the ratios, not absolute times.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from common import peak_mib  # isort: skip (first: the offline environment)

import faiss
import numpy as np
import scipy.sparse as sp

from retriever.index.segments import segments_of
from retriever.index.store import read_manifest
from retriever.legs.dense.leg import normalize
from retriever.legs.inverted import SparseIndex, top_positive

BLOCK = 100_000


def timed(fn, items) -> tuple[list, dict]:
    out, times = [], []
    for item in items:
        started = time.perf_counter()
        out.append(fn(item))
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return out, {"median_ms": round(statistics.median(times), 3), "p95_ms": round(times[int(0.95 * len(times))], 3)}


def synthetic_dense(real: np.ndarray, n: int, rng: np.random.Generator, noise: float) -> np.ndarray:
    """Points between two random real vectors, plus noise of relative size `noise`: a continuum shaped like
    the real space, not 1M near-copies of 5k points (which no ANN index can rank) nor uniform noise."""
    out = np.empty((n, real.shape[1]), np.float32)
    for start in range(0, n, BLOCK):
        stop = min(start + BLOCK, n)
        a = rng.random((stop - start, 1), dtype=np.float32)
        mixed = a * real[rng.integers(len(real), size=stop - start)] + (1 - a) * real[rng.integers(len(real),
                                                                                                  size=stop - start)]
        jitter = rng.standard_normal(mixed.shape, dtype=np.float32) * (noise / np.sqrt(real.shape[1]))
        out[start:stop] = normalize(mixed + jitter)
    return out


def synthetic_rows(real: sp.csr_matrix, n: int, rng: np.random.Generator, lengths: np.ndarray | None = None
                   ) -> sp.csr_matrix:
    """Rows with real lengths (or given ones), tokens drawn by real document frequency, real weights."""
    df = np.bincount(real.indices, minlength=real.shape[1]).astype(np.float64)
    p = df / df.sum()
    if lengths is None:
        lengths = np.diff(real.indptr)[rng.integers(real.shape[0], size=n)]
    parts = []
    for start in range(0, n, BLOCK):
        block = lengths[start:start + BLOCK]
        tokens = rng.choice(real.shape[1], size=int(block.sum()), p=p).astype(np.int32)
        weights = real.data[rng.integers(len(real.data), size=len(tokens))].astype(np.float32)
        indptr = np.concatenate([[0], np.cumsum(block)]).astype(np.int64)
        rows = sp.csr_matrix((weights, tokens, indptr), shape=(len(block), real.shape[1]))
        rows.sum_duplicates()  # a token drawn twice counts once, with its weights added
        parts.append(rows)
    return sp.vstack(parts, format="csr")


def dense_rows(vectors, flat, queries, k) -> list[dict]:
    truth, flat_t = timed(lambda q: flat.search(q[None], k)[1][0], queries)
    rows = [{"leg": "dense", "index": "flat", "recall@10": 1.0, **flat_t, "memory_gb": vectors.nbytes / 2**30}]
    n, d = vectors.shape
    started = time.perf_counter()
    hnsw = faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = 40
    hnsw.add(vectors)
    hnsw.hnsw.efSearch = 128
    rows.append(_ann_row("hnsw (M 32, efSearch 128)", hnsw, queries, k, truth, time.perf_counter() - started))
    started = time.perf_counter()
    nlist = max(16, int(4 * np.sqrt(n)))
    ivf = faiss.IndexIVFPQ(faiss.IndexFlatIP(d), d, nlist, d // 12, 8, faiss.METRIC_INNER_PRODUCT)
    ivf.train(vectors[np.random.default_rng(1).choice(n, min(n, 50 * nlist), replace=False)])
    ivf.add(vectors)
    ivf.nprobe = 32
    rows.append(_ann_row(f"ivf-pq (nlist {nlist}, {d // 12}x8 bits, nprobe 32)", ivf, queries, k, truth,
                         time.perf_counter() - started))
    return rows


def _ann_row(name, index, queries, k, truth, build_s) -> dict:
    found, t = timed(lambda q: index.search(q[None], k)[1][0], queries)
    recall = float(np.mean([len(set(f) & set(g)) / k for f, g in zip(found, truth, strict=True)]))
    memory = len(faiss.serialize_index(index)) / 2**30
    return {"leg": "dense", "index": name, "recall@10": round(recall, 4), **t, "memory_gb": memory,
            "build_s": round(build_s, 1)}


def sparse_rows(postings: sp.csr_matrix, queries: sp.csr_matrix, k: int) -> list[dict]:
    index = SparseIndex.from_postings(postings)
    _, ours_t = timed(lambda q: top_positive(index.score_all(q)[0], k), [queries[i] for i in range(queries.shape[0])])
    memory = sum(a.nbytes for a in (postings.data, postings.indices, postings.indptr)) / 2**30
    rows = [{"leg": "sparse", "index": "retriever (engine path)", **ours_t, "memory_gb": memory}]
    import bm25s

    for backend in ("numpy", "numba"):
        if backend == "numba":
            try:
                import numba  # noqa: F401
            except ImportError:
                continue
        model = bm25s.BM25(backend=backend)
        model.nonoccurrence_array = None  # set by index(); Lucene BM25 has none
        model.scores = {"data": postings.data, "indices": postings.indices, "indptr": postings.indptr,
                        "num_docs": postings.shape[1]}
        ids = [queries[i].indices for i in range(queries.shape[0])]
        model.get_scores_from_ids(ids[0])  # compile / warm up
        _, t = timed(lambda q, m=model: _topk(m.get_scores_from_ids(q), k), ids)
        rows.append({"leg": "sparse", "index": f"bm25s {bm25s.__version__} ({backend}, unweighted query)", **t,
                     "memory_gb": memory})
    return rows


def _topk(scores: np.ndarray, k: int) -> np.ndarray:
    top = np.argpartition(-scores, k)[:k]
    return top[np.argsort(-scores[top])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path, required=True, help="A built index with dense and sparse legs.")
    parser.add_argument("--docs", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--noise", type=float, default=0.1)
    parser.add_argument("--legs", default="dense,sparse")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    manifest = read_manifest(args.index)
    segment = segments_of(args.index, manifest)[0]  # a real index's first segment: what the synthetic rows copy
    results = []
    if "dense" in args.legs:
        real = np.asarray(segment.array("dense"))
        vectors = synthetic_dense(real, args.docs, rng, args.noise)
        queries = synthetic_dense(real, args.queries, rng, args.noise)
        flat = faiss.IndexFlatIP(vectors.shape[1])
        flat.add(vectors)
        results += dense_rows(vectors, flat, queries, 10)
        del vectors, flat
    if "sparse" in args.legs:
        real = segment.csr("sparse_rows", (segment.rows, manifest["vocab_size"]))
        postings = synthetic_rows(real, args.docs, rng).T.tocsr()
        lengths = rng.integers(16, 41, size=args.queries)  # a query: its own tokens plus 16 aligned ones
        results += sparse_rows(postings, synthetic_rows(real, args.queries, rng, lengths), 10)
        results[-1]["postings_nnz"] = int(postings.nnz)
    for row in results:
        row["docs"] = args.docs
        print(json.dumps(row), flush=True)
    print(f"\npeak RSS {peak_mib() / 1024:.2f} GB\n")
    print("| leg | index | recall@10 | median ms | p95 ms | memory GB | build s |\n|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['leg']} | {r['index']} | {r.get('recall@10', '-')} | {r['median_ms']} | {r['p95_ms']} "
              f"| {r['memory_gb']:.2f} | {r.get('build_s', '-')} |")


if __name__ == "__main__":
    main()
