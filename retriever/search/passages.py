"""Which rows of an index of passages are which document's, for scoring each document by its best passage
(MaxP: Dai and Callan, SIGIR 2019). A document's passages are consecutive rows, its first passage (number
0) first, in every segment and after every merge (index/store.py), so one pass over the passage numbers
says it all."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ..index.store import has_passages


@dataclass(frozen=True)
class Passages:
    document: np.ndarray  # per row, the number of its document in index order
    firsts: np.ndarray  # per document, the row of its first passage

    @classmethod
    def of(cls, table: pa.Table) -> Passages | None:
        """The map of an index's live rows (None for an index without passages: a row is a document)."""
        if not has_passages(table):
            return None
        first = table.column("passage").to_numpy(zero_copy_only=False) == 0
        return cls(np.cumsum(first) - 1, np.flatnonzero(first))

    @property
    def per_document(self) -> int:
        """Passages per document, on average, rounded up: how much deeper each leg looks for k documents."""
        return max(1, math.ceil(len(self.document) / max(len(self.firsts), 1)))
