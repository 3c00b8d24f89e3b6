"""Micro-batched search (batching.py) returns exactly what a direct search does, in the tier's dtype; and the
encoder's batch cuts (Encoder.batches) are the cheapest ones."""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor

import pytest

from retriever import Retriever
from retriever.models.encoders import Encoder, make_method
from retriever.models.invariance import padded_width
from retriever.search.batching import query_batcher

from ...conftest import DEMO
from ...model.search.test_concurrency import QUERIES


def _hits(retriever, query, mode, filter=None):
    return [h.to_dict() for h in retriever.search(query, k=8, mode=mode, filter=filter)]


@pytest.fixture(scope="module")
def pair(tmp_path_factory, tiny_backbone):
    """The same index twice: searched directly, and through a micro-batcher."""
    path = tmp_path_factory.mktemp("batching") / "demo"
    direct = Retriever.build(DEMO, path, backbone=tiny_backbone)
    batched = Retriever.load(path, backbone=tiny_backbone)
    batcher = query_batcher(wait_ms=20, max_texts=64)
    batched.batch_requests(batcher)
    yield direct, batched, batcher
    batcher.close()


def test_concurrent_batched_searches_equal_direct_ones_in_every_mode(pair):
    direct, batched, batcher = pair
    work = [(q, mode) for q in QUERIES for mode in direct.modes]
    expected = [_hits(direct, q, mode) for q, mode in work]
    before = batcher.stats()
    with ThreadPoolExecutor(16) as pool:
        got = list(pool.map(lambda item: _hits(batched, *item), work))
    assert got == expected  # exact: ids, every leg's score, explanations
    after = batcher.stats()
    assert after["texts"] - before["texts"] > after["batches"] - before["batches"]  # passes were shared


def test_batched_search_with_a_filter_and_after_an_add(pair, tiny_backbone):
    direct, batched, _ = pair
    flt = {"topic": {"in": ["bees", "volcano"]}}
    assert _hits(batched, "honey and lava", "hybrid", flt) == _hits(direct, "honey and lava", "hybrid", flt)
    batched.add([{"_id": "new-bees", "text": "A new note on honey bees and their hives."}])
    direct = Retriever.load(batched.path, backbone=tiny_backbone)
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda q: _hits(batched, q, "hybrid"), QUERIES))
    assert got == [_hits(direct, q, "hybrid") for q in QUERIES]
    assert "new-bees" in {h["id"] for h in _hits(batched, "honey bees hives", "hybrid")}


def _cost(encoder, widths, groups):
    return sum(encoder.pass_tokens + len(g) * padded_width(len(g), max(widths[i] for i in g)) for g in groups)


def test_batch_cuts_cost_least_of_every_contiguous_cut(tiny_backbone):
    encoder = Encoder(tiny_backbone, make_method("prompteol"), batch_tokens=400, max_batch=6)
    lengths = [31, 12, 45, 18, 19, 60, 14, 33, 17, 16, 52, 20]
    groups = encoder.batches(lengths)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    best = None
    for cuts in itertools.product([False, True], repeat=len(order) - 1):  # every split of the sorted texts
        split, current = [], [order[0]]
        for i, cut in zip(order[1:], cuts, strict=True):
            if cut:
                split.append(current)
                current = []
            current.append(i)
        split.append(current)
        if all(len(g) <= 6 and (len(g) == 1 or len(g) * lengths[g[0]] <= 400) for g in split):
            cost = _cost(encoder, lengths, split)
            best = cost if best is None else min(best, cost)
    assert _cost(encoder, lengths, groups) == best
    for g in groups:
        assert len(g) <= 6 and (len(g) == 1 or len(g) * max(lengths[i] for i in g) <= 400)
