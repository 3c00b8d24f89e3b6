"""Indexes written by the code before the legs owned their files (tests/fixtures/make_v1.py, commit a6961d0),
and what they returned then: today's code must load them and return the same documents with the same
scores. (Explanations were recorded too, but they now read as the query's words rather than token pieces
and stems, a deliberate change: only their presence is compared.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from retriever import Retriever

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def assert_same_results(name: str) -> None:
    recorded = json.loads((FIXTURES / "v1-results.json").read_text())
    retriever = Retriever.load(FIXTURES / name)
    want = recorded["results"][name]
    assert retriever.modes == tuple(want)
    for mode, per_query in want.items():
        for query, hits in zip(recorded["queries"], per_query, strict=True):
            got = [hit.to_dict() for hit in retriever.search(query, k=5, mode=mode)]
            assert [h["id"] for h in got] == [h["id"] for h in hits], (mode, query)
            for g, w in zip(got, hits, strict=True):  # fp32 on another CPU may differ in the last bits
                assert g["score"] == pytest.approx(w["score"], rel=1e-5, abs=1e-6), (mode, query, g["id"])
                assert g["scores"] == pytest.approx(w["scores"], rel=1e-5, abs=1e-6)
                assert {"title": g["title"], "snippet": g["snippet"]} == {"title": w["title"], "snippet": w["snippet"]}
                assert bool(g["tokens"]) == bool(w["tokens"])  # how they read changed on purpose
