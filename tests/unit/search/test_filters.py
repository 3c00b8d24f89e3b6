"""The filter language (retriever/search/filters.py) against a plain Python reading of each condition."""

from __future__ import annotations

import pytest

from retriever.search.filters import FilterError, mask, parse_filter

IDS = ["doc-1", "doc-2", "pub-3", "pub-4", "x-5"]
META = [{"topic": "volcano", "year": 1999, "on": "2020-01-05", "flag": True},
        {"topic": "bees", "year": 2005, "on": "2021-06-01T10:00:00", "flag": 1},
        {"topic": "volcano", "year": 2010.5, "on": "not a date", "flag": False},
        {"year": "2001", "flag": None},
        {}]


def kept(spec) -> list[str]:
    return [i for i, k in zip(IDS, mask(parse_filter(spec), IDS, lambda: META), strict=True) if k]


@pytest.mark.parametrize("spec, want", [
    ({"topic": "volcano"}, ["doc-1", "pub-3"]),
    ('{"topic": {"in": ["bees", "nothing"]}}', ["doc-2"]),
    ({"year": {"gte": 2000, "lt": 2011}}, ["doc-2", "pub-3"]),  # "2001" is text, not a number
    ({"year": {"gt": 1999}}, ["doc-2", "pub-3"]),
    ({"on": {"gte": "2020-01-05", "lte": "2021-06-01"}}, ["doc-1"]),  # 2021-06-01T10:00 is after midnight
    ({"on": {"lt": "2022-01-01"}}, ["doc-1", "doc-2"]),
    ({"topic": {"exists": True}}, ["doc-1", "doc-2", "pub-3"]),
    ({"flag": {"exists": False}}, ["pub-4", "x-5"]),  # null counts as absent
    ({"flag": True}, ["doc-1"]),  # true is not 1
    ({"flag": 1}, ["doc-2"]),
    ({"_id": {"prefix": "pub-"}}, ["pub-3", "pub-4"]),
    ({"_id": "x-5"}, ["x-5"]),
    ({"_id": {"prefix": "doc-"}, "topic": "volcano"}, ["doc-1"]),  # keys AND
])
def test_each_condition_keeps_exactly_the_matching_documents(spec, want):
    assert kept(spec) == want


def test_metadata_is_read_only_when_a_field_is_named():
    def unread():
        raise AssertionError("metadata was parsed for an _id filter")

    assert mask(parse_filter({"_id": {"prefix": "doc"}}), IDS, unread).tolist() == [True, True, False, False, False]


@pytest.mark.parametrize("spec, message", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "non-empty JSON object"),
    ({}, "non-empty JSON object"),
    ({"year": {"between": [1, 2]}}, "filter on 'year': unknown operator 'between'"),
    ({"year": {"gte": "soon"}}, "neither a number nor an ISO date"),
    ({"year": {"gte": True}}, "takes a number or an ISO date"),
    ({"topic": {"in": []}}, "in takes a non-empty list"),
    ({"topic": {"in": [["nested"]]}}, "compares with a string, number or boolean"),
    ({"topic": {"exists": "yes"}}, "exists takes true or false"),
    ({"_id": {"prefix": 3}}, "prefix takes a string"),
    ({"topic": {}}, "an empty condition"),
    ({"topic": None}, "compares with a string, number or boolean"),
])
def test_a_bad_filter_is_named_by_its_key_and_operator(spec, message):
    with pytest.raises(FilterError, match=message):
        parse_filter(spec)
