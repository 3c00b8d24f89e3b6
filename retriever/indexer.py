"""Building an index: one forward pass per batch feeds both the dense and the key-token sparse leg;
the BM25 lexical leg counts the same documents' words and needs no model.

Documents and their vectors are committed to disk chunk by chunk as they are encoded (checkpoint.py), so
memory does not grow with the corpus while the model runs and a killed build resumes. The legs are then
assembled from the chunks: the sparse leg needs the first principal component of the whole (sampled)
corpus before it can project any document, and BM25 needs the whole corpus's statistics.
"""

from __future__ import annotations

import copy
import hashlib
import platform
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from itertools import islice
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import scipy.sparse as sp

from .checkpoint import Checkpoint, Chunk
from .corpus import Document
from .dense import KINDS, build_faiss, normalize
from .encoders import Encoder, EncodeStats, defaults_for, make_method
from .errors import InputError, RetrieverError
from .fusion import FUSIONS
from .lexical import VOCAB_FILE, LexicalBuilder, LexicalConfig, vocabulary_bytes
from .sparse import KeyTokenProjector, SparseConfig, SparseIndex, own_token_ids, sample_rows
from .store import FORMAT_VERSION, IndexWriter, exclusive, remember_last

LEGS = ("dense", "sparse", "lexical")
MODEL_LEGS = ("dense", "sparse")  # the legs that need the LLM's forward pass
DENSE_FAISS = "dense.faiss"
# Convex fusion weights tuned on SciFact train (809 queries; smollm2-135m, prompteol, 512 tokens, the default
# key-token leg; `python scripts/sweep_knobs.py sparse`, docs/quality.md): the defaults for every other dataset.
DEFAULT_WEIGHTS = {"dense": 0.10, "sparse": 0.05, "lexical": 0.85}
CHUNK = 1024  # documents read, encoded and written together; bounds the Python-side working set


@dataclass
class IndexSettings:
    """Every choice that shapes an index; stored in the manifest and reused for queries."""

    method: str = "prompteol"
    method_params: dict[str, Any] = field(default_factory=dict)
    max_tokens: int = 512
    legs: tuple[str, ...] = LEGS
    dense_kind: str = "flat"
    sparse: SparseConfig = field(default_factory=SparseConfig)
    lexical: LexicalConfig = field(default_factory=LexicalConfig)
    fusion: str = "convex"
    rrf_k: float = 60.0
    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))

    def __post_init__(self):
        self.legs = tuple(self.legs)
        if not self.legs or any(leg not in LEGS for leg in self.legs):
            raise RetrieverError(f"legs must be a non-empty subset of {LEGS}, not {self.legs}")
        if self.dense_kind not in KINDS:
            raise RetrieverError(f"dense index kind must be one of {KINDS}")
        if self.fusion not in FUSIONS:
            raise RetrieverError(f"fusion must be one of {FUSIONS}")
        if self.max_tokens < 1:
            raise RetrieverError("max_tokens must be at least 1")
        if isinstance(self.sparse, dict):
            self.sparse = SparseConfig.from_dict(self.sparse)
        if isinstance(self.lexical, dict):
            self.lexical = LexicalConfig(**self.lexical)

    @property
    def needs_model(self) -> bool:
        return any(leg in MODEL_LEGS for leg in self.legs)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["legs"] = list(self.legs)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IndexSettings:
        return cls(**data)


def excluded_token_ids(tokenizer) -> list[int]:
    """Control tokens carry no topic: they must never be a document's key token."""
    special = set(tokenizer.all_special_ids)
    special |= {i for i, tok in getattr(tokenizer, "added_tokens_decoder", {}).items() if tok.special}
    return sorted(special)


