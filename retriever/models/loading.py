"""The models of an index by kind (models/kinds.py), loaded in one place: Retriever.build and load, the
searcher's legs (LegContext.models) and a server's shared models all hold a Models and ask it what kinds
it has. A new kind (a SPLADE or ColBERT model) is a name in kinds.py, a field here, its loader in
`_LOADERS` and the manifest key naming its model in `MANIFEST_KEY`; nothing that passes models around
changes."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from .kinds import DENSE_MODEL, LLM, TOKENIZER

FIELD = {LLM: "backbone", TOKENIZER: "tokenizer", DENSE_MODEL: "dense_encoder"}  # kind -> Models field
MANIFEST_KEY = {LLM: "model", TOKENIZER: "model", DENSE_MODEL: "dense_model"}  # the manifest entry naming it
LABEL = {LLM: "model", TOKENIZER: "model", DENSE_MODEL: "dense model"}  # as messages name it
ORDER = (DENSE_MODEL, TOKENIZER, LLM)  # load order: the small ones first, so a bad name fails fast


@dataclass(frozen=True)
class Models:
    """The models in hand, None where not loaded."""

    backbone: Any = None  # the LLM (backbones.Backbone): its forward pass, and its tokenizer
    tokenizer: Any = None  # the LLM's tokenizer alone, where queries need no forward pass
    dense_encoder: Any = None  # a trained sentence encoder (sentence.SentenceEncoder)

    def get(self, kind: str) -> Any:
        return getattr(self, FIELD[kind])

    def kinds(self) -> frozenset[str]:
        """The kinds these models can serve: the LLM serves its tokenizer's too."""
        kinds = {kind for kind in FIELD if self.get(kind) is not None}
        return frozenset(kinds | ({TOKENIZER} if LLM in kinds else set()))

    def with_kind(self, kind: str, model: Any) -> Models:
        return replace(self, **{FIELD[kind]: model})

    def only(self, kinds: frozenset[str]) -> Models:
        """These models less the kinds not in kinds (a model passed in but not needed is not kept)."""
        return Models(**{FIELD[kind]: self.get(kind) for kind in FIELD if kind in kinds})

    def first(self) -> Any:
        """The first model in hand (LLM, its tokenizer, the dense encoder), or None: whose tokenizer counts."""
        return next((m for m in (self.backbone, self.tokenizer, self.dense_encoder) if m is not None), None)

    def load(self, needed: frozenset[str], specs: Mapping[str, tuple[str, str]], device: str = "auto",
             quiet: bool = True) -> Models:
        """These models plus every kind in needed that they cannot serve yet, each loaded as specs says
        (kind -> its model's name and dtype). A device this torch cannot run is refused first."""
        if needed - self.kinds() - {TOKENIZER}:
            from .backbones import pick_device

            pick_device(device)
        models = self
        for kind in ORDER:
            if kind in needed and kind not in models.kinds():
                name, dtype = specs[kind]
                models = models.with_kind(kind, _LOADERS[kind](name, dtype, device, quiet))
        return models


def _llm(name: str, dtype: str, device: str, quiet: bool) -> Any:
    from .backbones import load_backbone

    return load_backbone(name, dtype=dtype, device=device, quiet=quiet)


def _tokenizer(name: str, dtype: str, device: str, quiet: bool) -> Any:
    from .backbones import load_tokenizer

    return load_tokenizer(name, quiet)


def _dense(name: str, dtype: str, device: str, quiet: bool) -> Any:
    from .backbones import pick_device, resolve_dtype
    from .sentence import load_sentence_encoder

    return load_sentence_encoder(name, resolve_dtype(dtype, pick_device(device)), device)


_LOADERS: dict[str, Callable[[str, str, str, bool], Any]] = {LLM: _llm, TOKENIZER: _tokenizer, DENSE_MODEL: _dense}


def built_with(manifest: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """The record of the model of kind an index was built with (name, fingerprint, dtype), {} if none."""
    return dict(manifest.get(MANIFEST_KEY[kind]) or {})


def specs(manifest: Mapping[str, Any], model: str | None = None, dtype: str | None = None) -> dict[str, tuple]:
    """kind -> (name, dtype) of the models an index was built with; model, dtype: the caller's own
    choice of the LLM's name (checked against the manifest before) and of every kind's dtype."""
    out = {}
    for kind in FIELD:
        built = built_with(manifest, kind)
        name = built.get("name") or (manifest.get("settings") or {}).get("dense_model")
        if kind != DENSE_MODEL and model is not None:
            name = model
        out[kind] = (name, dtype or built.get("dtype", "auto"))
    return out


def mismatch(manifest: Mapping[str, Any], models: Models, kinds: frozenset[str]) -> str | None:
    """What differs between the models in hand of kinds and those the index was built with (by their
    weights' fingerprints), said for a person; None when they agree."""
    for kind in (LLM, DENSE_MODEL):
        model, built = models.get(kind), built_with(manifest, kind)
        if kind in kinds and model is not None and model.fingerprint != built.get("fingerprint"):
            return (f"was built with {LABEL[kind]} '{built.get('name')}' "
                    f"(sha256 {str(built.get('fingerprint'))[:12]}), "
                    f"but the {LABEL[kind]} in use is '{model.name}' (sha256 {model.fingerprint[:12]})")
    return None


def sharing_key(manifest: Mapping[str, Any], kind: str) -> tuple:
    """Which loaded model of kind another index may share with this one: the same name and weights."""
    built = built_with(manifest, kind)
    return kind, built.get("name"), built.get("fingerprint")
