"""What every leg of an index is: one class that owns its files, from writing them to searching them.

A leg (dense.py, sparse.py, lexical.py) writes its files from the documents and the forward pass's arrays
and returns the manifest fields it wants back, opens them for search, rewrites them when documents are
added or deleted, and checks them for `retriever verify`. Its file names are its own module's constants,
so the format of a leg lives in one place; indexer, searcher, updates and verify loop over the index's
legs (legs.py) and name none of their files. This is bm25s's `BM25` (index, retrieve, save, load in one
class) and sentence-transformers' modules (each with its own config, save and load), for a hybrid index.

An opened leg turns queries into its own representation (`encode`, given the forward pass's vectors when
the leg needs the model) and yields, per query, its top list and a scorer that gives any candidate's
exact score: the searcher fuses over the union of the legs' lists, rescored by every leg.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np
import pyarrow as pa

if TYPE_CHECKING:
    from .settings import IndexSettings
    from .store import IndexWriter

LLM, DENSE_MODEL = "llm", "dense-model"  # the models a leg may need (Leg.models)
Scorer = Callable[[np.ndarray], np.ndarray]  # candidate rows -> their exact scores in this leg
Hits = Iterator[tuple[np.ndarray, Scorer]]  # per query: the leg's top rows, best first, and its scorer


class Part(Protocol):
    """Documents with the arrays the forward pass made for them (a build's committed chunk, or an update's
    new documents): `array("dense")`, `array("residual")` where the index has a model leg."""

    def documents(self) -> pa.Table: ...

    def array(self, name: str) -> np.ndarray: ...


@dataclass
class TablePart:
    """A Part held in memory."""

    table: pa.Table
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def documents(self) -> pa.Table:
        return self.table

    def array(self, name: str) -> np.ndarray:
        return self.arrays[name]


@dataclass
class LegContext:
    """What a leg may use besides its own files: the index's settings, the model (None for an index
    without a model leg) and, when building, a fitted state to reuse and the build's stage clock."""

    settings: IndexSettings
    backbone: Any = None
    documents: int = 0  # documents in the index being opened
    u1: np.ndarray | None = None  # the key-token leg's principal component, to score alike (build only)
    timing: Callable[[str], AbstractContextManager] = lambda stage: nullcontext()
    dense_encoder: Any = None  # the trained sentence encoder (sentence.py) when settings.dense_model names one


class Leg(Protocol):
    """The interface of a leg type; legs.py registers them by name."""

    name: ClassVar[str]  # as in settings.legs, --legs and --mode
    title: ClassVar[str]  # as verify reports it
    explains: ClassVar[bool]  # whether explain() says why a document matched

    @classmethod
    def models(cls, settings: IndexSettings) -> frozenset[str]:
        """Which models encode this leg's documents and queries under settings: LLM (the backbone's forward
        pass), DENSE_MODEL (a trained sentence encoder), or none."""

    @classmethod
    def write(cls, writer: IndexWriter, parts: Sequence[Part], ctx: LegContext) -> dict[str, Any]:
        """Write this leg's files for the documents of parts, in order; return its manifest fields."""

    @classmethod
    def update(cls, writer: IndexWriter, folder: Path, manifest: dict[str, Any], keep: np.ndarray,
               new: Part | None, table: pa.Table, ctx: LegContext) -> dict[str, Any]:
        """Rewrite the files of folder's index for its rows where keep, then new's documents appended
        (table: every document of the result); return the manifest fields."""

    @classmethod
    def check(cls, folder: Path, manifest: dict[str, Any]) -> str:
        """Read every file of this leg and check its structure; raise BadIndexError, or say what holds."""

    @classmethod
    def open(cls, folder: Path, manifest: dict[str, Any], ctx: LegContext) -> Leg:
        """This leg of folder's index, ready to search (cheap checks only: loading must stay fast)."""

    def encode(self, texts: Sequence[str], vectors: Any) -> Any:
        """Queries as this leg searches them, one row per query (an array or a CSR matrix: a micro-batch of
        many callers' queries is cut by rows, batching.py); vectors: the forward pass's output (None
        without the model)."""

    def hits(self, queries: Any, depth: int, mask: np.ndarray | None = None) -> Hits:
        """Per query, its top-depth rows by this leg among the rows mask keeps (all when None; fewer when
        fewer match) and its exact scorer. The mask applies before the top-depth cut (filters.py)."""

    def explain(self, queries: Any, qi: int, row: int, text: str) -> list[tuple[str, float]]:
        """What query qi (whose text is text) shares with document row, as (what a person reads: a word of
        the query where the match came from one, contribution); legs that cannot explain (explains = False)
        return []. The searcher adds up contributions that read the same."""
