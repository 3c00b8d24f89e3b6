"""The index settings schema: every choice that shapes an index, stored in its manifest and reused for
queries. Build side (indexer, updates) and query side (searcher) both import it from here.

The engine's own choices are fields; each leg's options are its config (legs/options.py), held in
`configs` under the leg's name, read and written through the registry, and read as an attribute of the
same name (`settings.sparse`). A leg with options of its own needs no line here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .corpus.passages import PassageOptions
from .errors import RetrieverError
from .fusion import fusion_names, fusion_params
from .legs import options
from .legs.registry import configured_legs, leg_config, leg_names, leg_type, query_models
from .models.encoders.prompts import PROMPT_FORMATS
from .models.kinds import DENSE_MODEL, LLM
from .models.presets import DEFAULT_DENSE_MODEL

if TYPE_CHECKING:
    from .models.encoders.base import Method

LEGS = ("dense", "sparse", "lexical")  # a new index's legs by default
# The fusion tuned on SciFact train (809 queries; DBSF won the grid of convex, DBSF and RRF) for the default
# legs (minilm-l6 dense, smollm2-135m key tokens with own-token queries, BM25; docs/quality.md, issue 27: the
# same weights won at 128 and 512 tokens): the default for every other dataset.
DEFAULT_FUSION = "dbsf"
PASSAGE_FIELDS = ("passage_tokens", "passage_overlap")  # stored only when set: other indexes' manifests unchanged
DEFAULT_WEIGHTS = {"dense": 0.50, "sparse": 0.15, "lexical": 0.35}


@dataclass(init=False)
class IndexSettings:
    """Every choice that shapes an index; stored in the manifest and reused for queries.

    IndexSettings(method=..., sparse=SparseConfig(...), lexical={"k1": 1.2}, ...): a leg's config goes
    under the leg's name, as a config or its manifest dict; a leg not named gets its defaults.
    """

    method: str = "prompteol"
    method_params: dict[str, Any] = field(default_factory=dict)
    max_tokens: int = 128  # the LLM's budget: own tokens come from the whole text (SparseConfig.own_span)
    legs: tuple[str, ...] = LEGS
    fusion: str = DEFAULT_FUSION
    fusion_params: dict[str, float] = field(default_factory=dict)  # the fusion's own (fusion.py)
    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    # the dense leg's trained sentence encoder (models/sentence.py; None: the LLM's method vectors)
    dense_model: str | None = field(default_factory=lambda: DEFAULT_DENSE_MODEL)
    prompt_format: str = "published"  # PROMPT_FORMATS: how prompts are normalised, tokenized and TP's layers
    # long documents as passages of this many tokens (None: one row per document, cut at max_tokens), each
    # repeating passage_overlap tokens of the one before (None: half a window); corpus/passages.py
    passage_tokens: int | None = None
    passage_overlap: int | None = None
    configs: dict[str, Any] = field(default_factory=dict)  # leg name -> its config (legs/options.py)

    def __init__(self, **values: Any):
        taken = {f.name for f in dataclasses.fields(self)} & set(configured_legs())
        if taken:  # its config would shadow a setting of the same name (or the setting its config)
            raise RetrieverError(f"a leg is named like a setting: {', '.join(sorted(taken))}; rename the leg")
        given = {**values.pop("configs", {}), **{k: values.pop(k) for k in list(values) if k in configured_legs()}}
        for f in dataclasses.fields(self):
            if f.name != "configs":
                default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
                setattr(self, f.name, values.pop(f.name, default))
        if values:
            raise RetrieverError(f"unknown setting {', '.join(sorted(values))}: the settings are "
                                 f"{', '.join(f.name for f in dataclasses.fields(self))}, and a leg's options go "
                                 f"under its name ({', '.join(configured_legs())})")
        self.configs = {name: _config(name, given.get(name)) for name in configured_legs()}
        self.__post_init__()

    def __getattr__(self, name: str) -> Any:
        configs = self.__dict__.get("configs", {})
        if name in configs:
            return configs[name]
        raise AttributeError(f"IndexSettings has no setting or leg config {name!r}")

    def __post_init__(self):
        self.legs = tuple(self.legs)
        if not self.legs or any(leg not in leg_names() for leg in self.legs):
            raise RetrieverError(f"legs must be a non-empty subset of {leg_names()}, not {self.legs}")
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
        if self.passage_overlap is not None and self.passage_tokens is None:
            raise RetrieverError("passage_overlap needs passage_tokens (--passage-overlap needs --passage-tokens)")
        _ = self.passage_options  # checked now, not at the first long document

    @property
    def passage_options(self) -> PassageOptions | None:
        """How long documents are cut (None: they are not)."""
        return None if self.passage_tokens is None else PassageOptions(self.passage_tokens, self.passage_overlap)

    @property
    def ordered_legs(self) -> tuple[str, ...]:
        """The index's legs in registration order (legs/registry.py): the order every loop over them takes."""
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
        """The manifest's form: the engine's choices, and each leg's config under the leg's name."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "configs"}
        data = {k: _plain(v) for k, v in data.items() if not (k in PASSAGE_FIELDS and v is None)}
        data["legs"] = list(self.legs)
        return {**data, **{name: options.to_dict(config) for name, config in self.configs.items()}}

    def make_method(self) -> Method:
        """The embedding method these settings name, with their parameters and prompt format."""
        from .models.encoders.registry import make_method

        method = make_method(self.method, **self.method_params)
        method.prompt_format = self.prompt_format
        return method

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IndexSettings:
        """Indexes written before prompt_format existed were encoded with the split format, and before
        dense_model existed their dense leg was the LLM's; before the fusion registry, RRF's k was a field
        of its own (rrf_k, stored by every index whatever its fusion), and before legs owned their options
        the dense leg's index kind was dense_kind."""
        data = {"prompt_format": "split", "dense_model": None, **data}
        if "rrf_k" in data:
            rrf_k = data.pop("rrf_k")
            if data.get("fusion", DEFAULT_FUSION) == "rrf" and "fusion_params" not in data:
                data["fusion_params"] = {"k": rrf_k}
        if "dense_kind" in data:
            data["dense"] = {"kind": data.pop("dense_kind")}
        return cls(**data)


def _config(leg: str, value: Any) -> Any:
    """A leg's config from what was given: nothing (its defaults), its manifest dict, or the config."""
    config = leg_config(leg)
    if value is None:
        return config()
    if isinstance(value, dict):
        return options.from_dict(config, value)
    if not isinstance(value, config):
        raise RetrieverError(f"the {leg} leg's options are a {config.__name__}, not {type(value).__name__}")
    return value


def _plain(value: Any) -> Any:
    return dict(value) if isinstance(value, dict) else value
