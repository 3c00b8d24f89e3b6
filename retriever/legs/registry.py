"""The registry of leg types, by name: the one place that knows which legs exist.

Adding a leg is one module with a class that follows leg.Leg, and one `register` call (below for the
engine's own; tests/unit/test_toy_leg.py registers a toy leg from outside). Everything that walks an
index's legs (indexer, searcher, updates, verify) does so in registration order.
"""

from __future__ import annotations

from ..errors import RetrieverError
from .base import Leg
from .dense import DenseLeg
from .keytokens import KeyTokenLeg
from .lexical import LexicalLeg

_LEGS: dict[str, type[Leg]] = {}


def register(leg: type[Leg]) -> type[Leg]:
    """Make a leg type known by its name (usable as a class decorator)."""
    if leg.name in _LEGS and _LEGS[leg.name] is not leg:
        raise RetrieverError(f"a leg named '{leg.name}' is already registered")
    _LEGS[leg.name] = leg
    return leg


def unregister(name: str) -> None:
    _LEGS.pop(name, None)


def leg_names() -> tuple[str, ...]:
    return tuple(_LEGS)


def leg_type(name: str) -> type[Leg]:
    try:
        return _LEGS[name]
    except KeyError:
        raise RetrieverError(f"unknown leg '{name}'; known: {', '.join(_LEGS)}") from None


def query_models(name: str, settings) -> frozenset[str]:
    """The models leg name needs to encode queries (Leg.query_models); a leg without the method needs at
    query time what it needs at index time."""
    leg = leg_type(name)
    return getattr(leg, "query_models", leg.models)(settings)


def leg_types(names: tuple[str, ...] | None = None) -> list[type[Leg]]:
    """The registered leg types, or those named, in registration order."""
    return [leg for name, leg in _LEGS.items() if names is None or name in names]


for _leg in (DenseLeg, KeyTokenLeg, LexicalLeg):
    register(_leg)
