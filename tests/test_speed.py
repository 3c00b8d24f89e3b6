"""Performance choices must not change a number: weight layout, stage timing, device choice."""

from __future__ import annotations

import copy
import threading

import faiss
import numpy as np
import pytest
import torch

from retriever import backbones
from retriever.dense import on_gpus
from retriever.errors import InputError
from retriever.indexer import _read_ahead


def test_transposed_weight_layout_keeps_every_output(tiny_backbone):
    linears = [m for m in tiny_backbone.layers.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(m.weight.t().is_contiguous() and not m.weight.is_contiguous() for m in linears)
    plain = copy.deepcopy(tiny_backbone.model)
    for module in plain.get_decoder().layers.modules():
        if isinstance(module, torch.nn.Linear):
            module.weight = torch.nn.Parameter(module.weight.contiguous(), requires_grad=False)
    ids = torch.tensor([[5, 17, 300, 42, 7, 99]])
    with torch.inference_mode():
        got = tiny_backbone.model(input_ids=ids).logits
        want = plain(input_ids=ids).logits
    assert torch.allclose(got, want, atol=1e-5)


def test_build_records_where_its_time_went(demo_index):
    manifest = demo_index.manifest
    stages = manifest["stage_seconds"]
    assert {"read", "tokenize", "forward", "commit", "project", "write", "lexical"} <= set(stages)
    assert all(s >= 0 for s in stages.values())
    assert stages["forward"] > 0 and stages["forward"] == max(stages.values())  # the model dominates
    on_main_thread = ("forward", "commit", "project", "write", "lexical")  # read, tokenize: read-ahead thread
    assert sum(stages[s] for s in on_main_thread) <= manifest["build_seconds"]


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


def test_weight_layout_never_writes_into_storage_shared_with_other_tensors(tiny_backbone):
    model = copy.deepcopy(tiny_backbone.model)
    linear = next(m for m in model.get_decoder().layers.modules() if isinstance(m, torch.nn.Linear))
    values = torch.randn(linear.weight.shape)
    shared = torch.cat([values.flatten(), torch.arange(10.0)])  # the weight and a neighbour in one storage
    linear.weight = torch.nn.Parameter(shared[: values.numel()].view(values.shape), requires_grad=False)
    backbones.store_weights_transposed(model)
    assert torch.equal(shared[: values.numel()], values.flatten()) and torch.equal(shared[-10:], torch.arange(10.0))
    assert torch.equal(linear.weight, values) and linear.weight.t().is_contiguous()
