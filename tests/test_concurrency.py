"""Concurrent search: threads sharing one loaded index, processes sharing one index on disk during a build."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from retriever import Retriever

from .conftest import DEMO, write_jsonl

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


def test_two_processes_search_while_a_third_builds(tmp_path, tiny_backbone, tiny_model):
    index = Retriever.build(DEMO, tmp_path / "idx", backbone=tiny_backbone)
    expected = [[h.id for h in hits] for hits in index.search_batch(QUERIES, k=5)]
    corpus = write_jsonl(tmp_path / "big.jsonl", [{"_id": str(i), "text": f"entry {i} on subject {i % 31} " * 12}
                                                   for i in range(3000)])
    cli = [sys.executable, "-m", "retriever.cli"]
    builder = subprocess.Popen([*cli, "index", str(corpus), "--model", str(tiny_model), "--index",
                                str(tmp_path / "other"), "--quiet"], stderr=subprocess.PIPE, text=True)
    searchers = [subprocess.Popen([*cli, "search", *QUERIES, "--index", str(tmp_path / "idx"), "-k", "5", "--json"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for proc in searchers:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        assert [[h["id"] for h in r["hits"]] for r in json.loads(out)] == expected
    _, err = builder.communicate(timeout=600)
    assert builder.returncode == 0, err
    assert Retriever.load(tmp_path / "other", backbone=tiny_backbone).manifest["documents"] == 3000
