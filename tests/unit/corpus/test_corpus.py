"""Bad input is reported with its file, line and field, and nothing is silently dropped."""

from __future__ import annotations

import gzip
import json

import pytest

from retriever.corpus.documents import documents_from
from retriever.corpus.queries import read_qrels, read_queries
from retriever.corpus.readers import read_corpus
from retriever.errors import InputError

from ...conftest import write_jsonl

GOOD = {"_id": "a", "title": "T", "text": "x"}


def _error(path) -> InputError:
    with pytest.raises(InputError) as info:
        list(read_corpus(path))
    return info.value


@pytest.mark.parametrize("bad_line,line,field,words", [
    ('{"_id": "b", "text": ', 2, None, "malformed JSON"),
    ('{"text": "no id"}', 2, "_id", "missing document id"),
    ('{"_id": "b"}', 2, "text", "missing 'text'"),
    ('{"_id": "b", "text": 5}', 2, "text", "must be a string"),
    ('{"_id": "a", "text": "again"}', 2, "_id", "duplicate id 'a'"),
    ('["not", "an", "object"]', 2, None, "expected a JSON object"),
    ('{"_id": [1], "text": "x"}', 2, "_id", "id must be"),
    ('{"_id": "b", "text": "x", "metadata": 3}', 2, "metadata", "'metadata' must be an object"),
])
def test_bad_lines_name_file_line_and_field(tmp_path, bad_line, line, field, words):
    path = write_jsonl(tmp_path / "c.jsonl", [GOOD, bad_line, {"_id": "z", "text": "after"}])
    err = _error(path)
    assert (err.path, err.line, err.field) == (str(path), line, field)
    assert words in str(err) and f"{path}:{line}" in str(err)


def test_invalid_utf8_is_located(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_bytes(json.dumps(GOOD).encode() + b'\n{"_id": "b", "text": "caf\xe9"}\n')
    err = _error(path)
    assert err.line == 2 and "invalid UTF-8" in str(err)


def test_empty_corpus_and_missing_file(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    assert "empty corpus" in str(_error(empty))
    assert "file not found" in str(_error(tmp_path / "nope.jsonl"))


def test_gzip_corpus_and_ids_as_integers(tmp_path):
    path = tmp_path / "c.jsonl.gz"
    with gzip.open(path, "wt") as fh:
        fh.write(json.dumps({"_id": 7, "text": "seven", "metadata": {"k": [1, {"d": 2}]}}) + "\n")
        fh.write(json.dumps({"_id": "8", "title": "only a title", "text": ""}) + "\n")
    docs = list(read_corpus(path))
    assert [d.id for d in docs] == ["7", "8"]
    assert docs[0].metadata == {"k": [1, {"d": 2}]}
    assert docs[1].content == "only a title"


def test_truncated_gzip_is_an_input_error(tmp_path):
    path = tmp_path / "c.jsonl.gz"
    lines = "".join(json.dumps({"_id": str(i), "text": "x" * (1 + i % 50)}) + "\n" for i in range(2000))
    path.write_bytes(gzip.compress(lines.encode())[:-200])
    assert "cannot read" in str(_error(path))


def test_api_documents_are_validated_the_same_way():
    with pytest.raises(InputError, match="duplicate id 'a'"):
        list(documents_from([GOOD, GOOD]))
    with pytest.raises(InputError, match="missing 'text'"):
        list(documents_from([{"_id": "x"}]))


def test_queries_and_qrels(tmp_path):
    queries = write_jsonl(tmp_path / "q.jsonl", [{"_id": "1", "text": "what"}, {"_id": 2, "text": "why"}])
    assert read_queries(queries) == {"1": "what", "2": "why"}
    qrels = tmp_path / "test.tsv"
    qrels.write_text("query-id\tcorpus-id\tscore\n1\ta\t1\n1\tb\t2\n2\tc\t1\n")
    assert read_qrels(qrels) == {"1": {"a": 1, "b": 2}, "2": {"c": 1}}
    qrels.write_text("query-id\tcorpus-id\tscore\n1\ta\thigh\n")
    with pytest.raises(InputError, match=r"test.tsv:2.*score"):
        read_qrels(qrels)
    qrels.write_bytes(b"query-id\tcorpus-id\tscore\n1\ta\t1\n1\t\xff\xfe\t1\n")
    with pytest.raises(InputError, match=r"test.tsv:3.*invalid UTF-8"):
        read_qrels(qrels)
    qrels.write_text("query-id\tcorpus-id\tscore\r\n1\ta\t1\r\n\r\n2\tb\t0\r\n")  # CRLF and a blank line
    assert read_qrels(qrels) == {"1": {"a": 1}, "2": {"b": 0}}


def test_malformed_json_points_at_the_column_on_its_line(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"_id": "a", "text": "ok"}\n{"_id": "x", "text": \n')
    with pytest.raises(InputError, match=r"c\.jsonl:2: malformed JSON: Expecting value at column 22"):
        list(read_corpus(path))
