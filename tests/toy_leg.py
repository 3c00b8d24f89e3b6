"""A fourth leg, written the way a new leg is added: this one module and one `register` call (legs.py).

It matches query words against document titles only (a binary title-word index). It needs no model, owns
its two files and uses none of the engine's leg internals but the inverted index everyone may use.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import scipy.sparse as sp

from retriever.errors import BadIndexError
from retriever.leg import Hits, LegContext, Part, TablePart
from retriever.sparse import SparseIndex, ragged_to_csr
from retriever.store import IndexWriter, load_csr, read_file

VOCABULARY = "title_vocab.json"
POSTINGS = "title_postings"


def words(text: str) -> list[str]:
    return re.findall(r"\w+", (text or "").lower())


class TitleLeg:
    name: ClassVar[str] = "title"
    title: ClassVar[str] = "title leg"
    explains: ClassVar[bool] = True

    @classmethod
    def models(cls, settings) -> frozenset[str]:
        return frozenset()

    def __init__(self, vocabulary: list[str], index: SparseIndex):
        self.vocabulary, self.index = vocabulary, index
        self.ids = {w: i for i, w in enumerate(vocabulary)}

    @classmethod
    def write(cls, writer: IndexWriter, parts: Sequence[Part], ctx: LegContext) -> dict[str, Any]:
        vocab: dict[str, int] = {}
        rows = [[vocab.setdefault(w, len(vocab)) for w in dict.fromkeys(words(title))]
                for part in parts for title in part.documents().column("title").to_pylist()]
        matrix = ragged_to_csr([np.array(r, np.int32) for r in rows], [np.ones(len(r), np.float32) for r in rows],
                               len(vocab))
        writer.add_file(VOCABULARY, json.dumps(list(vocab)).encode())
        writer.add_csr(POSTINGS, matrix.T.tocsr())
        return {"title_vocab_size": len(vocab)}

    @classmethod
    def update(cls, writer: IndexWriter, folder: Path, manifest: dict[str, Any], keep: np.ndarray,
               new: Part | None, table: pa.Table, ctx: LegContext) -> dict[str, Any]:
        return cls.write(writer, [TablePart(table)], ctx)

    @classmethod
    def check(cls, folder: Path, manifest: dict[str, Any]) -> str:
        vocabulary = json.loads(read_file(folder, VOCABULARY, manifest))
        if len(vocabulary) != manifest["title_vocab_size"]:
            raise BadIndexError(f"{VOCABULARY}: {len(vocabulary)} words, the manifest says "
                                f"{manifest['title_vocab_size']}")
        postings = load_csr(folder, POSTINGS, (len(vocabulary), manifest["documents"]))
        return f"{postings.nnz} title words"

    @classmethod
    def open(cls, folder: Path, manifest: dict[str, Any], ctx: LegContext) -> TitleLeg:
        vocabulary = json.loads(read_file(folder, VOCABULARY, manifest))
        return cls(vocabulary, SparseIndex.from_postings(load_csr(folder, POSTINGS, (len(vocabulary), ctx.documents))))

    def encode(self, texts: Sequence[str], vectors: Any) -> sp.csr_matrix:
        rows = [[self.ids[w] for w in dict.fromkeys(words(t)) if w in self.ids] for t in texts]
        return ragged_to_csr([np.array(r, np.int32) for r in rows], [np.ones(len(r), np.float32) for r in rows],
                             len(self.vocabulary))

    def hits(self, queries: sp.csr_matrix, depth: int, mask: np.ndarray | None = None) -> Hits:
        return self.index.hits(queries, depth, mask)

    def explain(self, queries: sp.csr_matrix, qi: int, row: int, text: str) -> list[tuple[str, float]]:
        return [(self.vocabulary[t], w) for t, w in self.index.shared_tokens(queries[qi], row)]
