"""Indexes written by earlier code, and what they returned then: today's code must load them and return the
same documents with the same scores. v1-*: before the legs owned their files (tests/fixtures/make_v1.py,
commit a6961d0); their explanations were recorded too, but now read as the query's words rather than
token pieces and stems, a deliberate change, so only their presence is compared. v2-default: before the
house-by-role refactor (make_v2.py, commit 7297ef5), compared whole, explanations included."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from retriever import Retriever

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def assert_same_results(name: str, **load) -> None:
    recorded = json.loads((FIXTURES / f"{name.split('-')[0]}-results.json").read_text())
    retriever = Retriever.load(FIXTURES / name, **load)
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
                if name.startswith("v1-"):
                    assert bool(g["tokens"]) == bool(w["tokens"])  # how they read changed on purpose
                else:
                    assert g["tokens"] == w["tokens"], (mode, query, g["id"])
