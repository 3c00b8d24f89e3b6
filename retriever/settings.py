"""The index settings schema: every choice that shapes an index, stored in its manifest and reused for
queries. Build side (indexer, updates) and query side (searcher) both import it from here."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .dense import KINDS
from .errors import RetrieverError
from .fusion import FUSIONS
from .legs import leg_names, leg_type
from .lexical import LexicalConfig
from .sparse import SparseConfig

LEGS = ("dense", "sparse", "lexical")  # a new index's legs by default
# Convex fusion weights tuned on SciFact train (809 queries; smollm2-135m, prompteol, 512 tokens, the default
# key-token leg; `python scripts/sweep_knobs.py sparse`, docs/quality.md): the defaults for every other dataset.
DEFAULT_WEIGHTS = {"dense": 0.10, "sparse": 0.05, "lexical": 0.85}


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
        if not self.legs or any(leg not in leg_names() for leg in self.legs):
            raise RetrieverError(f"legs must be a non-empty subset of {leg_names()}, not {self.legs}")
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
    def ordered_legs(self) -> tuple[str, ...]:
        """The index's legs in registration order (legs.py): the order every loop over them takes."""
        return tuple(name for name in leg_names() if name in self.legs)

    @property
    def needs_model(self) -> bool:
        return any(leg_type(leg).needs_model for leg in self.legs)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["legs"] = list(self.legs)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IndexSettings:
        return cls(**data)
