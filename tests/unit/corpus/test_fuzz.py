"""Property-based corpus reading: arbitrary bytes and JSON records are read or refused with the file and
line named, however deep or long."""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retriever import InputError
from retriever.corpus.readers import read_corpus

# FUZZ_EXAMPLES=N runs every fuzz test with N examples (the default run keeps to a few minutes).
_WIDER = os.environ.get("FUZZ_EXAMPLES")
FUZZ = settings(max_examples=int(_WIDER or 60), deadline=None, suppress_health_check=list(HealthCheck))
SLOW_FUZZ = settings(max_examples=int(_WIDER or 15), deadline=None, suppress_health_check=list(HealthCheck))

# Any Unicode, lone surrogates and control characters included (JSON can spell all of them).
any_text = st.text(st.characters(codec=None, min_codepoint=0), max_size=40)
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | any_text,
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
                           max_leaves=12)
records = st.dictionaries(st.sampled_from(["_id", "id", "text", "title", "metadata", "other"]),
                          json_values | any_text, max_size=5)


def _line(record) -> bytes:
    return json.dumps(record).encode("utf-8")


def _read(tmp_path, data: bytes):
    path = tmp_path / "c.jsonl"
    path.write_bytes(data)
    try:
        return list(read_corpus(path))
    except InputError as exc:
        assert str(path) in str(exc)  # every refusal names the file
        return None








def _strict(tmp_path, data: bytes):
    path = tmp_path / "c.jsonl"
    path.write_bytes(data)
    return list(read_corpus(path))


@FUZZ
@given(data=st.binary(max_size=3000))
def test_arbitrary_bytes_are_read_or_refused_with_the_file_named(tmp_path, data):
    _read(tmp_path, data)


@FUZZ
@given(lines=st.lists(records, min_size=1, max_size=8))
def test_arbitrary_json_records_are_read_or_refused_with_their_line(tmp_path, lines):
    docs = _read(tmp_path, b"\n".join(_line(r) for r in lines) + b"\n")
    if docs is not None:
        assert len(docs) == len(lines) and len({d.id for d in docs}) == len(docs)
        for d in docs:  # what is accepted can be stored: valid UTF-8 everywhere
            (d.id + d.title + d.text + json.dumps(d.metadata, ensure_ascii=False)).encode("utf-8")


def test_deeply_nested_and_huge_lines(tmp_path):
    deep = b'{"_id": "d", "text": "x", "metadata": {"a": ' + b"[" * 100000 + b"]" * 100000 + b"}}"
    with pytest.raises(InputError, match=r"c\.jsonl:1: JSON nested too deeply"):
        _strict(tmp_path, deep)
    huge = _line({"_id": "h", "text": "word " * 2_000_000})  # a 10 MB line
    assert len(_strict(tmp_path, huge)[0].text) == 10_000_000


