"""Building an index: one forward pass per batch feeds both the dense and the key-token sparse leg;
the BM25 lexical leg counts the same documents' words and needs no model.

Documents stream to Parquet as they are encoded; the dense and residual vectors are kept until the end,
because the sparse leg needs the first principal component of the whole (sampled) corpus before it can
project any document.
"""

from __future__ import annotations

import hashlib
import platform
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from itertools import islice
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from .corpus import Document
from .dense import KINDS, DenseIndex
from .encoders import Encoder, EncodeStats, defaults_for, make_method
from .errors import InputError, RetrieverError
from .fusion import FUSIONS
from .lexical import VOCAB_FILE, LexicalBuilder, LexicalConfig, vocabulary_bytes
from .sparse import KeyTokenProjector, SparseConfig, SparseIndex, own_token_ids
from .store import IndexWriter, remember_last

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
    return KeyTokenProjector(backbone.unembedding, backbone.final_norm,
                             excluded_token_ids(backbone.tokenizer), settings.sparse, u1)


def _chunks(items: Iterable[Document], size: int) -> Iterator[list[Document]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


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
                progress: Progress | None = None, source: str | None = None) -> dict[str, Any]:
    """Encode, index and write documents to target; returns the manifest.

    The model's measured method defaults are filled in under the caller's parameters and stored, so
    queries are encoded with exactly the parameters the documents were.
    """
    started = time.perf_counter()
    settings = replace(settings, method_params={**defaults_for(backbone.name, settings.method),
                                                **settings.method_params})
    method = make_method(settings.method, **settings.method_params)
    encoder = Encoder(backbone, method, settings.max_tokens)
    stats, dense_parts, residual_parts, count, empty = EncodeStats(), [], [], 0, 0
    own: list[np.ndarray] | None = [] if "sparse" in settings.legs and settings.sparse.own_tokens else None
    lexical = LexicalBuilder(settings.lexical) if "lexical" in settings.legs else None
    with IndexWriter(target) as writer:
        if progress:
            progress(0, 0)  # the clock starts here: model loading is not indexing
        for chunk in _chunks(documents, CHUNK):
            writer.add_documents((d.id, d.title, d.text, d.metadata) for d in chunk)
            empty += sum(not d.content.strip() for d in chunk)
            count += len(chunk)
            if lexical is not None:
                lexical.add(d.content for d in chunk)
            if settings.needs_model:
                encoded = encoder.encode([d.content for d in chunk], on_batch=progress)
                stats.add(encoded.stats)
                dense_parts.append(encoded.dense)
                residual_parts.append(encoded.residual)
                if own is not None:
                    own += [np.asarray(ids, np.int32) for ids in  # 4 bytes a token, not a Python int's 28
                            own_token_ids(backbone.tokenizer, [d.content for d in chunk], settings.max_tokens)]
            elif progress:
                progress(len(chunk), 0)
        if count == 0:
            raise InputError("empty corpus: no documents", source)
        manifest = _write_model_legs(writer, backbone, settings, dense_parts, residual_parts, own)
        if lexical is not None:
            manifest.update(_write_lexical(writer, lexical))
        manifest.update({
            "model": backbone.describe(),
            "settings": settings.to_dict(),
            "method_parameters": method.parameters(),
            "documents": count,
            "documents_empty": empty,
            "documents_truncated": stats.truncated,
            "tokens_embedded": stats.tokens,
            "padded_tokens": stats.padded_tokens,
            "source": source,
            "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "build_seconds": round(time.perf_counter() - started, 3),
            "versions": _library_versions(),
        })
        path = writer.commit(manifest)
    remember_last(path)
    return manifest


def _write_model_legs(writer: IndexWriter, backbone, settings: IndexSettings, dense_parts: list[np.ndarray],
                      residual_parts: list[np.ndarray], own: list[np.ndarray] | None) -> dict[str, Any]:
    info: dict[str, Any] = {}
    if not settings.needs_model:
        return info
    dense, residual = np.concatenate(dense_parts), np.concatenate(residual_parts)
    if "dense" in settings.legs:
        index = DenseIndex.build(dense, settings.dense_kind)
        writer.add_array("dense", index.vectors)
        writer.add_file(DENSE_FAISS, faiss.serialize_index(index.index).tobytes())
        info["dense_dim"] = int(dense.shape[1])
    if "sparse" in settings.legs:
        projector = make_projector(backbone, settings)
        lexical = projector.lexical(residual)
        u1 = projector.fit(lexical)
        writer.add_array("u1", u1)
        info["u1_sha256"] = hashlib.sha256(u1.tobytes()).hexdigest()
        sparse = SparseIndex(projector.documents(lexical, own))
        _add_csr(writer, "sparse_rows", sparse.doc_rows)
        _add_csr(writer, "sparse_postings", sparse.postings)
        info["sparse_nnz"] = int(sparse.doc_rows.nnz)
        info["vocab_size"] = projector.vocab_size
    return info


def _add_csr(writer: IndexWriter, name: str, matrix) -> None:
    """A CSR matrix as three plain .npy arrays (read back by searcher._load_csr): no pickle."""
    for part in ("indptr", "indices", "data"):
        writer.add_array(f"{name}_{part}", getattr(matrix, part))


def _write_lexical(writer: IndexWriter, lexical: LexicalBuilder) -> dict[str, Any]:
    postings = lexical.postings()
    writer.add_file(VOCAB_FILE, vocabulary_bytes(lexical.vocabulary()))
    _add_csr(writer, "lexical_postings", postings)
    return {"lexical_vocab_size": postings.shape[0], "lexical_nnz": int(postings.nnz)}
