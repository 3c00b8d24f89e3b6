"""Indexing on Ray without a cluster or a model: the options and the corpus are refused before anything
starts, and Ray Data's read tasks (CorpusSource) read exactly the documents a single-process build reads,
in order, however the file is cut into byte ranges. The builds themselves: tests/tiny/indexing/test_ray.py."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

import retriever.corpus.readers as readers
from retriever.cli.main import main
from retriever.corpus.documents import Fields
from retriever.corpus.readers import read_corpus
from retriever.errors import RetrieverError
from retriever.indexing.ray import CorpusSource, RayOptions

RECORDS = [{"_id": "a", "title": "First", "text": "plain"},
           {"_id": 2, "text": "a numeric id, a line\u2028separator and a next-line\x85character"},
           {"id": "c", "contents": "Pyserini's field", "metadata": {"topic": "x", "n": [1, 2]}},
           {"_id": "d", "text": "ünïcödé ✓ and a long tail " + "word " * 40},
           {"_id": "e", "title": "Only a title"}]


def _lines(records=RECORDS) -> bytes:
    """JSON lines as people write them: a BOM, a blank line, CRLF endings, raw non-ASCII."""
    lines = [json.dumps(r, ensure_ascii=False) for r in records]
    return ("\ufeff" + lines[0] + "\n\n" + "\r\n".join(lines[1:]) + "\n   \n").encode()


def _read(source: CorpusSource) -> list:
    return [row for task in source.get_read_tasks(1) for block in task() for row in block.to_pylist()]


def _stored(path, fields=None) -> list:
    from retriever.index.store import documents_table

    return documents_table(list(read_corpus(path, fields))).to_pylist()


@settings(max_examples=40, deadline=None)
@given(split=st.integers(1, 400))
def test_byte_ranges_read_every_document_once_in_order(tmp_path_factory, split):
    path = tmp_path_factory.mktemp("ranges") / "corpus.jsonl"
    path.write_bytes(_lines())
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(readers, "SPLIT_BYTES", split)
        source = CorpusSource(str(path), Fields())
        assert len(source.get_read_tasks(1)) == -(-path.stat().st_size // split)
        assert _read(source) == _stored(path)


def test_gzip_is_one_task_and_parquet_one_per_row_group(tmp_path):
    gz = tmp_path / "corpus.jsonl.gz"
    gz.write_bytes(gzip.compress(_lines()))
    assert len(CorpusSource(str(gz), Fields()).get_read_tasks(1)) == 1
    assert _read(CorpusSource(str(gz), Fields())) == _stored(gz)
    table = pa.table({"doc": ["x", "y", "z", "w", "v"], "body": ["one", "two", "three", "four", "five"],
                      "topic": ["t1", None, "t3", "", "t5"]})
    parquet = tmp_path / "corpus.parquet"
    pq.write_table(table, parquet, row_group_size=2)
    fields = Fields(id="doc", text="body")
    assert len(CorpusSource(str(parquet), fields).get_read_tasks(1)) == 3
    assert _read(CorpusSource(str(parquet), fields)) == _stored(parquet, fields)


def test_ray_options_and_corpora_are_refused_before_anything_starts(tmp_path):
    csv = tmp_path / "corpus.csv"
    csv.write_text("id,text\n1,hello\n")
    got = CliRunner().invoke(main, ["index", str(csv), "--index", str(tmp_path / "i"), "--ray"])
    assert got.exit_code != 0 and "--ray reads JSONL or Parquet, not csv" in got.output and str(csv) in got.output
    got = CliRunner().invoke(main, ["index", str(csv), "--index", str(tmp_path / "i"), "--workers", "2"])
    assert got.exit_code == 2 and "--workers and --gpus-per-worker need --ray" in got.output
    assert not (tmp_path / "i").exists()
    for bad in ({"workers": 0}, {"threads": 0}, {"batch_size": 0}, {"gpus_per_worker": -1}):
        with pytest.raises(RetrieverError):
            RayOptions(**bad)
    assert RayOptions(gpus_per_worker=0.5).device == "cuda" and RayOptions().device == "cpu"


def test_the_restart_notice_is_dropped_from_stderr_and_everything_else_kept(tmp_path):
    """Ray's C++ core writes to file descriptor 2 itself, and so do the processes a local cluster starts:
    the filter works below Python, for this process and its children, and keeps a progress bar's \\r."""
    script = tmp_path / "child.py"
    script.write_text(
        "import os, subprocess, sys\n"
        "from retriever.indexing.ray import RESTART_NOTICE, without_lines\n"
        "with without_lines(RESTART_NOTICE):\n"
        "    os.write(2, b'kept 1\\n[E core_worker.cc] Actor has constructor arguments in the object store.\\n')\n"
        "    os.write(2, b'bar 1\\rbar 2\\r')\n"
        "    subprocess.run(['sh', '-c', 'echo has constructor arguments in the object store >&2; echo child >&2'])\n"
        "    print('from python', file=sys.stderr)\n"
        "print('after', file=sys.stderr)\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr.decode() == "kept 1\nbar 1\rbar 2\rchild\nfrom python\nafter\n"
