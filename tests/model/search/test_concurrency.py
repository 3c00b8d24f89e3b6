"""Threads sharing one loaded index of the default model get the serial results; VA's hooks are not mixed
across threads."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from retriever import Retriever

from ...conftest import DEMO

QUERIES = ["honey bees", "volcano eruption", "bicycle repair", "diabetes insulin", "the moon landing",
           "how do vaccines work", "ocean tides", "coffee and sleep", "solar panels", "ancient rome"]


def _hits(retriever, query, mode):
    return [(h.id, h.score, h.scores, tuple(t["token"] for t in h.tokens))
            for h in retriever.search(query, k=10, mode=mode)]


def test_eight_threads_get_the_serial_results(demo_index):
    """The real model: 8 threads x 20 searches, hybrid (every leg, explained) and lexical (no model)."""
    work = [(q, mode) for q in QUERIES for mode in ("hybrid", "lexical")]
    serial = [_hits(demo_index, q, mode) for q, mode in work]
    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(lambda item: _hits(demo_index, *item), work)) == serial


def test_va_hooks_are_not_mixed_across_threads(tmp_path, backbone):
    """VA captures values with forward hooks; overlapping passes would pool another batch's values."""
    r = Retriever.build(DEMO, tmp_path / "va", backbone=backbone, method="va", legs=("dense",))
    serial = [_hits(r, q, "dense") for q in QUERIES]
    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(lambda q: _hits(r, q, "dense"), QUERIES * 3)) == serial * 3


