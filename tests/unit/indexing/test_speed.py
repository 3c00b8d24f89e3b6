"""Speed choices of the build that must not change a result: the read-ahead worker keeps errors in place,
FAISS moves to GPUs only when it has them, auto picks CUDA only when torch sees it."""

from __future__ import annotations

import threading

import faiss
import numpy as np
import pytest
import torch

from retriever.errors import InputError
from retriever.indexing.indexer import _read_ahead
from retriever.legs.dense.leg import on_gpus
from retriever.models import backbones


def test_read_ahead_prepares_the_next_chunk_in_a_worker_and_keeps_errors_in_place():
    threads, main = [], threading.current_thread().name

    def chunks():
        yield ["a", "b"]
        yield ["c"]
        raise InputError("bad line", "corpus.jsonl", 4)

    def prepare(number, chunk):
        threads.append(threading.current_thread().name)
        return f"{number}:{''.join(chunk)}"

    got = []
    with pytest.raises(InputError, match="bad line"):
        for item in _read_ahead(chunks(), prepare):
            got.append(item)
    assert got == [(0, ["a", "b"], "0:ab"), (1, ["c"], "1:c")]  # both chunks before the error, in order
    assert threads and main not in threads


def test_flat_indexes_move_to_gpus_when_faiss_has_them(monkeypatch):
    vectors = np.eye(4, dtype=np.float32)
    flat, hnsw = faiss.IndexFlatIP(4), faiss.IndexHNSWFlat(4, 8, faiss.METRIC_INNER_PRODUCT)
    flat.add(vectors)
    hnsw.add(vectors)
    assert on_gpus(flat) is flat  # faiss-cpu: nothing moves
    moved = []
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 2, raising=False)
    monkeypatch.setattr(faiss, "index_cpu_to_all_gpus", lambda index: moved.append(index) or "gpu", raising=False)
    assert on_gpus(flat) == "gpu" and moved == [flat]
    assert on_gpus(hnsw) is hnsw  # FAISS has no GPU HNSW


def test_auto_device_is_cuda_only_when_torch_sees_it(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert backbones.pick_device().type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert backbones.pick_device().type == "cuda"