def make_projector(backbone, settings: IndexSettings, u1: np.ndarray | None = None) -> KeyTokenProjector:
    """The key-token projector in fp32 whatever the model's dtype: W_U e' is a sum over the hidden size in
    which u_1's removal cancels most of the vector, and bf16 rounding would move the token scores."""
    return KeyTokenProjector(backbone.unembedding_fp32, backbone.float32(backbone.final_norm),
                             excluded_token_ids(backbone.tokenizer), settings.sparse, u1)


class Stages:
    """Seconds spent per build stage, reported in the manifest: where an index's build time went."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def timing(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - started

    def reading(self, items: Iterable[Document]) -> Iterator[Document]:
        """items, with the time spent producing them (reading and parsing the corpus) counted as 'read'."""
        iterator = iter(items)
        while True:
            with self.timing("read"):
                item = next(iterator, None)
            if item is None:
                return
            yield item

    def report(self) -> dict[str, float]:
        return {stage: round(seconds, 3) for stage, seconds in self.seconds.items()}


def _chunks(items: Iterable[Document], size: int) -> Iterator[list[Document]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _read_ahead(chunks: Iterator[list[Document]], prepare: Callable[[int, list[Document]], Any]
                ) -> Iterator[tuple[int, list[Document], Any]]:
    """(number, chunk, prepare(number, chunk)) per chunk; a worker thread reads and prepares the next chunk
    while the caller encodes this one, so parsing and tokenizing hide behind the forward pass (which
    releases the GIL). An error reading chunk n+1 surfaces after chunk n is committed, as before."""
    def step(number: int):
        chunk = next(chunks, None)
        return None if chunk is None else (number, chunk, prepare(number, chunk))

    with ThreadPoolExecutor(1, thread_name_prefix="retriever-read-ahead") as pool:
        pending = pool.submit(step, 0)
        while (item := pending.result()) is not None:
            pending = pool.submit(step, item[0] + 1)
            yield item


def _library_versions() -> dict[str, str]:
    import pyarrow
    import scipy
    import torch
    import transformers

    return {"python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "faiss": faiss.__version__,
            "numpy": np.__version__, "scipy": scipy.__version__, "pyarrow": pyarrow.__version__}


Progress = Callable[[int, int], None]  # (documents done in this batch, tokens in this batch)


def build_index(documents: Iterable[Document], target: str | Path, backbone, settings: IndexSettings,
                progress: Progress | None = None, source: str | None = None, *, restart: bool = False,
                chunk_size: int = CHUNK, u1: np.ndarray | None = None) -> dict[str, Any]:
    """Encode, index and write documents to target; returns the manifest.

    Work is committed chunk by chunk (checkpoint.py): run again after a crash, the build resumes from its
    last committed chunk, unless restart. The model's measured method defaults are filled in under the
    caller's parameters and stored, so queries are encoded with exactly the parameters the documents were.
    u1: a principal component to use instead of fitting one (an existing index's, to score alike).
    """
    started = time.perf_counter()
    settings = replace(settings, method_params={**defaults_for(backbone.name, settings.method),
                                                **settings.method_params})
    method = make_method(settings.method, **settings.method_params)
    encoder = Encoder(backbone, method, settings.max_tokens) if settings.needs_model else None
    with exclusive(target):
        checkpoint = Checkpoint(target, {"model": backbone.fingerprint, "settings": settings.to_dict(),
                                         "chunk_documents": chunk_size, "format_version": FORMAT_VERSION}, restart)
        if progress:
            progress(0, 0)  # the clock starts here: model loading is not indexing
        stages = Stages()
        try:
            resumed = _encode_chunks(stages.reading(documents), checkpoint, encoder, chunk_size, progress, source,
                                     stages)
        except BaseException:
            if checkpoint.committed == 0:  # nothing worth resuming: leave no folder behind
                checkpoint.discard()
            raise
        manifest = {"model": backbone.describe(), "settings": settings.to_dict(),
                    "method_parameters": method.parameters(), "source": source, "resumed_documents": resumed,
                    "chunk_documents": chunk_size}
        path = _assemble(checkpoint, target, backbone, settings, u1, manifest, started, stages)
        checkpoint.discard()
    remember_last(path)
    return manifest


def _encode_chunks(documents: Iterable[Document], checkpoint: Checkpoint, encoder: Encoder | None,
                   chunk_size: int, progress: Progress | None, source: str | None, stages: Stages) -> int:
    """Encode and commit every chunk not committed yet; returns how many documents were already committed."""
    resumed = seen = 0
    tokenizer = copy.deepcopy(encoder.backbone.tokenizer) if encoder is not None else None  # the worker's own

    def prepare(number: int, chunk: list[Document]):
        if encoder is None or number < checkpoint.committed:
            return None
        return encoder.prepare([d.content for d in chunk], tokenizer)

    with closing(_read_ahead(_chunks(documents, chunk_size), prepare)) as ahead:
        for number, chunk, prepared in ahead:
            seen = number + 1
            if number < checkpoint.committed:
                checkpoint.check(number, chunk, source)
                resumed += len(chunk)
                if progress:
                    progress(len(chunk), 0)
                continue
            _encode_chunk(number, chunk, prepared, checkpoint, encoder, progress, stages)
    if seen == 0:
        raise InputError("empty corpus: no documents", source)
    if seen < checkpoint.committed:
        raise InputError(f"the corpus changed since the interrupted build: it now ends in chunk {seen - 1}, "
                         f"but {checkpoint.committed} chunks were committed; pass --restart", source)
    return resumed


def _encode_chunk(number: int, chunk: list[Document], prepared, checkpoint: Checkpoint, encoder: Encoder | None,
                  progress: Progress | None, stages: Stages) -> None:
    arrays: dict[str, np.ndarray] = {}
    info: dict[str, Any] = {"empty": sum(not d.content.strip() for d in chunk)}
    if encoder is not None:
        encoded = encoder.encode(prepared, on_batch=progress)
        arrays = {"dense": encoded.dense, "residual": encoded.residual}
        info["stats"] = asdict(encoded.stats)
    elif progress:
        progress(len(chunk), 0)
    with stages.timing("commit"):
        checkpoint.commit(number, chunk, arrays, info)


def stored_contents(table) -> list[str]:
    """What was embedded for each stored document (title and text, as Document.content joins them)."""
    return [Document("", text, title).content
            for title, text in zip(table.column("title").to_pylist(), table.column("text").to_pylist(),
                                   strict=True)]


def _assemble(checkpoint: Checkpoint, target: str | Path, backbone, settings: IndexSettings,
              u1: np.ndarray | None, manifest: dict[str, Any], started: float, stages: Stages) -> Path:
    """The index from the committed chunks: documents copied, legs built, manifest written last."""
    chunks = list(checkpoint.chunks())
    stats, empty, count = EncodeStats(), 0, 0
    lexical = LexicalBuilder(settings.lexical) if "lexical" in settings.legs else None
    with IndexWriter(target) as writer:
        for chunk in chunks:
            with stages.timing("write"):
                table = chunk.documents()
                writer.add_documents(table)
            count += table.num_rows
            empty += chunk.info["empty"]
            stats.add(EncodeStats(**chunk.info.get("stats", {})))
            if lexical is not None:
                with stages.timing("lexical"):
                    lexical.add(stored_contents(table))
        manifest.update(_write_model_legs(writer, backbone, settings, chunks, u1, stages))
        if lexical is not None:
            with stages.timing("lexical"):
                manifest.update(write_lexical(writer, lexical))
        stages.seconds["tokenize"], stages.seconds["forward"] = stats.tokenize_seconds, stats.forward_seconds
        manifest.update({
            "documents": count, "documents_empty": empty, "documents_truncated": stats.truncated,
            "tokens_embedded": stats.tokens, "padded_tokens": stats.padded_tokens,
            "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "build_seconds": round(time.perf_counter() - started, 3), "stage_seconds": stages.report(),
            "versions": _library_versions()})
        return writer.commit(manifest)


def _write_model_legs(writer: IndexWriter, backbone, settings: IndexSettings, chunks: list[Chunk],
                      u1: np.ndarray | None, stages: Stages) -> dict[str, Any]:
    info: dict[str, Any] = {}
    if "dense" in settings.legs:
        with stages.timing("write"):
            info.update(write_dense(writer, normalize(np.concatenate([c.array("dense") for c in chunks])),
                                    settings.dense_kind))
    if "sparse" in settings.legs:
        with stages.timing("project"):
            projector = make_projector(backbone, settings, u1)
            if u1 is None:
                projector.fit(_sample(projector, chunks))
            elif u1.shape != (backbone.hidden_size,):
                raise RetrieverError(f"u1 has shape {u1.shape}, the model's hidden size is {backbone.hidden_size}")
            rows = [document_rows(projector, backbone, settings, c.documents(), c.array("residual"))
                    for c in chunks]
        with stages.timing("write"):
            info.update(write_sparse(writer, projector.u1, sp.vstack(rows, format="csr")))
    return info


def write_dense(writer: IndexWriter, unit: np.ndarray, kind: str) -> dict[str, Any]:
    """The dense leg from unit vectors (normalised once: re-normalising could move the last bits)."""
    writer.add_array("dense", unit)
    writer.add_file(DENSE_FAISS, faiss.serialize_index(build_faiss(unit, kind)).tobytes())
    return {"dense_dim": int(unit.shape[1])}


def write_sparse(writer: IndexWriter, u1: np.ndarray, rows: sp.csr_matrix) -> dict[str, Any]:
    """The key-token leg: its u_1, the document rows (documents x vocabulary) and their postings."""
    sparse = SparseIndex(rows)
    writer.add_array("u1", u1)
    _add_csr(writer, "sparse_rows", sparse.doc_rows)
    _add_csr(writer, "sparse_postings", sparse.postings)
    return {"u1_sha256": hashlib.sha256(u1.tobytes()).hexdigest(), "sparse_nnz": int(rows.nnz),
            "vocab_size": int(rows.shape[1])}


def _sample(projector: KeyTokenProjector, chunks: list[Chunk]) -> np.ndarray:
    """The vectors u_1 is fitted on, gathered chunk by chunk: never the whole corpus in memory."""
    rows = sample_rows(sum(c.info["documents"] for c in chunks))
    parts, offset = [], 0
    for chunk in chunks:
        n = chunk.info["documents"]
        mine = rows[(rows >= offset) & (rows < offset + n)] - offset
        if len(mine):
            parts.append(projector.lexical(np.array(chunk.array("residual")[mine])))
        offset += n
    return np.concatenate(parts)


def document_rows(projector: KeyTokenProjector, backbone, settings: IndexSettings, table,
                  residual: np.ndarray) -> sp.csr_matrix:
    """Key-token rows of stored documents (a documents table) from their residual vectors."""
    own = None
    if settings.sparse.own_tokens:
        own = own_token_ids(backbone.tokenizer, stored_contents(table), settings.max_tokens)
    return projector.documents(projector.lexical(np.array(residual)), own)


def _add_csr(writer: IndexWriter, name: str, matrix) -> None:
    """A CSR matrix as three plain .npy arrays (read back by store.load_csr): no pickle."""
    for part in ("indptr", "indices", "data"):
        writer.add_array(f"{name}_{part}", getattr(matrix, part))


def write_lexical(writer: IndexWriter, lexical: LexicalBuilder) -> dict[str, Any]:
    postings = lexical.postings()
    writer.add_file(VOCAB_FILE, vocabulary_bytes(lexical.vocabulary()))
    _add_csr(writer, "lexical_postings", postings)
    return {"lexical_vocab_size": postings.shape[0], "lexical_nnz": int(postings.nnz)}
