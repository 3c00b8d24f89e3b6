"""Fusing the legs' results.

Every function here takes, for one query, each leg's exact score for the same candidate list (the union
of the legs' top lists, with a document missing from one leg's list rescored exactly by that leg), so
nothing has to guess a missing score. Raw scores are never added: the legs' scales differ.

A fusion is one registered entry (`register_fusion`): settings, the CLI's `--fusion`/`--fusion-param` and
tuning (eval/tuning.py) read the registry, so a new one is one entry here or one call from outside.
Errors are ValueError: the callers that face a user (settings, the CLI) say which input was wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

Scores = Mapping[str, np.ndarray]
# (each leg's scores of the candidates, the leg weights, the fusion's parameters) -> one fused score each
FusionFunction = Callable[[Scores, Mapping[str, float], Mapping[str, float]], np.ndarray]


@dataclass(frozen=True)
class Fusion:
    """A way to fuse the legs' scores, as the registry knows it.

    weighted: it takes leg weights, so tuning searches the weight simplex for it (else it is tried once);
    params: its own parameters and their defaults (an index stores the values it uses);
    plainness: among fusions that tune to the same score, the plainest is kept (the highest number).
    """

    name: str
    function: FusionFunction
    weighted: bool
    params: dict[str, float] = field(default_factory=dict)
    plainness: int = 0


_FUSIONS: dict[str, Fusion] = {}


def register_fusion(fusion: Fusion) -> Fusion:
    """Make a fusion known by its name: settings, the CLI's --fusion and tuning all read the registry."""
    if fusion.name in _FUSIONS and _FUSIONS[fusion.name] != fusion:
        raise ValueError(f"a fusion named '{fusion.name}' is already registered")
    _FUSIONS[fusion.name] = fusion
    return fusion


def unregister_fusion(name: str) -> None:
    _FUSIONS.pop(name, None)


def fusion_names() -> tuple[str, ...]:
    return tuple(_FUSIONS)


def get_fusion(name: str) -> Fusion:
    try:
        return _FUSIONS[name]
    except KeyError:
        raise ValueError(f"fusion must be one of {fusion_names()}, not {name!r}") from None


def fusion_params(name: str, given: Mapping[str, float] | None = None) -> dict[str, float]:
    """A fusion's parameters: its defaults, overridden by given; a name it does not take is an error."""
    fusion = get_fusion(name)
    unknown = set(given or {}) - set(fusion.params)
    if unknown:
        known = ", ".join(fusion.params) or "none"
        raise ValueError(f"fusion {name!r} takes no parameter {', '.join(sorted(unknown))} (it takes: {known})")
    return {**fusion.params, **{k: float(v) for k, v in (given or {}).items()}}


def ranks(scores: np.ndarray) -> np.ndarray:
    """1-based rank of each candidate by descending score; ties keep candidate order."""
    order = np.argsort(-scores, kind="stable")
    result = np.empty(len(scores), dtype=np.int64)
    result[order] = np.arange(1, len(scores) + 1)
    return result


def rrf(scores: Mapping[str, np.ndarray], k: float = 60.0) -> np.ndarray:
    """Reciprocal rank fusion: sum over legs of 1 / (k + rank)."""
    return sum((1.0 / (k + ranks(np.asarray(s))) for s in scores.values()), np.zeros(_length(scores)))


def min_max(scores: np.ndarray) -> np.ndarray:
    """Scale to [0, 1] over the candidates; a leg that cannot tell them apart contributes nothing."""
    low, high = float(np.min(scores)), float(np.max(scores))
    return (scores - low) / (high - low) if high > low else np.zeros_like(scores, dtype=np.float64)


def distribution(scores: np.ndarray) -> np.ndarray:
    """Qdrant's distribution-based score fusion (DBSF) scaling: mean -/+ 3 standard deviations over the
    candidates map to 0 and 1, so a leg's scale comes from the spread of all its candidates' scores rather
    than from its two extremes; a leg that cannot tell the candidates apart contributes nothing."""
    x = np.asarray(scores, np.float64)
    spread = float(np.std(x)) if len(x) else 0.0
    if spread <= 0:
        return np.zeros_like(x)
    return (x - (float(np.mean(x)) - 3 * spread)) / (6 * spread)


def convex(scores: Mapping[str, np.ndarray], weights: Mapping[str, float], scale=min_max) -> np.ndarray:
    """Convex combination of per-query normalised scores (min-max, or distribution for DBSF); weights are
    renormalised to sum to 1 over the legs present, so switching a leg off keeps the others' balance."""
    present = {leg: float(weights.get(leg, 0.0)) for leg in scores}
    total = sum(present.values())
    if total <= 0:
        raise ValueError(f"fusion weights {dict(weights)} give no weight to the legs {list(scores)}")
    return sum((w / total * scale(np.asarray(scores[leg], np.float64)) for leg, w in present.items()),
               np.zeros(_length(scores)))


def _length(scores: Mapping[str, np.ndarray]) -> int:
    lengths = {len(s) for s in scores.values()}
    if len(lengths) > 1:
        raise ValueError("every leg must score the same candidates")
    return lengths.pop() if lengths else 0


def fuse(scores: Scores, method: str = "rrf", weights: Mapping[str, float] | None = None,
         params: Mapping[str, float] | None = None) -> np.ndarray:
    """The fused score of every candidate under a registered fusion (equal leg weights when None)."""
    fusion = get_fusion(method)
    return fusion.function(scores, weights or {leg: 1.0 for leg in scores}, fusion_params(method, params))


for _fusion in (Fusion("convex", lambda scores, weights, params: convex(scores, weights, min_max), True, {}, 2),
                Fusion("dbsf", lambda scores, weights, params: convex(scores, weights, distribution), True, {}, 1),
                Fusion("rrf", lambda scores, weights, params: rrf(scores, params["k"]), False, {"k": 60.0}, 0)):
    register_fusion(_fusion)
