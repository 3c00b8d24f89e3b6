"""The papers' methods against slow, obvious recomputations from transformers' own outputs."""

from __future__ import annotations

import pytest

from retriever.encoders import make_method


def test_bad_method_parameters_are_clear():
    from retriever import RetrieverError

    with pytest.raises(RetrieverError, match="unknown method 'tp-mean'"):
        make_method("tp-mean")
    with pytest.raises(RetrieverError, match="bad parameters for method 'va'"):
        make_method("va", layer=3)
    with pytest.raises(RetrieverError, match="apply to tp- methods only"):
        make_method("prompteol", tp_start=1)


