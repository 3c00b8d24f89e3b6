"""The papers' methods against slow, obvious recomputations from transformers' own outputs."""

from __future__ import annotations

import pytest

from retriever.models.encoders import make_method


def test_bad_method_parameters_are_clear():
    from retriever import RetrieverError

    with pytest.raises(RetrieverError, match="unknown method 'tp-mean'"):
        make_method("tp-mean")
    with pytest.raises(RetrieverError, match="bad parameters for method 'va'"):
        make_method("va", layer=3)
    with pytest.raises(RetrieverError, match="apply to tp- methods only"):
        make_method("prompteol", tp_start=1)




def test_aligned_wva_takes_any_prompt_method():
    from retriever import RetrieverError
    from retriever.models.encoders.prompts import METAEOL_TEMPLATES, PROMPTS

    assert make_method("aligned-wva").templates == (PROMPTS["prompteol"],)
    assert make_method("aligned-wva", prompt="cot").templates == (PROMPTS["cot"],)
    assert make_method("aligned-wva", prompt="metaeol").templates == METAEOL_TEMPLATES
    assert make_method("tp-aligned-wva", prompt="ke").templates == (PROMPTS["ke"],)
    with pytest.raises(RetrieverError, match="prompt must be one of"):
        make_method("aligned-wva", prompt="nope")


def test_the_published_normalisation_and_the_split_one():
    from retriever.models.encoders.prompts import normalize, normalize_split

    assert normalize("Is it so?") == "Is it so."  # a final ? becomes .
    assert normalize('He said "hi"') == "He said 'hi'"  # ends in a quote: nothing appended, then replaced
    assert normalize("plain text") == "plain text."
    assert normalize("") == ""
    assert normalize_split("Is it so?") == "Is it so?"  # the format of older indexes, kept for them
    assert normalize_split('He said "hi"') == "He said 'hi'"


def test_settings_from_before_the_published_prompt_format_keep_the_split_one():
    from retriever.settings import IndexSettings

    assert IndexSettings.from_dict({"method": "prompteol"}).prompt_format == "split"
    assert IndexSettings().prompt_format == "published"
    assert IndexSettings().make_method().prompt_format == "published"
    assert IndexSettings.from_dict({"method": "tp-cot"}).make_method().prompt_format == "split"
