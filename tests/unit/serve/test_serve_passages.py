"""An index of passages behind a real server (uvicorn on loopback, writes on): a hit names its passage as
the API's does, a document comes back whole, and an upsert or a delete over HTTP replaces or removes every
passage of a document. BM25 only, so no model loads."""

from __future__ import annotations

import httpx
import pytest

from retriever import Retriever
from retriever.serve.server import ServerProcess

TOKEN = "passage-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FILLER = "The committee met again and read the minutes of the last meeting aloud. "
DOCS = [{"_id": "report", "title": "Annual report", "text": FILLER * 30 + "The bees in the garden made honey."},
        {"_id": "note", "text": "Honey is sweet.", "metadata": {"kind": "note"}}]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve-passages")
    index = Retriever.build(DOCS, root / "long", legs=("lexical",), passage_tokens=40, passage_overlap=10)
    (root / "token").write_text(TOKEN)
    args = ["--index", str(index.path), "--allow-writes", "--token-file", str(root / "token"), "--quiet"]
    with ServerProcess(args, log=str(root / "server.log")) as running, \
            httpx.Client(base_url=running.url, timeout=60) as client:
        yield index, client


def test_search_names_the_passage_and_a_document_comes_back_whole(served):
    index, http = served
    got = http.post("/search", json={"query": "bees honey", "mode": "lexical"}).json()["hits"]
    assert got == [h.to_dict() for h in Retriever.load(index.path).search("bees honey", mode="lexical")]
    top = got[0]
    assert top["id"] == "report" and top["passage"]["number"] > 0
    assert "bees in the garden" in DOCS[0]["text"][top["passage"]["start"]:top["passage"]["end"]]
    assert http.get("/documents/report").json()["text"] == DOCS[0]["text"]


def test_an_upsert_and_a_delete_over_http_move_every_passage(served):
    index, http = served
    rows = Retriever.load(index.path).searcher.ids.count("report")
    assert rows > 1
    new = {"_id": "report", "text": "Short now: bees only."}
    added = http.post("/indexes/long/documents", json={"documents": [new], "upsert": True}, headers=AUTH)
    assert added.status_code == 200, added.text
    assert added.json() == {"index": "long", "added": 0, "replaced": 1, "documents": 2}
    after = Retriever.load(index.path)
    assert after.searcher.ids.count("report") == 1 and after.document("report")["text"] == new["text"]
    hit = http.post("/search", json={"query": "bees", "mode": "lexical"}).json()["hits"][0]
    assert hit["passage"] == {"number": 0, "start": 0, "end": len(new["text"])}
    deleted = http.delete("/indexes/long/documents/report", headers=AUTH)
    assert deleted.status_code == 200 and deleted.json()["documents"] == 1
    assert "report" not in Retriever.load(index.path).searcher.ids
