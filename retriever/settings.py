"""The index settings schema: every choice that shapes an index, stored in its manifest and reused for
queries. Build side (indexer, updates) and query side (searcher) both import it from here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import RetrieverError
from .legs.base import DENSE_MODEL, LLM
from .legs.dense import KINDS
from .legs.keytokens import SparseConfig
from .legs.lexical import LexicalConfig
from .legs.registry import leg_names, leg_type, query_models
from .models.encoders import PROMPT_FORMATS, Method, make_method
from .models.sentence import DEFAULT_DENSE_MODEL
from .search.fusion import fusion_names, fusion_params

LEGS = ("dense", "sparse", "lexical")  # a new index's legs by default
# The fusion tuned on SciFact train (809 queries; DBSF won the grid of convex, DBSF and RRF) for the default
# legs (minilm-l6 dense, smollm2-135m key tokens with own-token queries, BM25; docs/quality.md, issue 27: the
# same weights won at 128 and 512 tokens): the default for every other dataset.
DEFAULT_FUSION = "dbsf"
DEFAULT_WEIGHTS = {"dense": 0.50, "sparse": 0.15, "lexical": 0.35}


@dataclass
class IndexSettings:
    """Every choice that shapes an index; stored in the manifest and reused for queries."""

    method: str = "prompteol"
    method_params: dict[str, Any] = field(default_factory=dict)
    max_tokens: int = 128  # the LLM's budget: own tokens come from the whole text (SparseConfig.own_span)
    legs: tuple[str, ...] = LEGS
    dense_kind: str = "flat"
    sparse: SparseConfig = field(default_factory=SparseConfig)
    lexical: LexicalConfig = field(default_factory=LexicalConfig)
    fusion: str = DEFAULT_FUSION
    fusion_params: dict[str, float] = field(default_factory=dict)  # the fusion's own (search/fusion.py)
    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    # the dense leg's trained sentence encoder (sentence.py; None: the LLM's method vectors)
    dense_model: str | None = field(default_factory=lambda: DEFAULT_DENSE_MODEL)
    prompt_format: str = "published"  # PROMPT_FORMATS: how prompts are normalised, tokenized and TP's layers

    def __post_init__(self):
        self.legs = tuple(self.legs)
        if not self.legs or any(leg not in leg_names() for leg in self.legs):
            raise RetrieverError(f"legs must be a non-empty subset of {leg_names()}, not {self.legs}")
        if self.dense_kind not in KINDS:
            raise RetrieverError(f"dense index kind must be one of {KINDS}")
        if self.fusion not in fusion_names():
            raise RetrieverError(f"fusion must be one of {fusion_names()}, not {self.fusion!r}")
        try:
            self.fusion_params = fusion_params(self.fusion, self.fusion_params)
        except ValueError as error:
            raise RetrieverError(str(error)) from None
        if self.dense_model is not None and "dense" not in self.legs:
            self.dense_model = None  # no dense leg: nothing for a dense model to do
        if self.prompt_format not in PROMPT_FORMATS:
            raise RetrieverError(f"prompt_format must be one of {PROMPT_FORMATS}, not {self.prompt_format!r}")
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

    def models(self, legs: Sequence[str] | None = None) -> frozenset[str]:
        """The models the given legs (every leg of the index when None) need: leg.LLM, leg.DENSE_MODEL."""
        return frozenset().union(*(leg_type(leg).models(self) for leg in (self.legs if legs is None else legs)))

    def query_models(self, legs: Sequence[str] | None = None) -> frozenset[str]:
        """The models the given legs (every leg when None) need to encode a query: the LLM only where a
        leg runs it on queries; leg.TOKENIZER where one needs its tokenizer alone."""
        return frozenset().union(*(query_models(leg, self) for leg in (self.legs if legs is None else legs)))

    @property
    def needs_model(self) -> bool:
        """Whether the LLM runs: for a leg that needs its forward pass."""
        return LLM in self.models()

    @property
    def needs_dense_model(self) -> bool:
        return DENSE_MODEL in self.models()

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["legs"] = list(self.legs)
        return data

    def make_method(self) -> Method:
        """The embedding method these settings name, with their parameters and prompt format."""
        method = make_method(self.method, **self.method_params)
        method.prompt_format = self.prompt_format
        return method

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IndexSettings:
        """Indexes written before prompt_format existed were encoded with the split format, and before
        dense_model existed their dense leg was the LLM's; before the fusion registry, RRF's k was a field
        of its own (rrf_k, stored by every index whatever its fusion)."""
        data = {"prompt_format": "split", "dense_model": None, **data}
        if "rrf_k" in data:
            rrf_k = data.pop("rrf_k")
            if data.get("fusion", DEFAULT_FUSION) == "rrf" and "fusion_params" not in data:
                data["fusion_params"] = {"k": rrf_k}
        return cls(**data)
