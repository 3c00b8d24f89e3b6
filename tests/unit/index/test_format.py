"""A BM25 index written before the legs owned their files loads and searches as it did (no model needed)."""

from __future__ import annotations

from ...helpers.fixtures import assert_same_results


def test_a_lexical_index_of_the_previous_code_searches_identically():
    assert_same_results("v1-lexical")
