"""The dense leg's options (DenseConfig), light enough for the CLI to read without faiss."""

from __future__ import annotations

from dataclasses import dataclass, field

from ...errors import RetrieverError
from ..options import option

KINDS = ("flat", "hnsw")  # the search structure over the vectors: exact, or an HNSW graph


@dataclass(frozen=True)
class DenseConfig:
    kind: str = field(default="flat", metadata=option(
        "--dense-index", "The search structure over the vectors: exact (flat) or an HNSW graph.", KINDS))

    def __post_init__(self):
        if self.kind not in KINDS:
            raise RetrieverError(f"dense index kind must be one of {KINDS}, not {self.kind!r}")

    def describe(self) -> str:
        return f"{self.kind} index"
