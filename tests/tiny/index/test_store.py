"""The on-disk index: model checks, interrupted builds, damaged files, missing indexes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from retriever import BadIndexError, InputError, Retriever, RetrieverError

from ...conftest import DEMO, write_jsonl


def _ids(retriever, query="honey bees"):
    return [(h.id, round(h.score, 6)) for h in retriever.search(query, k=5, explain=False)]




def test_interrupted_build_keeps_the_old_index(tmp_path, tiny_backbone, monkeypatch):
    path = tmp_path / "idx"
    before = _ids(Retriever.build(DEMO, path, backbone=tiny_backbone))
    manifest_before = (path / "manifest.json").read_text()

    from retriever.models.encoders import Encoder

    def interrupted(self, texts, on_batch=None):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(Encoder, "encode", interrupted)
        with pytest.raises(KeyboardInterrupt):
            Retriever.build(DEMO, path, backbone=tiny_backbone, overwrite=True)
    assert (path / "manifest.json").read_text() == manifest_before
    assert _ids(Retriever.load(path, backbone=tiny_backbone)) == before
    assert not list(tmp_path.glob(".idx.tmp-*"))  # no half-assembled index left behind


def test_killed_build_keeps_the_old_index(tmp_path, tiny_backbone, tiny_model):
    """SIGKILL mid-build: the old index is untouched and the next build sweeps the leftover folder."""
    path = tmp_path / "idx"
    before = _ids(Retriever.build(DEMO, path, backbone=tiny_backbone))
    big = write_jsonl(tmp_path / "big.jsonl",
                      [{"_id": str(i), "text": f"document number {i} about topic {i % 97} " * 20}
                       for i in range(30000)])
    code = ("from retriever import Retriever\n"
            f"Retriever.build({str(big)!r}, {str(path)!r}, model={str(tiny_model)!r}, dtype='float32', "
            "overwrite=True, dense_model=None)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ})
    deadline = time.time() + 120
    while not list(tmp_path.glob(".idx.partial/chunk-*")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the build finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert _ids(Retriever.load(path, backbone=tiny_backbone)) == before
    with pytest.raises(RetrieverError, match="the corpus changed since the interrupted build"):
        Retriever.build(DEMO, path, backbone=tiny_backbone, overwrite=True)
    assert _ids(Retriever.build(DEMO, path, backbone=tiny_backbone, restart=True, overwrite=True)) == before
    assert not list(tmp_path.glob(".idx.*"))


def test_damaged_and_missing_indexes_are_clear_errors(tmp_path, tiny_backbone):
    path = tmp_path / "idx"
    Retriever.build(DEMO, path, backbone=tiny_backbone)
    with pytest.raises(BadIndexError, match="no index at"):
        Retriever.load(tmp_path / "nope", backbone=tiny_backbone)
    vectors = path / "seg-000001" / "dense.npy"
    vectors.write_bytes(vectors.read_bytes()[:-100])
    with pytest.raises(BadIndexError, match=r"dense\.npy: expected"):
        Retriever.load(path, backbone=tiny_backbone)
    (path / "manifest.json").unlink()
    with pytest.raises(BadIndexError, match=r"manifest\.json is missing"):
        Retriever.load(path, backbone=tiny_backbone)




def test_single_leg_index_and_hnsw(tmp_path, tiny_backbone):
    dense_only = Retriever.build(DEMO, tmp_path / "d", backbone=tiny_backbone, legs=("dense",),
                                 dense={"kind": "hnsw"})
    assert dense_only.search("bees", k=3, mode="dense")
    assert set(dense_only.search("bees", k=3)[0].scores) == {"dense"}
    from retriever import RetrieverError

    with pytest.raises(RetrieverError, match="without the sparse leg"):
        dense_only.search("bees", mode="sparse")


def test_sigterm_during_cli_build_stops_cleanly_and_keeps_work(tmp_path, tiny_model):
    big = write_jsonl(tmp_path / "big.jsonl",
                      [{"_id": str(i), "text": f"document number {i} about topic {i % 97} " * 20}
                       for i in range(30000)])
    cli = [sys.executable, "-m", "retriever.cli", "index", str(big), "--model", str(tiny_model),
           "--index", str(tmp_path / "idx"), "--quiet", "--dense-model", "none"]
    proc = subprocess.Popen(cli, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not list(tmp_path.glob(".idx.partial/chunk-*")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in err and "resumes" in err and "Traceback" not in err
    assert "documents are committed" in err
    assert not (tmp_path / "idx").exists() and not list(tmp_path.glob(".idx.tmp-*"))
    assert list(tmp_path.glob(".idx.partial/chunk-000000/chunk.json"))  # the work is kept for resuming


def test_documents_without_text_or_title_are_refused_not_ranked(tmp_path, tiny_backbone):
    """Issue 29: an empty document used to be indexed, and then ranked by its empty vector (2nd for a
    query it shares nothing with); now it is refused like any other bad record (tests/unit/cli/
    test_refusals.py covers every path), and nothing is written."""
    corpus = write_jsonl(tmp_path / "c.jsonl", [{"_id": "a", "text": "bees and honey"},
                                                {"_id": "blank", "title": "", "text": "  "}])
    with pytest.raises(InputError, match=r"c\.jsonl:2: empty document"):
        Retriever.build(corpus, tmp_path / "idx", backbone=tiny_backbone)
    assert not (tmp_path / "idx").exists()
