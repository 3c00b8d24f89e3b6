"""Indexes written by earlier code, and what they returned then: today's code must load them and return the
same documents with the same scores. v1-*: before the legs owned their files (tests/fixtures/make_v1.py,
commit a6961d0); their explanations were recorded too, but now read as the query's words rather than
token pieces and stems, a deliberate change, so only their presence is compared. v2-default: before the
house-by-role refactor (make_v2.py, commit 7297ef5), compared whole, explanations included but for hybrid
mode's: since issue 29 they come from every leg that explains, not the key-token leg alone, and name
only words the document has."""

from __future__ import annotations

import json
import re
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
                if mode == "hybrid":  # since issue 29 a fused hit's words come from every leg that explains
                    assert bool(g["tokens"]) or not w["tokens"]
                elif name.startswith("v1-"):
                    assert bool(g["tokens"]) == bool(w["tokens"])  # how they read changed on purpose
                else:
                    _assert_same_words(g, w, retriever.document(g["id"]), (mode, query, g["id"]))


def _assert_same_words(got: dict, want: dict, document: dict, where: tuple) -> None:
    """The same contributions; since issue 29 a query word the document lacks (a sub-word piece shared with
    another word) reads as the shared token itself, so only the words the document has must stay."""
    assert sum(t["weight"] for t in got["tokens"]) == pytest.approx(sum(t["weight"] for t in want["tokens"]),
                                                                    rel=1e-4), where
    text = f"{document['title']} {document['text']}".lower()
    kept = {t["token"] for t in want["tokens"] if re.search(rf"(?<!\w){re.escape(t['token'].lower())}(?!\w)", text)}
    assert kept <= {t["token"] for t in got["tokens"]}, where
