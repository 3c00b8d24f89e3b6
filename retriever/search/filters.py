"""Metadata filters: which documents a search may return, as a mask over an index's rows.

A filter is a JSON object; every key must hold (AND). A key is a top-level metadata field, or `_id`:

    {"topic": "volcano"}                              equality (strings, numbers, booleans)
    {"topic": {"in": ["volcano", "bees"]}}            one of several values
    {"year": {"gte": 2000, "lt": 2010}}               numeric range: gt, gte, lt, lte (any subset)
    {"published": {"gte": "2020-01-01"}}              date range: ISO dates or date-times, compared as dates
    {"source": {"exists": true}}                      the field is present (false: absent)
    {"_id": {"prefix": "pubmed-"}}                    ids that start with a prefix (equality and in work too)

The searcher turns a filter into a boolean mask once per call and every leg applies it before taking its
top-k (leg.py), so k results come back whenever k documents match: it is not a post-filter.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

import numpy as np

from ..errors import RetrieverError

RANGE = {"gt": lambda v, b: v > b, "gte": lambda v, b: v >= b, "lt": lambda v, b: v < b, "lte": lambda v, b: v <= b}
OPERATORS = (*RANGE, "in", "exists", "prefix")
_MISSING = object()
Test = Callable[[Any], bool]


class FilterError(RetrieverError):
    """A filter that is not in the language above, named by the key and operator at fault."""


def parse_filter(spec: Mapping[str, Any] | str | None) -> dict[str, Test] | None:
    """A filter (a JSON object, or its text) as one test per key; None for no filter."""
    if spec is None:
        return None
    if isinstance(spec, str):
        try:
            spec = json.loads(spec)
        except json.JSONDecodeError as exc:
            raise FilterError(f"the filter is not valid JSON ({exc.msg} at character {exc.pos + 1})") from None
    if not isinstance(spec, Mapping) or not spec:
        raise FilterError('a filter is a non-empty JSON object, e.g. {"topic": "volcano"}')
    return {key: _test(key, condition) for key, condition in spec.items()}


def _test(key: str, condition: Any) -> Test:
    if not isinstance(key, str) or not key:
        raise FilterError(f"filter keys are field names, not {key!r}")
    if not isinstance(condition, Mapping):
        _scalar(key, "=", condition)
        return lambda v: v is not _MISSING and _equal(v, condition)
    if not condition:
        raise FilterError(f"filter on '{key}': an empty condition; use one of {', '.join(OPERATORS)}")
    if unknown := [op for op in condition if op not in OPERATORS]:
        raise FilterError(f"filter on '{key}': unknown operator {unknown[0]!r}; use one of {', '.join(OPERATORS)}")
    tests = [_operator(key, op, bound) for op, bound in condition.items()]
    return lambda v: all(t(v) for t in tests)


def _operator(key: str, op: str, bound: Any) -> Test:
    if op == "exists":
        if not isinstance(bound, bool):
            raise FilterError(f"filter on '{key}': exists takes true or false")
        return lambda v: (v is not _MISSING and v is not None) == bound
    if op == "in":
        if not isinstance(bound, list) or not bound:
            raise FilterError(f"filter on '{key}': in takes a non-empty list of values")
        for b in bound:
            _scalar(key, "in", b)
        return lambda v: v is not _MISSING and any(_equal(v, b) for b in bound)
    if op == "prefix":
        if not isinstance(bound, str):
            raise FilterError(f"filter on '{key}': prefix takes a string")
        return lambda v: isinstance(v, str) and v.startswith(bound)
    return _range(key, op, bound)


def _range(key: str, op: str, bound: Any) -> Test:
    compare = RANGE[op]
    if isinstance(bound, bool) or not isinstance(bound, int | float | str):
        raise FilterError(f"filter on '{key}': {op} takes a number or an ISO date, not {bound!r}")
    if isinstance(bound, str):
        when = _date(bound)
        if when is None:
            raise FilterError(f"filter on '{key}': {op} {bound!r} is neither a number nor an ISO date")
        return lambda v: (d := _date(v)) is not None and compare(d, when)
    if not math.isfinite(bound):
        raise FilterError(f"filter on '{key}': {op} takes a finite number")
    return lambda v: _number(v) and compare(v, bound)


def _scalar(key: str, op: str, value: Any) -> None:
    if not isinstance(value, str | int | float | bool):
        raise FilterError(f"filter on '{key}': {op} compares with a string, number or boolean, not {value!r}")


def _equal(value: Any, wanted: Any) -> bool:
    """Equality that does not confuse true with 1 (Python does)."""
    return isinstance(value, bool) == isinstance(wanted, bool) and value == wanted


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _date(value: Any) -> datetime | None:
    """An ISO date or date-time as a naive datetime (time zones dropped: dates compare as written)."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        try:
            parsed = datetime.combine(date.fromisoformat(value), datetime.min.time())
        except ValueError:
            return None
    return parsed.replace(tzinfo=None)


def mask(tests: dict[str, Test], ids: Sequence[str], metadata: Callable[[], Sequence[dict]]) -> np.ndarray:
    """Rows every test accepts; metadata is read (and parsed) only when a test names a metadata field."""
    keep = np.ones(len(ids), dtype=bool)
    rows = None
    for key, test in tests.items():
        if key == "_id":
            values = ids
        else:
            rows = rows if rows is not None else metadata()
            values = [row.get(key, _MISSING) for row in rows]
        keep &= np.fromiter((test(v) for v in values), dtype=bool, count=len(ids))
    return keep
