"""An index of every leg written before the legs owned their files (smollm2-135m, fp32) loads with the model
it names and searches as it did, in every mode."""

from __future__ import annotations

from ..format_v1 import assert_same_results


def test_an_index_of_every_leg_of_the_previous_code_searches_identically():
    assert_same_results("v1-full")
