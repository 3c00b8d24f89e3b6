"""An index of passages (--passage-tokens) on the BM25 leg, which needs no model: each document scores by
its best passage (MaxP), checked against an index of the same passages as separate documents grouped by
hand; k documents come back however many passages one of them has; a hit names its passage and where it
is in the document; adds, upserts, deletes, merges and filters work on whole documents; the CLI takes the
options and refuses bad ones before anything loads."""

from __future__ import annotations

import json
import random

import pytest
from click.testing import CliRunner

from retriever import Retriever
from retriever.api import verify
from retriever.cli.main import main
from retriever.errors import RetrieverError

from ...conftest import write_jsonl

VOCABULARY = ["cell", "membrane", "protein", "binds", "calcium", "ions", "under", "stress", "signals", "neurons",
              "glucose", "insulin", "liver", "kidney", "enzyme", "receptor"]
QUERIES = ["calcium ions", "insulin liver enzyme", "stress signals in neurons", "kidney receptor", "protein"]


def _docs(n: int = 12, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        sentences = [" ".join(rng.choice(VOCABULARY) for _ in range(rng.randint(4, 12))).capitalize() + "."
                     for _ in range(rng.randint(1, 25))]
        docs.append({"_id": f"doc-{i}", "title": f"Title {i}" if i % 2 else "", "text": " ".join(sentences),
                     "metadata": {"year": 1990 + i, "group": "even" if i % 2 == 0 else "odd"}})
    return docs


def _build(docs, path, **settings) -> Retriever:
    return Retriever.build(docs, path, legs=("lexical",), **settings)


def _hits(r: Retriever, k: int = 20, **kwargs) -> list[list[tuple]]:
    return [[(h.id, round(h.score, 5), h.passage and h.passage["number"]) for h in r.search(q, k=k, mode="lexical",
                                                                                          **kwargs)]
            for q in QUERIES]


@pytest.fixture
def docs():
    return _docs()


def test_a_document_scores_by_its_best_passage(docs, tmp_path, no_model):
    index = _build(docs, tmp_path / "p", passage_tokens=24, passage_overlap=6)
    assert index.manifest["passages"] == {"tokens": 24, "overlap": 6, "counted_by": "words", "documents": len(docs)}
    rows = index.searcher.documents
    assert rows.num_rows == index.manifest["documents"] > len(docs)
    # the reference: the same passages indexed as documents of their own, grouped by document by hand
    numbers, ids = rows.column("passage").to_pylist(), rows.column("id").to_pylist()
    alone = [{"_id": f"{i}#{n}", "title": t, "text": x} for i, n, t, x in
             zip(ids, numbers, rows.column("title").to_pylist(), rows.column("text").to_pylist(), strict=True)]
    reference = _build(alone, tmp_path / "alone")
    for query, got in zip(QUERIES, _hits(index), strict=True):
        best: dict[str, tuple[float, int]] = {}
        for hit in reference.search(query, k=len(alone), mode="lexical"):
            doc_id, number = hit.id.split("#")
            if doc_id not in best:
                best[doc_id] = (round(hit.score, 5), int(number))
        want = sorted(((d, s, n) for d, (s, n) in best.items()), key=lambda h: -h[1])[:20]
        assert got == want, query


def test_k_documents_come_back_when_one_document_has_many_better_passages(tmp_path, no_model):
    crowd = {"_id": "crowd", "text": " ".join(["Calcium ions bind calcium ions calcium."] * 60)}
    others = [{"_id": f"o{i}", "text": f"A note {i} on kidney calcium, glucose and liver."} for i in range(30)]
    index = _build([crowd, *others], tmp_path / "p", passage_tokens=12, passage_overlap=0)
    per_document = index.searcher.passages.per_document  # how deep the leg looks first, per document asked
    assert index.searcher.ids.count("crowd") > per_document * 5  # crowd's passages fill that first look
    hits = index.search("calcium", k=5, mode="lexical")
    assert hits[0].id == "crowd" and len({h.id for h in hits}) == 5


def test_a_hit_names_its_passage_and_the_document_keeps_its_whole_text(docs, tmp_path, no_model):
    index = _build(docs, tmp_path / "p", passage_tokens=16)
    texts = {d["_id"]: d["text"] for d in docs}
    split = 0
    for query in QUERIES:
        for hit in index.search(query, k=10, mode="lexical"):
            whole = index.document(hit.id)
            assert whole["text"] == texts[hit.id] and whole["metadata"] == docs[int(hit.id[4:])]["metadata"]
            start, end = hit.passage["start"], hit.passage["end"]
            passage = texts[hit.id][start:end]
            assert hit.snippet.strip(" .…") in passage or hit.snippet.replace("…", "").strip() in passage
            assert {t["token"] for t in hit.tokens} <= set(passage.lower().replace(".", " ").split())
            split += (start, end) != (0, len(texts[hit.id]))
    assert split > 0
    assert verify(tmp_path / "p")["ok"]
    assert index.searcher.document_ids == [d["_id"] for d in docs]


def test_adds_upserts_deletes_and_merges_move_whole_documents(docs, tmp_path, no_model):
    options = {"passage_tokens": 20, "passage_overlap": 5}
    fresh = _build(docs, tmp_path / "fresh", **options)
    grown = _build(docs[:5], tmp_path / "grown", **options)
    grown.add(docs[5:])
    assert _hits(grown) == _hits(fresh)
    assert grown.manifest["passages"]["documents"] == len(docs)

    replaced = {"_id": "doc-3", "text": "Nothing but kidney here. " * 3, "metadata": {"year": 1}}
    manifest = grown.add([replaced], upsert=True)
    assert manifest["updates"][-1] == {**manifest["updates"][-1], "added": 0, "replaced": 1, "deleted": 0}
    assert grown.document("doc-3")["text"] == replaced["text"]
    assert grown.searcher.ids.count("doc-3") == 1  # the old document's passages are gone with it
    manifest = grown.delete(["doc-4"])
    assert manifest["updates"][-1]["deleted"] == 1 and "doc-4" not in grown.searcher.ids
    assert manifest["passages"]["documents"] == len(docs) - 1
    before = _hits(grown)
    manifest = grown.optimize()
    assert len(manifest["segments"]) == 1 and _hits(grown) == before and verify(tmp_path / "grown")["ok"]

    rest = [replaced if d["_id"] == "doc-3" else d for d in docs if d["_id"] != "doc-4"]
    rebuilt = _build(rest, tmp_path / "rebuilt", **options)
    assert sorted(map(sorted, _hits(grown))) == sorted(map(sorted, _hits(rebuilt)))  # order of rows differs


def test_a_filter_keeps_or_drops_a_document_with_all_its_passages(docs, tmp_path, no_model):
    index = _build(docs, tmp_path / "p", passage_tokens=16)
    for query in QUERIES:
        hits = index.search(query, k=20, mode="lexical", filter={"year": {"gte": 1996}, "group": "even"})
        assert hits and all(h.metadata["year"] >= 1996 and h.metadata["group"] == "even" for h in hits)
        unfiltered = [h for h in index.search(query, k=20, mode="lexical") if h.id in {x.id for x in hits}]
        assert [(h.id, h.score, h.passage) for h in hits] == [(h.id, h.score, h.passage) for h in unfiltered]


def _cli(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_the_cli_builds_searches_and_describes_an_index_of_passages(docs, tmp_path, no_model):
    corpus = write_jsonl(tmp_path / "corpus.jsonl", docs)
    built = _cli("index", str(corpus), "--index", str(tmp_path / "idx"), "--legs", "lexical",
                 "--passage-tokens", "16", "--quiet", "--json")
    assert built.exit_code == 0, built.output
    assert json.loads(built.stdout)["passages"]["documents"] == len(docs)
    found = _cli("search", "calcium ions", "--index", str(tmp_path / "idx"), "--mode", "lexical", "--json")
    hit = json.loads(found.stdout)["results"][0]["hits"][0]
    assert set(hit["passage"]) == {"number", "start", "end"}
    text = _cli("search", "calcium ions", "--index", str(tmp_path / "idx"), "--mode", "lexical").stdout
    assert f"passage {hit['passage']['number'] + 1}, characters" in text
    info = _cli("info", "--index", str(tmp_path / "idx")).stdout
    assert f"{len(docs)} (" in info and "of at most 16 words" in info


@pytest.mark.parametrize(("options", "message"), [
    (["--passage-overlap", "4"], "needs passage_tokens"),
    (["--passage-tokens", "16", "--passage-overlap", "16"], "passage_overlap must be"),
    (["--passage-tokens", "4"], "--passage-tokens"),
])
def test_impossible_passage_options_are_refused_before_any_work(docs, tmp_path, options, message, no_model):
    corpus = write_jsonl(tmp_path / "corpus.jsonl", docs)
    refused = _cli("index", str(corpus), "--index", str(tmp_path / "idx"), *options)
    assert refused.exit_code != 0 and message in refused.output and refused.exc_info[0] is SystemExit
    assert not (tmp_path / "idx").exists()


def test_passages_longer_than_the_llm_window_are_warned_about_before_anything_loads(tmp_path, no_model):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"_id": "a", "text": "fine"}\n{"_id": "b"\n')  # refused on line 2, after the warning
    got = _cli("index", str(corpus), "--index", str(tmp_path / "idx"), "--passage-tokens", "256")
    assert "warning: --passage-tokens 256 is more than --max-tokens 128" in got.output
    assert got.exit_code == 1 and "corpus.jsonl:2" in got.output
    quiet = _cli("index", str(corpus), "--index", str(tmp_path / "idx"), "--passage-tokens", "128")
    assert "warning" not in quiet.output


def test_an_interrupted_build_of_passages_resumes_by_documents(docs, tmp_path, no_model):
    """Chunks are counted in documents whatever their passages: the resumed build checks the committed
    chunks against the corpus's documents and ends as a build that never stopped."""
    options = {"legs": ("lexical",), "passage_tokens": 16, "chunk_size": 4}

    def failing():
        for i, doc in enumerate(docs):
            if i == 9:
                raise KeyboardInterrupt
            yield doc

    with pytest.raises(KeyboardInterrupt):
        Retriever.build(failing(), tmp_path / "idx", **options)
    with pytest.raises(RetrieverError, match="used another settings"):  # other passages would not mix
        Retriever.build(docs, tmp_path / "idx", **{**options, "passage_tokens": 20})
    resumed = Retriever.build(docs, tmp_path / "idx", **options)
    assert resumed.manifest["resumed_documents"] == 8  # two chunks of four documents, their passages with them
    fresh = Retriever.build(docs, tmp_path / "fresh", **options)
    assert resumed.searcher.documents.equals(fresh.searcher.documents) and _hits(resumed) == _hits(fresh)
