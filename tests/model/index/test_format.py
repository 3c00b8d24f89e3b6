"""Indexes of every leg written by earlier code (smollm2-135m, fp32) load with the models they name and
search as they did, in every mode: before the legs owned their files, and before the house-by-role
refactor (the default settings: MiniLM, own-token key tokens, BM25)."""

from __future__ import annotations

from ...helpers.fixtures import assert_same_results


def test_an_index_of_every_leg_of_the_previous_code_searches_identically():
    assert_same_results("v1-full")


def test_an_index_of_the_defaults_before_the_refactor_searches_identically():
    assert_same_results("v2-default", dtype="float32")
