"""Adding a leg is one module (tests/helpers/toy_leg.py) and one registry entry: nothing else in the engine changes.

The toy leg is built, searched alone and fused with the three engine legs, explained, verified, rewritten
by deletes and adds, and reloaded, all through the same loops that serve the engine's own legs.
"""

from __future__ import annotations

import pytest

from retriever import BadIndexError, Retriever, verify
from retriever.legs.registry import leg_names, register, unregister

from ...conftest import DEMO
from ...helpers.toy_leg import TitleLeg

WEIGHTS = {"dense": 0.1, "sparse": 0.1, "lexical": 0.4, "title": 0.4}


@pytest.fixture
def title_leg():
    register(TitleLeg)
    yield TitleLeg
    unregister("title")


@pytest.fixture
def index(title_leg, tmp_path, tiny_backbone):
    return Retriever.build(DEMO, tmp_path / "idx", backbone=tiny_backbone,
                           legs=("dense", "sparse", "lexical", "title"), weights=WEIGHTS)


def test_the_toy_leg_writes_its_files_and_is_searched_alone(index):
    assert index.searcher.legs == ("dense", "sparse", "lexical", "title")
    assert (index.path / "seg-000001" / "title_vocab.json").exists()
    assert index.manifest["segments"][0]["legs"]["title_vocab_size"] > 0
    assert "title" in index.modes
    hits = index.search("repairing my bicycle", k=3, mode="title")
    assert [h.id for h in hits] == ["bicycle"] and hits[0].scores == {"title": 2.0}  # "repairing", "bicycle"
    assert {t["token"] for t in hits[0].tokens} == {"repairing", "bicycle"}


def test_the_toy_leg_is_fused_with_the_engine_legs(index):
    hits = index.search("the game of chess", k=5)
    assert set(hits[0].scores) == {"dense", "sparse", "lexical", "title"}
    assert hits[0].id == "chess" and hits[0].scores["title"] == 4.0
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_verify_checks_the_toy_legs_files(index):
    report = verify(index.path)
    assert report["ok"], report
    title = next(c for c in report["checks"] if c["check"] == "title leg")
    assert title["ok"] and "title words" in title["detail"]
    vocabulary = index.path / "seg-000001" / "title_vocab.json"
    vocabulary.write_bytes(vocabulary.read_bytes()[:-2] + b"]]")  # same size, other content
    assert not verify(index.path)["ok"]


def test_deletes_and_adds_rewrite_the_toy_leg(index):
    index.delete(["bicycle"])
    assert index.search("bicycle tire", k=3, mode="title") == []
    index.add([{"_id": "zebra", "title": "Zebra crossings", "text": "Stripes on the road where people cross."}])
    assert [h.id for h in index.search("zebra", k=3, mode="title")] == ["zebra"]
    reloaded = Retriever.load(index.path, backbone=index.backbone)
    assert [(h.id, h.score) for h in reloaded.search("zebra crossings", k=5)] == \
        [(h.id, h.score) for h in index.search("zebra crossings", k=5)]


def test_an_index_whose_leg_is_not_registered_is_refused_by_name(index):
    unregister("title")
    assert "title" not in leg_names()
    with pytest.raises(BadIndexError, match="title"):
        Retriever.load(index.path, backbone=index.backbone)
    register(TitleLeg)
