"""The dense leg: cosine similarity over FAISS, exact (flat) by default, HNSW as an option.

The raw normalised matrix is kept beside the FAISS structure: fusion rescores every candidate exactly,
and that needs a document's vector whatever index type found (or missed) it.
"""

from __future__ import annotations

import faiss
import numpy as np

KINDS = ("flat", "hnsw")


def normalize(vectors: np.ndarray) -> np.ndarray:
    """Unit rows, so inner product is cosine; a zero row stays zero instead of becoming NaN."""
    x = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def build_faiss(vectors: np.ndarray, kind: str = "flat", hnsw_m: int = 32) -> faiss.Index:
    if kind not in KINDS:
        raise ValueError(f"dense index kind must be one of {KINDS}, not {kind!r}")
    dim = vectors.shape[1]
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 200
    else:
        index = faiss.IndexFlatIP(dim)
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def on_gpus(index: faiss.Index) -> faiss.Index:
    """A flat index copied to every GPU when this FAISS build has any (faiss-gpu); otherwise index itself.

    Files always hold the CPU index, so an index built on one machine searches on any. FAISS has no GPU
    HNSW, so HNSW stays on the CPU.
    """
    gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    if gpus == 0 or not isinstance(index, faiss.IndexFlat):
        return index
    return faiss.index_cpu_to_all_gpus(index)


class DenseIndex:
    def __init__(self, vectors: np.ndarray, index: faiss.Index, ef_search: int = 128):
        if index.ntotal != len(vectors):
            raise ValueError(f"FAISS index holds {index.ntotal} vectors, the matrix {len(vectors)}")
        self.vectors, self.index = vectors, on_gpus(index)
        if isinstance(index, faiss.IndexHNSW):
            index.hnsw.efSearch = ef_search

    def __len__(self) -> int:
        return len(self.vectors)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, ids) per query; ids of -1 (fewer than k documents) are left to the caller."""
        k = max(1, min(k, len(self)))
        return self.index.search(np.ascontiguousarray(normalize(queries)), k)

    def score(self, query: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """Exact cosine of one query against chosen documents."""
        return np.asarray(self.vectors[ids] @ normalize(query[None])[0], dtype=np.float32)
