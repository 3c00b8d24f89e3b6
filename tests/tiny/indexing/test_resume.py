"""Resumable builds: a build killed at any point and run again gives the index an uninterrupted build gives."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from retriever import Retriever, RetrieverError
from retriever.corpus.readers import read_corpus

from ...conftest import DEMO, write_jsonl

CHUNK = 4  # the demo corpus's 37 documents make 10 chunks
ARRAYS = ("dense", "u1", "sparse_rows_data", "sparse_rows_indices", "sparse_rows_indptr", "lexical_tf_data",
          "lexical_tf_indices", "lexical_lengths")
SEG = "seg-000001"  # a build writes one segment


class Crash(Exception):
    """Stands in for a kill: raised from inside the build, after some documents were read."""


def _crashing(path, after: int):
    for i, doc in enumerate(read_corpus(path)):
        if i == after:
            raise Crash
        yield doc


def _results(retriever, queries=("honey bees", "volcano eruption", "bicycle repair")) -> list:
    return [[(h.id, round(h.score, 5)) for h in retriever.search(q, k=8, explain=False)] for q in queries]


def _same_index(a, b) -> None:
    for name in ARRAYS:
        np.testing.assert_array_equal(np.load(a / SEG / f"{name}.npy"), np.load(b / SEG / f"{name}.npy"), err_msg=name)
    assert (a / SEG / "documents.parquet").read_bytes() == (b / SEG / "documents.parquet").read_bytes()


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tiny_backbone):
    path = tmp_path_factory.mktemp("whole") / "idx"
    return Retriever.build(DEMO, path, backbone=tiny_backbone, chunk_size=CHUNK)


@pytest.mark.parametrize("kill_after", [0, 3, 4, 5, 17, 36])
def test_a_build_crashed_anywhere_resumes_to_the_same_index(tmp_path, tiny_backbone, uninterrupted, kill_after):
    path = tmp_path / "idx"
    with pytest.raises(Crash):
        Retriever.build(_crashing(DEMO, kill_after), path, backbone=tiny_backbone, chunk_size=CHUNK)
    assert not path.exists()
    committed = sorted((tmp_path / ".idx.partial").glob("chunk-*"))
    assert len(committed) == kill_after // CHUNK
    resumed = Retriever.build(DEMO, path, backbone=tiny_backbone, chunk_size=CHUNK)
    assert resumed.manifest["resumed_documents"] == kill_after // CHUNK * CHUNK
    _same_index(path, uninterrupted.path)
    assert _results(resumed) == _results(uninterrupted)
    assert not list(tmp_path.glob(".idx.*"))  # the work folder goes once the index is in place


def test_a_crash_while_assembling_resumes_from_every_chunk(tmp_path, tiny_backbone, uninterrupted, monkeypatch):
    from retriever.index.store import IndexWriter

    path = tmp_path / "idx"
    with monkeypatch.context() as patch:
        patch.setattr(IndexWriter, "commit", lambda self, manifest: (_ for _ in ()).throw(Crash()))
        with pytest.raises(Crash):
            Retriever.build(DEMO, path, backbone=tiny_backbone, chunk_size=CHUNK)
    resumed = Retriever.build(DEMO, path, backbone=tiny_backbone, chunk_size=CHUNK)
    assert resumed.manifest["resumed_documents"] == 37
    _same_index(path, uninterrupted.path)




def test_a_corpus_error_keeps_the_chunks_before_it(tmp_path, tiny_backbone, uninterrupted):
    """A malformed line half-way loses nothing: fixed and run again, the build resumes before it. (A corpus
    file is read through before the model loads, so the error is met mid-build by a stream of documents.)"""
    lines = DEMO.read_text().splitlines()
    broken = write_jsonl(tmp_path / "c.jsonl", [*lines[:30], '{"_id": "x", "text": ', *lines[30:]])
    path = tmp_path / "idx"
    with pytest.raises(RetrieverError, match=r"c\.jsonl:31: malformed JSON"):
        Retriever.build(read_corpus(broken), path, backbone=tiny_backbone, chunk_size=CHUNK)
    write_jsonl(broken, lines)
    resumed = Retriever.build(broken, path, backbone=tiny_backbone, chunk_size=CHUNK)
    assert resumed.manifest["resumed_documents"] == 28
    _same_index(path, uninterrupted.path)


def test_sigkilled_cli_builds_resume_to_the_same_results(tmp_path, tiny_model):
    """Real SIGKILLs at three moments of one build, each followed by the same command."""
    corpus = write_jsonl(tmp_path / "c.jsonl", [{"_id": f"d{i}", "text": f"note {i} on topic {i % 13} " * (i % 7 + 1)}
                                                for i in range(400)])
    base = [sys.executable, "-m", "retriever.cli", "index", str(corpus), "--model", str(tiny_model),
            "--chunk-size", "20", "--quiet", "--dense-model", "none"]
    whole = subprocess.run([*base, "--index", str(tmp_path / "whole")], capture_output=True, text=True)
    assert whole.returncode == 0, whole.stderr
    target = tmp_path / "idx"
    kills = 0
    for wanted in (1, 6, 14):  # kill once this many chunks are committed
        proc = subprocess.Popen([*base, "--index", str(target)], stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while len(list(tmp_path.glob(".idx.partial/chunk-*"))) < wanted and proc.poll() is None \
                and time.time() < deadline:
            time.sleep(0.01)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills >= 2, "the build ran too fast to be killed"
    done = subprocess.run([*base, "--index", str(target), "--json"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    _same_index(target, tmp_path / "whole")


def test_a_full_disk_is_one_clear_error_and_loses_nothing(tmp_path, tiny_backbone, tiny_model, monkeypatch):
    """ENOSPC while chunks are committed and while the index is assembled: the old index stays, the work
    stays, and the same command finishes once there is space."""
    import errno

    from click.testing import CliRunner

    from retriever.cli.main import main

    path = tmp_path / "idx"
    before = _results(Retriever.build(DEMO, path, backbone=tiny_backbone))
    real_save, calls = np.save, {"n": 0}

    def full_disk_after(limit):
        def save(file, *args, **kwargs):
            calls["n"] += 1
            if calls["n"] > limit:
                raise OSError(errno.ENOSPC, "No space left on device", str(file))
            return real_save(file, *args, **kwargs)
        return save

    command = ["index", str(DEMO), "--index", str(path), "--model", str(tiny_model), "--chunk-size", str(CHUNK),
               "--quiet", "--overwrite"]
    for limit in (6, 20):  # 3 chunks committed; then every chunk committed and the assembly under way
        calls["n"] = 0
        monkeypatch.setattr(np, "save", full_disk_after(limit))
        result = CliRunner().invoke(main, command)
        monkeypatch.setattr(np, "save", real_save)
        assert result.exit_code == 1 and "No space left on device; free some space" in result.output
        assert "Traceback" not in result.output
        assert _results(Retriever.load(path, backbone=tiny_backbone)) == before
        assert not list(tmp_path.glob(".idx.tmp-*"))
    assert len(list(tmp_path.glob(".idx.partial/chunk-*"))) == 10
    done = CliRunner().invoke(main, [*command, "--json"])
    assert done.exit_code == 0 and json.loads(done.output)["resumed_documents"] == 37


def test_a_second_writer_of_the_same_index_is_refused(tmp_path, tiny_backbone):
    from retriever import StorageError
    from retriever.index.store import exclusive
    from retriever.indexing.updates import update_index

    path = tmp_path / "idx"
    Retriever.build(DEMO, path, backbone=tiny_backbone)
    with exclusive(path):
        with pytest.raises(StorageError, match="another build or update of this index is running"):
            Retriever.build(DEMO, path, backbone=tiny_backbone, overwrite=True)
        with pytest.raises(StorageError, match="another build or update"):
            update_index(path, delete=["bees"])
        Retriever.build(DEMO, tmp_path / "other", backbone=tiny_backbone)  # another name is not blocked
    assert not list(tmp_path.glob(".idx.*"))
    assert Retriever.load(path, backbone=tiny_backbone).manifest["documents"] == 37
