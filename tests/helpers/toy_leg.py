"""A fourth leg, written the way a new leg is added: this one module and one `register` call
(retriever/legs/registry.py).

It matches query words against document titles only (a binary title-word index). It needs no model, owns
its two files and one option (its config: --title-min-length, stored in the manifest as "title"), and uses
none of the engine's leg internals but the inverted index everyone may use.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from retriever.errors import BadIndexError
from retriever.index.segments import Segment, live_documents
from retriever.index.store import FileWriter
from retriever.legs.base import Hits, LegContext, Part, TablePart
from retriever.legs.inverted import SparseIndex, ragged_to_csr
from retriever.legs.options import option

VOCABULARY = "title_vocab.json"
POSTINGS = "title_postings"


def words(text: str) -> list[str]:
    return re.findall(r"\w+", (text or "").lower())


@dataclass(frozen=True)
class TitleConfig:
    min_length: int = field(default=1, metadata=option(
        "--title-min-length", "Title words shorter than this are not indexed.", minimum=1))


class TitleLeg:
    name: ClassVar[str] = "title"
    config: ClassVar[type] = TitleConfig
    title: ClassVar[str] = "title leg"
    explains: ClassVar[bool] = True

    @classmethod
    def models(cls, settings) -> frozenset[str]:
        return frozenset()

    def __init__(self, vocabulary: list[str], index: SparseIndex):
        self.vocabulary, self.index = vocabulary, index
        self.ids = {w: i for i, w in enumerate(vocabulary)}

    @classmethod
    def write(cls, writer: FileWriter, parts: Sequence[Part], ctx: LegContext) -> dict[str, Any]:
        vocab: dict[str, int] = {}
        shortest = ctx.settings.title.min_length
        rows = [[vocab.setdefault(w, len(vocab)) for w in dict.fromkeys(words(title)) if len(w) >= shortest]
                for part in parts for title in part.documents().column("title").to_pylist()]
        matrix = ragged_to_csr([np.array(r, np.int32) for r in rows], [np.ones(len(r), np.float32) for r in rows],
                               len(vocab))
        writer.add_file(VOCABULARY, json.dumps(list(vocab)).encode())
        writer.add_csr(POSTINGS, matrix.T.tocsr())
        return {"title_vocab_size": len(vocab)}

    @classmethod
    def merge(cls, writer: FileWriter, segments: Sequence[Segment], ctx: LegContext) -> dict[str, Any]:
        return cls.write(writer, [TablePart(live_documents(segments))], ctx)

    @classmethod
    def summary(cls, segments: Sequence[Segment]) -> dict[str, Any]:
        return {}

    @classmethod
    def check(cls, segment: Segment, manifest: dict[str, Any]) -> str:
        vocabulary = json.loads(segment.read_file(VOCABULARY))
        if len(vocabulary) != segment.fields["title_vocab_size"]:
            raise BadIndexError(f"{VOCABULARY}: {len(vocabulary)} words, the segment says "
                                f"{segment.fields['title_vocab_size']}")
        postings = segment.csr(POSTINGS, (len(vocabulary), segment.rows))
        return f"{postings.nnz} title words"

    @classmethod
    def open(cls, segments: Sequence[Segment], ctx: LegContext) -> TitleLeg:
        """Each segment's own vocabulary, put on one: words by first appearance, documents by index row."""
        vocab: dict[str, int] = {}
        rows, columns = [], []
        for segment in segments:
            vocabulary = json.loads(segment.read_file(VOCABULARY))
            postings = segment.csr(POSTINGS, (len(vocabulary), segment.rows)).tocoo()
            number = np.array([vocab.setdefault(w, len(vocab)) for w in vocabulary], dtype=np.int64)
            index_rows = segment.index_rows[postings.col]
            rows.append(number[postings.row][index_rows >= 0])
            columns.append(index_rows[index_rows >= 0])
        rows_, columns_ = np.concatenate(rows), np.concatenate(columns)
        shape = (len(vocab), ctx.documents)
        postings = sp.csr_matrix((np.ones(len(rows_), np.float32), (rows_, columns_)), shape=shape)
        return cls(list(vocab), SparseIndex.from_postings(postings))

    def encode(self, texts: Sequence[str], vectors: Any) -> sp.csr_matrix:
        rows = [[self.ids[w] for w in dict.fromkeys(words(t)) if w in self.ids] for t in texts]
        return ragged_to_csr([np.array(r, np.int32) for r in rows], [np.ones(len(r), np.float32) for r in rows],
                             len(self.vocabulary))

    def hits(self, queries: sp.csr_matrix, depth: int, mask: np.ndarray | None = None) -> Hits:
        return self.index.hits(queries, depth, mask)

    def explain(self, queries: sp.csr_matrix, qi: int, row: int, text: str,
                document: str = "") -> list[tuple[str, float]]:
        return [(self.vocabulary[t], w) for t, w in self.index.shared_tokens(queries[qi], row)]
