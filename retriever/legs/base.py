"""What every leg of an index is: one class that owns its files, from writing them to searching them.

A leg (legs/dense, legs/keytokens, legs/lexical) writes one segment's files (index/segments.py) from the
documents and the forward pass's arrays and returns the fields it wants back, merges segments into one
(optimize), opens every live segment of an index together for search, and checks a segment's files for
`retriever verify`. A segment's files hold what its own documents are (vectors, rows, word counts), never
a statistic of the corpus, so that a new segment leaves the others as they are and search takes the
statistics over the whole live index. Its file names are its own module's constants, so the format of a
leg lives in one place; indexer, searcher, updates and verify loop over the index's legs
(legs/registry.py) and name none of their files. Its options are its config (Leg.config,
legs/options.py). This is bm25s's `BM25` (index, retrieve, save, load in one class) and
sentence-transformers' modules (each with its own config, save and load), for a hybrid index.

An opened leg turns queries into its own representation (`encode`, given the forward pass's vectors when
the leg needs the model) and yields, per query, its top list and a scorer that gives any candidate's
exact score: the searcher fuses over the union of the legs' lists, rescored by every leg.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np
import pyarrow as pa

from ..models.loading import Models

if TYPE_CHECKING:
    from ..index.segments import Segment
    from ..index.store import FileWriter

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


class Settings(Protocol):
    """What a leg reads of the index's settings (settings.Settings is one): the engine's choices it
    shares, and each leg's own config as an attribute named after the leg (`settings.sparse`). Declared
    here so that no leg imports the settings, which import the legs' registry."""

    legs: tuple[str, ...]
    max_tokens: int
    dense_model: str | None

    def __getattr__(self, leg: str) -> Any: ...


@dataclass
class LegContext:
    """What a leg may use besides its own files: the index's settings, the model (None for an index
    without a model leg), the index's manifest and its live segments when there is an index already (an
    add: score new documents as the old ones), and, when building, a fitted state to reuse and the build's
    stage clock."""

    settings: Settings
    models: Models = field(default_factory=Models)  # what is loaded (models/loading.py): none without a model leg
    documents: int = 0  # live documents in the index being opened
    u1: np.ndarray | None = None  # the key-token leg's principal component, to score alike
    timing: Callable[[str], AbstractContextManager] = lambda stage: nullcontext()
    manifest: dict[str, Any] = field(default_factory=dict)
    segments: Sequence[Segment] = ()

    @property
    def backbone(self) -> Any:
        """The LLM (None for an index without a model leg, or a query side that needs its tokenizer only)."""
        return self.models.backbone

    @property
    def dense_encoder(self) -> Any:
        """The trained sentence encoder (models/sentence.py) when settings.dense_model names one."""
        return self.models.dense_encoder

    @property
    def tokenizer(self) -> Any:
        """The LLM's tokenizer when the LLM itself is not loaded (Leg.query_models)."""
        return self.models.tokenizer


class Leg(Protocol):
    """The interface of a leg type; legs/registry.py registers them by name."""

    name: ClassVar[str]  # as in settings.legs, --legs and --mode
    title: ClassVar[str]  # as verify reports it
    explains: ClassVar[bool]  # whether explain() says why a document matched

    @classmethod
    def models(cls, settings: Settings) -> frozenset[str]:
        """Which models encode this leg's documents and queries under settings: LLM (the backbone's forward
        pass), DENSE_MODEL (a trained sentence encoder), or none."""

    @classmethod
    def query_models(cls, settings: Settings) -> frozenset[str]:
        """Which models encode this leg's queries: models(settings) unless the leg says otherwise, or
        TOKENIZER where a query needs the LLM's tokenizer only (legs.query_models gives the default)."""

    @classmethod
    def write(cls, writer: FileWriter, parts: Sequence[Part], ctx: LegContext) -> dict[str, Any]:
        """Write this leg's files of one segment for the documents of parts, in order; return the fields
        the segment records for it (Segment.fields)."""

    @classmethod
    def merge(cls, writer: FileWriter, segments: Sequence[Segment], ctx: LegContext) -> dict[str, Any]:
        """Write one segment's files for the live rows of segments, in order, as write would have for them."""

    @classmethod
    def summary(cls, segments: Sequence[Segment]) -> dict[str, Any]:
        """The index-level manifest fields of this leg over the live segments (counts, statistics)."""

    @classmethod
    def check(cls, segment: Segment, manifest: dict[str, Any]) -> str:
        """Read every file of this leg in a segment and check its structure; raise BadIndexError, or say
        what holds."""

    @classmethod
    def open(cls, segments: Sequence[Segment], ctx: LegContext) -> Leg:
        """This leg over the live rows of every segment, ready to search (cheap checks only: loading must
        stay fast)."""

    def encode(self, texts: Sequence[str], vectors: Any) -> Any:
        """Queries as this leg searches them, one row per query (an array or a CSR matrix: a micro-batch of
        many callers' queries is cut by rows, batching.py); vectors: the forward pass's output (None
        without the model)."""

    def hits(self, queries: Any, depth: int, mask: np.ndarray | None = None) -> Hits:
        """Per query, its top-depth rows by this leg among the rows mask keeps (all when None; fewer when
        fewer match) and its exact scorer. The mask applies before the top-depth cut (filters.py)."""

    def explain(self, queries: Any, qi: int, row: int, text: str, document: str = "") -> list[tuple[str, float]]:
        """What query qi (whose text is text) shares with document row (whose text is document, "" where
        unknown), as (what a person reads: a word of the query where the match came from one and the
        document has it, contribution); legs that cannot explain (explains = False) return []. The searcher
        adds up contributions that read the same."""
