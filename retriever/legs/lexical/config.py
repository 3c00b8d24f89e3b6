"""The BM25 leg's options (LexicalConfig): what a user chooses, stored in the manifest; no model, no
scipy, so the CLI reads them at once."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from ...errors import RetrieverError
from ..options import option


@dataclass
class LexicalConfig:
    """BM25 parameters (bm25s's defaults, Lucene's idf) and the text analysis; stored in the manifest."""

    k1: float = field(default=1.5, metadata=option("--k1", "BM25 term-frequency saturation.", minimum=0))
    b: float = field(default=0.75, metadata=option("--b", "BM25 length normalisation.", minimum=0, maximum=1))
    stemmer: str = "english"  # a Snowball language (PyStemmer), or "" for none
    stopwords: str = "en"  # a bm25s stopword list name, or "" for none

    def __post_init__(self):
        if self.k1 < 0 or not 0 <= self.b <= 1:
            raise RetrieverError(f"BM25 needs k1 >= 0 and 0 <= b <= 1, not k1={self.k1}, b={self.b}")

    def describe(self) -> str:
        return f"BM25 {json.dumps(asdict(self))}"
