"""Property-based tests: whatever the input, the engine works or raises its own error, and the CLI never
prints a traceback for a user's mistake."""

from __future__ import annotations

import contextlib
import json
import os
import shutil

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from retriever import InputError, Retriever, RetrieverError
from retriever.cli import main
from retriever.corpus import read_corpus

from .conftest import DEMO

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


def _strict(tmp_path, data: bytes):
    path = tmp_path / "c.jsonl"
    path.write_bytes(data)
    return list(read_corpus(path))


@pytest.fixture(scope="module")
def tiny_index(tmp_path_factory, tiny_backbone):
    return Retriever.build(DEMO, tmp_path_factory.mktemp("fuzz") / "idx", backbone=tiny_backbone)


@FUZZ
@given(query=st.text(st.characters(codec=None, min_codepoint=0), max_size=300))
def test_any_query_is_answered_or_refused(tiny_index, query):
    try:
        hits = tiny_index.search(query, k=5)
    except InputError:
        assert not query.strip() or not _encodable(query)
        return
    assert len(hits) <= 5 and all(isinstance(h.id, str) for h in hits)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


@pytest.mark.parametrize("length", [0, 1, 100_000])
def test_queries_of_0_to_100000_characters(tiny_index, length):
    query = ("bees make honey " * 7000)[:length]
    if length == 0:
        with pytest.raises(InputError, match="empty query"):
            tiny_index.search(query)
    else:
        assert tiny_index.search(query, k=3)


@SLOW_FUZZ
@given(file=st.sampled_from(["manifest.json", "documents.parquet", "dense.npy", "dense.faiss", "u1.npy",
                             "sparse_rows_indptr.npy", "sparse_postings_indices.npy", "lexical_vocab.json",
                             "lexical_postings_data.npy"]),
       where=st.floats(0, 1), change=st.sampled_from(["flip", "truncate", "zero"]))
@example(file="u1.npy", where=0.125, change="zero")  # nulls in the .npy header: numpy raises SyntaxError (CI)
@example(file="dense.npy", where=0.1, change="flip")
def test_a_damaged_index_loads_and_answers_or_is_refused(tiny_index, tiny_backbone, tmp_path_factory, file, where,
                                                          change):
    folder = tmp_path_factory.mktemp("damaged") / "idx"
    shutil.copytree(tiny_index.path, folder)
    data = bytearray((folder / file).read_bytes())
    at = min(int(where * len(data)), len(data) - 1)
    if change == "flip":
        data[at] ^= 0xFF
    elif change == "truncate":
        data = data[:at]
    else:
        data[at:at + 64] = bytes(len(data[at:at + 64]))
    (folder / file).write_bytes(bytes(data))
    with contextlib.suppress(RetrieverError):  # any other exception fails the test
        Retriever.load(folder, backbone=tiny_backbone).search("honey bees", k=5)


@SLOW_FUZZ
@given(lines=st.lists(records | st.sampled_from([{"_id": "a", "text": "bees"}, {"_id": "a", "text": "honey"}]),
                      min_size=1, max_size=5),
       garbage=st.binary(max_size=40))
def test_the_cli_never_prints_a_traceback_for_bad_input(tmp_path_factory, tiny_model, lines, garbage):
    folder = tmp_path_factory.mktemp("cli")
    corpus = folder / "c.jsonl"
    corpus.write_bytes(b"\n".join(_line(r) for r in lines) + b"\n" + garbage)
    result = CliRunner().invoke(main, ["index", str(corpus), "--model", str(tiny_model), "--index",
                                       str(folder / "idx"), "--quiet"])
    assert result.exit_code in (0, 1), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    if result.exit_code == 1:
        assert result.output.startswith("Error: ") and str(corpus) in result.output
