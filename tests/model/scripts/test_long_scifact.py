"""The long-document set of scripts/bench_passages.py, made from a small BEIR folder written here: every
abstract in exactly one long document, in order, judged ones after the others of their document, and the
qrels mapped to the long documents with their grades (the default model's tokenizer counts the offsets)."""

from __future__ import annotations

import json
import sys

from ...conftest import ROOT


def _beir(folder, n: int = 40) -> None:
    (folder / "qrels").mkdir(parents=True)
    docs = [{"_id": str(i), "title": f"Title {i}", "text": f"Abstract number {i}. " * 30} for i in range(n)]
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": f"q{i}", "text": f"number {i}"}) + "\n"
                                                  for i in range(4)))
    (folder / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq0\t3\t1\nq1\t17\t2\nq1\t18\t1\n")
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq2\t25\t1\nq3\t39\t1\n")


def test_the_long_document_set_maps_every_abstract_and_its_judgements(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    sys.modules.pop("bench_passages", None)
    import bench_passages

    _beir(tmp_path / "beir")
    described = bench_passages.make_long_scifact(tmp_path / "beir", tmp_path / "long", group=8)
    corpus = [json.loads(line) for line in (tmp_path / "long" / "corpus.jsonl").read_text().splitlines()]
    assert described["documents"] == len(corpus) == 5 and described["abstracts"] == 40
    parts = {d["_id"]: d["text"].split("\n\n") for d in corpus}
    assert sorted(p for ps in parts.values() for p in ps) == sorted(f"Title {i}. " + (f"Abstract number {i}. " * 30)
                                                                     .strip() for i in range(40))
    where = {p.split(".")[0].removeprefix("Title "): (doc, i) for doc, ps in parts.items() for i, p in enumerate(ps)}
    for judged in ("3", "17", "18", "25", "39"):
        doc, position = where[judged]
        assert all(where[o][1] < position for o in where if where[o][0] == doc and o not in
                   {"3", "17", "18", "25", "39"})  # every unjudged abstract of its document comes first
    train = (tmp_path / "long" / "qrels" / "train.tsv").read_text().splitlines()
    assert train[0] == "query-id\tcorpus-id\tscore"
    mapped = {tuple(line.split("\t")[:2]): int(line.split("\t")[2]) for line in train[1:]}
    assert mapped[("q0", where["3"][0])] == 1 and mapped[("q1", where["17"][0])] == 2
    assert described["judged_pairs"] == len(mapped) + 2 and described["past_128"] > 0
