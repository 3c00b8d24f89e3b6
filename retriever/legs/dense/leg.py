"""DenseLeg: the dense leg's two files per segment (unit vectors, FAISS), its search segment by segment
and its exact rescoring (the package's docstring says why).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

import faiss
import numpy as np

from ...errors import BadIndexError
from ...models.kinds import DENSE_MODEL, LLM
from ..base import Hits, LegContext, Part, Settings
from .config import KINDS, DenseConfig

if TYPE_CHECKING:
    from ...index.segments import Segment
    from ...index.store import FileWriter



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

    def search_among(self, queries: np.ndarray, k: int, mask: np.ndarray, chunk: int = 64) -> list[np.ndarray]:
        """Top-k ids per query among the rows mask keeps, by exact cosine: a filter must still give k
        results when k documents match, which an HNSW graph cannot promise, and a flat scan of the kept rows
        costs no more than FAISS's scan of them all."""
        rows = np.flatnonzero(mask)
        kept = self.vectors[rows]
        top = []
        for start in range(0, len(queries), chunk):
            scores = normalize(queries[start:start + chunk]) @ kept.T
            for s in scores:
                best = np.argpartition(-s, k - 1)[:k] if len(s) > k else np.arange(len(s))
                top.append(rows[best[np.argsort(-s[best], kind="stable")]])
        return top

    def score(self, query: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """Exact cosine of one query against chosen documents, each row summed on its own (a BLAS product
        rounds a row by its neighbours, and the same document must score the same in any company)."""
        return (np.asarray(self.vectors[ids], np.float32) * normalize(query[None])[0]).sum(axis=1, dtype=np.float32)


class SegmentedDense:
    """The dense leg over every live segment: each segment's own FAISS search, merged by exact score, in the
    index's row numbering (segments.Segment)."""

    def __init__(self, parts: Sequence[DenseIndex], segments: Sequence[Segment]):
        self.parts, self.segments = list(parts), list(segments)
        self.offsets = np.array([s.offset for s in segments], dtype=np.int64)
        self.local = [s.live_rows() for s in segments]  # index row - offset -> the segment's row

    @property
    def vectors(self) -> np.ndarray:
        """Every live unit vector in index-row order (the stored array itself for one segment without
        deletions; a copy otherwise): for scripts and tests that look inside."""
        if len(self.parts) == 1 and self.segments[0].live is None:
            return self.parts[0].vectors
        return np.concatenate([np.asarray(p.vectors)[rows] for p, rows in zip(self.parts, self.local, strict=True)])

    def top(self, queries: np.ndarray, depth: int, mask: np.ndarray | None) -> list[np.ndarray]:
        """Per query, the top-depth index rows (among mask's) by exact cosine, ties by row."""
        found: list[list[np.ndarray]] = [[] for _ in range(len(queries))]
        for part, segment, local in zip(self.parts, self.segments, self.local, strict=True):
            if mask is None:  # deleted rows may take places in FAISS's list: ask for that many more
                k = min(segment.rows, depth + len(segment.deleted))
                lists = list(part.search(queries, k)[1])
            else:
                kept = mask[segment.offset:segment.offset + segment.live_count]
                if not kept.any():
                    continue
                allowed = np.zeros(segment.rows, dtype=bool)
                allowed[local[kept]] = True
                lists = part.search_among(queries, depth, allowed)
            for qi, rows in enumerate(lists):
                rows = segment.index_rows[rows[rows >= 0]]
                found[qi].append(rows[rows >= 0])
        return [self._best(queries[qi], np.concatenate(lists) if lists else np.zeros(0, np.int64), depth)
                for qi, lists in enumerate(found)]

    def _best(self, query: np.ndarray, rows: np.ndarray, depth: int) -> np.ndarray:
        scores = self.score(query, rows)
        return rows[np.lexsort((rows, -scores))[:depth]]

    def score(self, query: np.ndarray, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        which = np.searchsorted(self.offsets, rows, side="right") - 1
        out = np.empty(len(rows), dtype=np.float32)
        for s in np.unique(which):
            chosen = which == s
            out[chosen] = self.parts[s].score(query, self.local[s][rows[chosen] - self.offsets[s]])
        return out


VECTORS = "dense"  # dense.npy: the unit vectors, documents x dimension
FAISS_FILE = "dense.faiss"  # FAISS's own serialisation of the search structure over them


class DenseLeg:
    """The dense leg's files and search: dense.npy (exact rescoring) and dense.faiss (the top lists)."""

    name: ClassVar[str] = "dense"
    config: ClassVar[type] = DenseConfig  # its options (legs/options.py)
    title: ClassVar[str] = "dense leg"
    explains: ClassVar[bool] = False

    def __init__(self, index: SegmentedDense, encoder: Any = None):
        self.index, self.encoder = index, encoder  # encoder: the trained one queries go through, if any

    @classmethod
    def models(cls, settings: Settings) -> frozenset[str]:
        """The LLM's method vectors, or a trained sentence encoder's (settings.dense_model)."""
        return frozenset({DENSE_MODEL if settings.dense_model else LLM})

    @classmethod
    def write(cls, writer: FileWriter, parts: Sequence[Part], ctx: LegContext) -> dict[str, Any]:
        with ctx.timing("write"):
            return cls._write(writer, normalize(np.concatenate([p.array("dense") for p in parts])),
                              ctx.settings.dense.kind)

    @classmethod
    def merge(cls, writer: FileWriter, segments: Sequence[Segment], ctx: LegContext) -> dict[str, Any]:
        """Live vectors as stored (normalising them again could move their last bits)."""
        vectors = [np.asarray(s.array(VECTORS))[s.live_rows()] for s in segments]
        return cls._write(writer, np.concatenate(vectors), ctx.settings.dense.kind)

    @staticmethod
    def _write(writer: FileWriter, unit: np.ndarray, kind: str) -> dict[str, Any]:
        writer.add_array(VECTORS, unit)
        writer.add_file(FAISS_FILE, faiss.serialize_index(build_faiss(unit, kind)).tobytes())
        return {"dense_dim": int(unit.shape[1])}

    @classmethod
    def summary(cls, segments: Sequence[Segment]) -> dict[str, Any]:
        return {"dense_dim": segments[0].fields["dense_dim"]}

    @classmethod
    def check(cls, segment: Segment, manifest: dict[str, Any]) -> str:
        n, dim = segment.rows, manifest["dense_dim"]
        vectors = segment.array(VECTORS)
        if vectors.shape != (n, dim) or not np.all(np.isfinite(vectors)):
            raise BadIndexError(f"{VECTORS}.npy: shape {vectors.shape} (expected {(n, dim)}) or non-finite values")
        norms = np.linalg.norm(vectors, axis=1)
        if not np.all((np.abs(norms - 1) < 1e-3) | (norms == 0)):
            raise BadIndexError(f"{VECTORS}.npy: vectors are not unit length")
        index = _read_faiss(segment)
        if index.ntotal != n or index.d != dim:
            raise BadIndexError(f"{FAISS_FILE} holds {index.ntotal} vectors of dimension {index.d}, "
                                f"expected {n} x {dim}")
        return f"{n} unit vectors of dimension {dim}; FAISS holds the same count"

    @classmethod
    def open(cls, segments: Sequence[Segment], ctx: LegContext) -> DenseLeg:
        parts = []
        for segment in segments:
            vectors, index = segment.array(VECTORS), _read_faiss(segment)
            if vectors.ndim != 2 or len(vectors) != segment.rows or index.d != vectors.shape[1]:
                raise BadIndexError(f"{segment.folder}: {VECTORS}.npy has shape {vectors.shape} and the FAISS "
                                    f"index dimension {index.d}, for {segment.rows} documents")
            try:
                parts.append(DenseIndex(vectors, index))
            except ValueError as exc:
                raise BadIndexError(f"{segment.folder}: {exc}") from None
        if len({p.vectors.shape[1] for p in parts}) > 1:
            raise BadIndexError(f"{ctx.manifest.get('segments')}: segments of different dimensions")
        return cls(SegmentedDense(parts, segments), ctx.dense_encoder if ctx.settings.dense_model else None)

    def encode(self, texts: Sequence[str], vectors: Any) -> np.ndarray:
        return self.encoder.encode(texts) if self.encoder is not None else vectors.dense

    def hits(self, queries: np.ndarray, depth: int, mask: np.ndarray | None = None) -> Hits:
        for qi, rows in enumerate(self.index.top(queries, depth, mask)):
            yield rows, partial(self.index.score, queries[qi])

    def explain(self, queries: np.ndarray, qi: int, row: int, text: str,
                document: str = "") -> list[tuple[str, float]]:
        return []


def _read_faiss(segment: Segment) -> faiss.Index:
    """FAISS's file, checksummed before FAISS parses it: damaged native data could crash the process."""
    data = segment.read_file(FAISS_FILE)
    try:
        return faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
    except RuntimeError as exc:  # FAISS reports a damaged file this way
        raise BadIndexError(f"{segment.folder / FAISS_FILE}: cannot read the FAISS index "
                            f"({str(exc).splitlines()[0]})") from None
