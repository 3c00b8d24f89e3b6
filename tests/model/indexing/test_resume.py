"""Resumable builds: a build killed at any point and run again gives the index an uninterrupted build gives."""

from __future__ import annotations

import pytest

from retriever import Retriever, RetrieverError

from ...conftest import DEMO, write_jsonl
from ...tiny.indexing.test_resume import CHUNK, Crash, _crashing


def test_resuming_with_another_corpus_model_or_setting_is_refused(tmp_path, tiny_backbone, backbone):
    path = tmp_path / "idx"
    with pytest.raises(Crash):
        Retriever.build(_crashing(DEMO, 10), path, backbone=tiny_backbone, chunk_size=CHUNK)
    lines = DEMO.read_text().splitlines()
    edited = write_jsonl(tmp_path / "edited.jsonl", [lines[0], lines[2], lines[1], *lines[3:]])
    with pytest.raises(RetrieverError, match=r"corpus changed since the interrupted build: chunk 0"):
        Retriever.build(edited, path, backbone=tiny_backbone, chunk_size=CHUNK)
    shorter = write_jsonl(tmp_path / "short.jsonl", lines[:4])
    with pytest.raises(RetrieverError, match="it now ends in chunk 0, but 2 chunks were committed"):
        Retriever.build(shorter, path, backbone=tiny_backbone, chunk_size=CHUNK)
    with pytest.raises(RetrieverError, match="used another model"):
        Retriever.build(DEMO, path, backbone=backbone, chunk_size=CHUNK)
    with pytest.raises(RetrieverError, match="used another settings"):
        Retriever.build(DEMO, path, backbone=tiny_backbone, chunk_size=CHUNK, method="mean")
    with pytest.raises(RetrieverError, match="used another chunk_documents"):
        Retriever.build(DEMO, path, backbone=tiny_backbone, chunk_size=CHUNK + 1)
    assert not path.exists()
    fresh = Retriever.build(edited, path, backbone=tiny_backbone, chunk_size=CHUNK, restart=True)
    assert fresh.manifest["resumed_documents"] == 0 and fresh.manifest["documents"] == 37


