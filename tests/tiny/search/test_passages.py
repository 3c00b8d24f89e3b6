"""An index of passages with the model legs (the tiny LLM's dense vectors and key tokens): passages are cut
by the LLM's own tokens, every leg indexes them, and each single-leg mode scores a document by its best
passage exactly as an index of the same passages as separate documents does, grouped by hand; a text past
--max-tokens that the whole-document index cut off is found; an add embeds new passages as a build does."""

from __future__ import annotations

import pytest

from retriever import Retriever
from retriever.api import verify

from ...conftest import TEST_DTYPE

WINDOW = 48
FILLER = ("The committee reviewed the annual budget and the schedule of the regional offices in detail. "
          "Several members asked about staffing levels, travel costs and the printing of reports. ")


def _docs() -> list[dict]:
    topics = ["honey bees pollinate flowers", "volcanic eruptions of molten lava", "insulin and blood glucose",
              "repairing a bicycle chain", "the first moon landing", "roasting coffee beans"]
    docs = [{"_id": f"t{i}", "title": f"Report {i}", "text": FILLER * (1 + i % 3) + f"Finally, a note on {topic}."}
            for i, topic in enumerate(topics)]
    docs.append({"_id": "short", "text": "Bees make honey from nectar."})
    return docs


QUERIES = ["honey bees", "lava from a volcano", "glucose", "bicycle chain repair", "moon landing"]


@pytest.fixture(scope="module")
def indexes(tmp_path_factory, tiny_backbone):
    folder = tmp_path_factory.mktemp("passages")
    passages = Retriever.build(_docs(), folder / "p", backbone=tiny_backbone, max_tokens=WINDOW, passage_tokens=32,
                               passage_overlap=8, dtype=TEST_DTYPE)
    rows = passages.searcher.documents
    alone = [{"_id": f"{i}#{n}", "title": t, "text": x} for i, n, t, x in
             zip(*(rows.column(c).to_pylist() for c in ("id", "passage", "title", "text")), strict=True)]
    reference = Retriever.build(alone, folder / "alone", backbone=tiny_backbone, max_tokens=WINDOW, dtype=TEST_DTYPE)
    whole = Retriever.build(_docs(), folder / "whole", backbone=tiny_backbone, max_tokens=WINDOW, dtype=TEST_DTYPE)
    return passages, reference, whole


def test_passages_fit_the_llm_window_and_every_leg_indexes_them(indexes, tiny_backbone):
    passages, _, whole = indexes
    assert passages.manifest["passages"]["counted_by"] == tiny_backbone.name
    assert passages.manifest["documents_truncated"] == 0 < whole.manifest["documents_truncated"]
    rows = passages.manifest["documents"]
    assert rows > len(_docs()) and passages.manifest["passages"]["documents"] == len(_docs())
    assert verify(passages.path)["ok"]


@pytest.mark.parametrize("mode", ["dense", "sparse", "lexical"])
def test_each_mode_scores_a_document_by_its_best_passage(indexes, mode):
    passages, reference, _ = indexes
    for query in QUERIES:
        got = [(h.id, h.passage["number"], h.score) for h in passages.search(query, k=5, mode=mode)]
        best: dict[str, tuple[int, float]] = {}
        for hit in reference.search(query, k=reference.manifest["documents"], mode=mode):
            doc_id, number = hit.id.split("#")
            best.setdefault(doc_id, (int(number), hit.score))
        want = sorted(((d, n, s) for d, (n, s) in best.items()), key=lambda h: -h[2])[:5]
        assert [(d, n) for d, n, _ in got] == [(d, n) for d, n, _ in want], (mode, query)
        assert [s for *_, s in got] == pytest.approx([s for *_, s in want], rel=1e-5, abs=1e-6), (mode, query)


def test_text_past_the_window_is_found_only_in_passages(indexes):
    passages, _, whole = indexes
    hit = passages.search("volcanic eruptions of molten lava", k=7, mode="lexical")
    found = {h.id: h for h in hit}
    assert "t1" in found and found["t1"].passage["number"] > 0
    assert "molten lava" in passages.document("t1")["text"][found["t1"].passage["start"]:found["t1"].passage["end"]]
    assert passages.document("t1") == whole.document("t1")


def test_an_add_embeds_new_passages_as_a_build_does(tiny_backbone, tmp_path):
    grown = Retriever.build(_docs()[:3], tmp_path / "g", backbone=tiny_backbone, max_tokens=WINDOW, passage_tokens=32,
                            passage_overlap=8, dtype=TEST_DTYPE)
    grown.add(_docs()[3:])
    fresh = Retriever.build(_docs(), tmp_path / "f", backbone=tiny_backbone, max_tokens=WINDOW, passage_tokens=32,
                            passage_overlap=8, dtype=TEST_DTYPE)
    assert grown.searcher.ids == fresh.searcher.ids
    for mode in ("dense", "lexical"):
        for query in QUERIES:
            got = [(h.id, h.passage) for h in grown.search(query, k=5, mode=mode)]
            want = [(h.id, h.passage) for h in fresh.search(query, k=5, mode=mode)]
            assert got == want, (mode, query)
