"""Adding and deleting documents: the result equals a fresh build of the final corpus with u_1 held fixed."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from retriever import InputError, Retriever, delete_documents
from retriever.cli.main import main
from retriever.corpus.readers import read_corpus
from retriever.indexing.indexer import build_index
from retriever.settings import IndexSettings

from ...conftest import DEMO

QUERIES = ["honey bees", "volcano eruption", "bicycle repair", "diabetes insulin", "the moon landing"]


def _docs():
    return list(read_corpus(DEMO))


def _fresh(tmp_path, backbone, docs, u1):
    """A build of exactly these documents with a given u_1: what an update must equal."""
    build_index(docs, tmp_path / "fresh", backbone, IndexSettings(), u1=np.array(u1))
    return Retriever.load(tmp_path / "fresh", backbone=backbone)


def _results(retriever, mode="hybrid", k=10):
    return [[(h.id, round(h.score, 4)) for h in retriever.search(q, k=k, mode=mode, explain=False)]
            for q in QUERIES]


def _assert_same(a, b):
    for mode in ("hybrid", "dense", "sparse", "lexical"):
        assert _results(a, mode) == _results(b, mode), mode
    assert (a.searcher.leg("lexical").index.postings != b.searcher.leg("lexical").index.postings).nnz == 0


def _u1(r):
    return r.searcher.leg("sparse").projector.u1


def test_added_documents_score_as_in_a_fresh_build(tmp_path, tiny_backbone):
    docs = _docs()
    r = Retriever.build(docs[:25], tmp_path / "idx", backbone=tiny_backbone)
    u1 = _u1(r)
    manifest = r.add(docs[25:])
    assert manifest["documents"] == 37 and manifest["updates"][-1]["added"] == 12
    np.testing.assert_array_equal(np.load(r.path / "seg-000002" / "u1.npy"), u1)  # the index keeps its u_1
    _assert_same(r, _fresh(tmp_path, tiny_backbone, docs, u1))
    reloaded = Retriever.load(r.path, backbone=tiny_backbone)
    assert _results(reloaded) == _results(r)


def test_deleted_documents_never_come_back(tmp_path, tiny_backbone):
    docs = _docs()
    r = Retriever.build(docs, tmp_path / "idx", backbone=tiny_backbone)
    u1 = _u1(r)
    gone = {docs[0].id, docs[5].id, docs[20].id}
    r.delete(sorted(gone))
    assert r.manifest["documents"] == 34
    for mode in ("hybrid", "dense", "sparse", "lexical"):
        for hits in r.search_batch([*QUERIES, docs[5].text], k=100, mode=mode):
            assert not gone & {h.id for h in hits}
    _assert_same(r, _fresh(tmp_path, tiny_backbone, [d for d in docs if d.id not in gone], u1))


def test_ids_already_present_need_upsert_and_unknown_ids_change_nothing(tmp_path, tiny_backbone):
    docs = _docs()
    r = Retriever.build(docs, tmp_path / "idx", backbone=tiny_backbone)
    before = (r.path / "manifest.json").read_text()
    replacement = {"_id": docs[3].id, "text": "Zebras graze on the savanna in large herds."}
    clash = f"id '{docs[3].id}' is already in the index .nothing was changed.; to replace it, add with upsert"
    with pytest.raises(InputError, match=clash):
        r.add([replacement])
    with pytest.raises(InputError, match="not in the index: 'nope'"):
        r.delete(["nope", docs[1].id])
    with pytest.raises(InputError, match="delete every document"):
        delete_documents(r.path, [d.id for d in docs])
    assert (r.path / "manifest.json").read_text() == before
    r.add([replacement], upsert=True)
    assert r.manifest["documents"] == 37
    top = r.search("zebras on the savanna", k=1, mode="lexical")[0]
    assert top.id == docs[3].id and "Zebras" in top.snippet


def test_cli_add_and_delete(tmp_path, tiny_backbone, tiny_model):
    docs = _docs()
    Retriever.build(docs[:30], tmp_path / "idx", backbone=tiny_backbone)
    more = tmp_path / "more.jsonl"
    more.write_text("".join(json.dumps({"_id": d.id, "title": d.title, "text": d.text}) + "\n" for d in docs[30:]))
    runner = CliRunner()
    out = runner.invoke(main, ["add", str(tmp_path / "idx"), str(more), "--quiet", "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["documents"] == 37
    again = runner.invoke(main, ["add", str(tmp_path / "idx"), str(more), "--quiet"])
    assert again.exit_code == 1 and "--upsert" in again.output and "Traceback" not in again.output
    gone = runner.invoke(main, ["delete", str(tmp_path / "idx"), docs[0].id, docs[31].id])
    assert gone.exit_code == 0, gone.output
    assert "deleted 2" in gone.output
    missing = runner.invoke(main, ["delete", str(tmp_path / "idx"), "no-such-id"])
    assert missing.exit_code == 1 and "not in the index: 'no-such-id'" in missing.output
    verified = runner.invoke(main, ["verify", "--index", str(tmp_path / "idx")])
    assert verified.exit_code == 0 and "verified" in verified.output
