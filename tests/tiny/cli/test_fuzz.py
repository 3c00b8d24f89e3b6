"""Property-based: any query (0 to 100,000 characters) is answered or refused, a damaged index loads or is
refused, and the CLI never prints a traceback for bad input."""

from __future__ import annotations

import contextlib
import shutil

import pytest
from click.testing import CliRunner
from hypothesis import example, given
from hypothesis import strategies as st

from retriever import InputError, Retriever, RetrieverError
from retriever.cli.main import main

from ...conftest import DEMO
from ...unit.corpus.test_fuzz import FUZZ, SLOW_FUZZ, _line, records


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


@pytest.mark.parametrize("length", [0, 1, 4000, 4001, 100_000])
def test_queries_of_0_to_100000_characters(tiny_index, length):
    query = ("bees make honey " * 7000)[:length]
    if length == 0:
        with pytest.raises(InputError, match="empty query"):
            tiny_index.search(query)
    elif length > 4000:  # the server's limit too
        with pytest.raises(InputError, match=f"{length:,} characters; the limit is 4,000"):
            tiny_index.search(query)
    else:
        assert tiny_index.search(query, k=3)


@SLOW_FUZZ
@given(file=st.sampled_from(["manifest.json", *(f"seg-000001/{name}" for name in (
           "documents.parquet", "dense.npy", "dense.faiss", "u1.npy", "sparse_rows_indptr.npy",
           "sparse_rows_indices.npy", "lexical_vocab.json", "lexical_tf_data.npy", "lexical_lengths.npy"))]),
       where=st.floats(0, 1), change=st.sampled_from(["flip", "truncate", "zero"]))
# nulls in the .npy header: numpy raises SyntaxError (CI)
@example(file="seg-000001/u1.npy", where=0.125, change="zero")
@example(file="seg-000001/dense.npy", where=0.1, change="flip")
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
