"""The registry of leg types, by name: the one place that knows which legs exist.

Adding a leg is one module with a class that follows legs.base.Leg, and one `register` call (the engine's
own are named below by where they live, and imported when first used, so that naming the legs, as the
CLI does for --legs and --mode, loads no faiss or torch; tests/tiny/legs/test_toy_leg.py registers a toy leg
from outside). Everything that walks an index's legs (indexer, searcher, updates, verify) does so in
registration order.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..errors import InputError, RetrieverError

if TYPE_CHECKING:
    from .base import Leg

# the engine's legs, in the order every loop over them takes, and their configs (legs/options.py):
# "module:class", imported on first use
_LEGS: dict[str, type[Leg] | str] = {"dense": "retriever.legs.dense.leg:DenseLeg",
                                     "sparse": "retriever.legs.keytokens.leg:KeyTokenLeg",
                                     "lexical": "retriever.legs.lexical.leg:LexicalLeg"}
_CONFIGS: dict[str, type | str | None] = {"dense": "retriever.legs.dense.config:DenseConfig",
                                          "sparse": "retriever.legs.keytokens.config:SparseConfig",
                                          "lexical": "retriever.legs.lexical.config:LexicalConfig"}
HYBRID = "hybrid"  # the mode that fuses every leg: no leg may take its name


def register(leg: type[Leg]) -> type[Leg]:
    """Make a leg type known by its name, with its config (Leg.config, None for a leg without options);
    usable as a class decorator."""
    if leg.name == HYBRID:
        raise RetrieverError(f"'{HYBRID}' is the fused mode; it cannot name a leg")
    if leg.name in _LEGS and leg_type(leg.name) is not leg:
        raise RetrieverError(f"a leg named '{leg.name}' is already registered")
    _LEGS[leg.name], _CONFIGS[leg.name] = leg, getattr(leg, "config", None)
    return leg


def unregister(name: str) -> None:
    _LEGS.pop(name, None)
    _CONFIGS.pop(name, None)


def leg_config(name: str) -> type | None:
    """The config class of a registered leg (its options), or None; imports no leg code."""
    if name not in _LEGS:
        leg_type(name)  # the error that names the known legs
    config = _CONFIGS.get(name)
    if isinstance(config, str):
        module, _, cls = config.partition(":")
        config = _CONFIGS[name] = getattr(importlib.import_module(module), cls)
    return config


def configured_legs() -> tuple[str, ...]:
    """The registered legs that have options, in registration order."""
    return tuple(name for name in _LEGS if _CONFIGS.get(name) is not None)


def leg_names() -> tuple[str, ...]:
    return tuple(_LEGS)


def leg_type(name: str) -> type[Leg]:
    try:
        leg = _LEGS[name]
    except KeyError:
        raise RetrieverError(f"unknown leg '{name}'; known: {', '.join(_LEGS)}") from None
    if isinstance(leg, str):
        module, _, cls = leg.partition(":")
        leg = _LEGS[name] = getattr(importlib.import_module(module), cls)
    return leg


def check_documents(settings, documents: Iterable, source: str | None = None) -> None:
    """Each leg's own refusal of a document it cannot index (its config's optional refuse(text) -> reason),
    for every document, before any model loads."""
    checks = [getattr(settings, name).refuse for name in settings.legs if hasattr(leg_config(name), "refuse")]
    if not checks:
        for _ in documents:  # still read through: a bad record stops here
            pass
        return
    for doc in documents:
        for refuse in checks:
            reason = refuse(doc.content)
            if reason:
                raise InputError(f"document '{doc.id}': {reason}", source, field="text")


def query_models(name: str, settings) -> frozenset[str]:
    """The models leg name needs to encode queries (Leg.query_models); a leg without the method needs at
    query time what it needs at index time."""
    leg = leg_type(name)
    return getattr(leg, "query_models", leg.models)(settings)


def leg_types(names: tuple[str, ...] | None = None) -> list[type[Leg]]:
    """The registered leg types, or those named, in registration order."""
    return [leg_type(name) for name in _LEGS if names is None or name in names]
