"""What a user of a retrieval engine expects of its CLI and API: nothing replaced without asking, one JSON
schema, batch search to TREC runs, errors of the library's own type."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from retriever import IndexExistsError, Retriever, RetrieverError
from retriever.cli.main import main

from ...conftest import DEMO, write_jsonl
from ...helpers.models import forbid_llm


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_backbone):
    return Retriever.build(DEMO, tmp_path_factory.mktemp("contract") / "idx", backbone=tiny_backbone)


def test_an_existing_index_is_never_replaced_without_overwrite(tmp_path, tiny_backbone, tiny_model, monkeypatch):
    path = tmp_path / "idx"
    Retriever.build(DEMO, path, backbone=tiny_backbone)
    other = write_jsonl(tmp_path / "other.jsonl", [{"_id": "x", "text": "one lonely document"}])
    forbid_llm(monkeypatch)
    with pytest.raises(IndexExistsError, match=r"idx already holds an index \(37 documents\); pass --overwrite"):
        Retriever.build(other, path, model=str(tiny_model))
    monkeypatch.undo()
    result = CliRunner().invoke(main, ["index", str(other), "--index", str(path), "--model", str(tiny_model),
                                       "--quiet"])
    assert result.exit_code == 1 and "already holds an index" in result.output and "Traceback" not in result.output
    assert Retriever.load(path, backbone=tiny_backbone).manifest["documents"] == 37
    result = CliRunner().invoke(main, ["index", str(other), "--index", str(path), "--model", str(tiny_model),
                                       "--quiet", "--overwrite"])
    assert result.exit_code == 0, result.output
    assert Retriever.load(path, backbone=tiny_backbone).manifest["documents"] == 1
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "mine.txt").write_text("keep me")
    with pytest.raises(IndexExistsError, match="exists and is a folder, not an index"):
        Retriever.build(other, tmp_path / "notes", backbone=tiny_backbone)
    assert (tmp_path / "notes" / "mine.txt").read_text() == "keep me"


def test_search_json_is_one_schema_whatever_the_number_of_queries(built):
    for queries in (["honey bees"], ["honey bees", "volcano eruption"]):
        result = CliRunner().invoke(main, ["search", *queries, "--index", str(built.path), "-k", "3", "--json"])
        assert result.exit_code == 0, result.output
        payload = json.loads(result.output)
        assert list(payload) == ["results"] and [r["query"] for r in payload["results"]] == queries
        for r in payload["results"]:
            assert set(r) == {"query_id", "query", "mode", "hits"} and r["mode"] == "hybrid"
            assert all(set(h) == set(built.search("bees", k=1)[0].to_dict()) for h in r["hits"])
    lines = CliRunner().invoke(main, ["search", "honey bees", "volcano", "--index", str(built.path), "--jsonl"])
    rows = [json.loads(line) for line in lines.output.splitlines()]
    assert [r["query"] for r in rows] == ["honey bees", "volcano"] and all("hits" in r for r in rows)


def test_a_queries_file_or_stdin_is_searched_in_batches_to_a_trec_run(built, tmp_path):
    beir = write_jsonl(tmp_path / "queries.jsonl", [{"_id": "q1", "text": "honey bees"},
                                                     {"_id": "q2", "text": "volcano eruption"}])
    tsv = tmp_path / "queries.tsv"
    tsv.write_text("q1\thoney bees\nq2\tvolcano eruption\n")
    expected = [[h.id for h in hits] for hits in built.search_batch(["honey bees", "volcano eruption"], k=4)]
    for source, stdin in ((beir, None), (tsv, None), ("-", "honey bees\nvolcano eruption\n")):
        out = tmp_path / "run.trec"
        result = CliRunner().invoke(main, ["search", "--queries", str(source), "--index", str(built.path), "-k", "4",
                                           "--output", str(out), "--format", "trec", "--run-tag", "mine",
                                           "--quiet"], input=stdin)
        assert result.exit_code == 0, result.output
        lines = [line.split() for line in out.read_text().splitlines()]
        ids = ["q1", "q2"] if stdin is None else ["1", "2"]
        assert [(q, rank) for q, _, _, rank, _, _ in lines] == [(q, str(r)) for q in ids for r in range(1, 5)]
        assert [[d for q, _, d, *_ in lines if q == qid] for qid in ids] == expected
        assert {tag for *_, tag in lines} == {"mine"}
    tsv_out = tmp_path / "run.tsv"
    CliRunner().invoke(main, ["search", "--queries", str(beir), "--index", str(built.path), "-k", "2", "--output",
                              str(tsv_out), "--format", "tsv", "--quiet"])
    assert [line.split("\t")[:3] for line in tsv_out.read_text().splitlines()][:2] == \
        [["q1", expected[0][0], "1"], ["q1", expected[0][1], "2"]]


def test_search_refuses_a_bad_queries_file_by_line_and_needs_some_query(built, tmp_path):
    bad = write_jsonl(tmp_path / "queries.jsonl", [{"_id": "q1", "text": "bees"}, {"_id": "q2"}])
    result = CliRunner().invoke(main, ["search", "--queries", str(bad), "--index", str(built.path)])
    assert result.exit_code == 1 and "queries.jsonl:2" in result.output and "text" in result.output
    result = CliRunner().invoke(main, ["search", "--index", str(built.path)])
    assert result.exit_code != 0 and "no query" in result.output


def test_api_misuse_raises_the_library_error(built):
    assert built.search_batch([]) == []
    for k in (None, 0, -1, "3", 2.5):
        with pytest.raises(RetrieverError, match="k must be"):
            built.search("bees", k=k)
    with pytest.raises(RetrieverError, match="mode must be one of"):
        built.search("bees", mode="semantic")
    with pytest.raises(RetrieverError, match="a query must be a string"):
        built.search_batch(["bees", None])


def test_dash_h_is_help():
    result = CliRunner().invoke(main, ["search", "-h"])
    assert result.exit_code == 0 and "--queries" in result.output


def test_upsert_reports_replacements_and_delete_says_what_it_refuses(tmp_path, tiny_backbone, tiny_model):
    path = tmp_path / "idx"
    Retriever.build(DEMO, path, backbone=tiny_backbone)
    again = write_jsonl(tmp_path / "again.jsonl", [{"_id": "bees", "text": "Bees again."},
                                                    {"_id": "new", "text": "A new one."}])
    result = CliRunner().invoke(main, ["add", str(path), str(again), "--upsert", "--quiet"])
    assert result.exit_code == 0 and Retriever.load(path, backbone=tiny_backbone).manifest["documents"] == 38
    log = Retriever.load(path, backbone=tiny_backbone).manifest["updates"][-1]
    assert (log["added"], log["replaced"], log["deleted"]) == (1, 1, 0)
    result = CliRunner().invoke(main, ["add", str(path), str(again), "--upsert"])
    assert "added 0, replaced 2, deleted 0: 38 documents now" in result.output
    help_text = CliRunner().invoke(main, ["delete", "--help"]).output
    assert "refuses the whole command" in help_text
    result = CliRunner().invoke(main, ["delete", str(path), "bees", "nope"])
    assert result.exit_code == 1 and "nothing was deleted" in result.output


def test_verify_of_a_missing_index_says_so_rather_than_damaged(tmp_path):
    result = CliRunner().invoke(main, ["verify", "--index", str(tmp_path / "missing")])
    assert result.exit_code == 1 and "no index at" in result.output and "DAMAGED" not in result.output


def test_progress_off_a_terminal_is_plain_lines(tmp_path, tiny_model, monkeypatch):
    from retriever.cli import progress

    monkeypatch.setattr(progress.Progress, "LOG_SECONDS", 0.0)
    corpus = write_jsonl(tmp_path / "c.jsonl", [{"_id": str(i), "text": f"document {i}"} for i in range(40)])
    result = CliRunner().invoke(main, ["index", str(corpus), "--index", str(tmp_path / "idx"), "--model",
                                       str(tiny_model), "--chunk-size", "8"])
    assert result.exit_code == 0, result.output
    assert "\r" not in result.output and "indexing: 40/40 docs in" in result.output


def test_bad_inputs_fail_before_the_model_loads(tmp_path, built, no_model):
    def run(*args):
        return CliRunner().invoke(main, [str(a) for a in args])

    result = run("index", tmp_path / "missing.jsonl", "--index", tmp_path / "a")
    assert result.exit_code == 1 and "missing.jsonl: file not found" in result.output
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"_id": "1", "text": "fine"}, "{not json"])
    result = run("index", bad, "--index", tmp_path / "b")
    assert result.exit_code == 1 and "bad.jsonl:2" in result.output
    result = run("search", "", "--index", built.path)
    assert result.exit_code == 1 and "empty query" in result.output
    result = run("search", "bees", "--index", tmp_path / "nowhere")
    assert result.exit_code == 1 and "no index at" in result.output
    result = run("search", "bees", "--index", built.path, "--model", "gemma3-270m")
    assert result.exit_code == 1 and "not 'gemma3-270m'" in result.output
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_lexical_paths_never_load_the_model(tmp_path, built, no_model):
    result = CliRunner().invoke(main, ["index", str(DEMO), "--index", str(tmp_path / "bm25"), "--legs", "lexical",
                                       "--quiet", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["model"]["name"] == "none"
    result = CliRunner().invoke(main, ["search", "honey bees", "--index", str(built.path), "--mode", "lexical",
                                       "--json", "-k", "3"])
    assert result.exit_code == 0, result.output
    hits = json.loads(result.output)["results"][0]["hits"]
    assert [(h["id"], h["score"]) for h in hits] == \
        [(h.id, h.score) for h in built.search("honey bees", k=3, mode="lexical")]
    opened = Retriever.load(built.path, mode="lexical")
    assert opened.backbone is None
    with pytest.raises(RetrieverError, match="opened without its model"):
        opened.search("honey bees")


@pytest.fixture
def keep_threads():
    import faiss
    import torch

    torch_threads, faiss_threads = torch.get_num_threads(), faiss.omp_get_max_threads()
    yield
    torch.set_num_threads(torch_threads)  # --threads runs in this process here
    faiss.omp_set_num_threads(faiss_threads)


def test_flags_users_look_for(tmp_path, tiny_model, keep_threads):
    result = CliRunner().invoke(main, ["index", str(DEMO), "--index", str(tmp_path / "idx"), "--model",
                                       str(tiny_model), "--device", "cpu", "--threads", "1", "--batch-tokens", "256",
                                       "--quiet", "--json"])
    assert result.exit_code == 0, result.output
    baseline = Retriever.build(DEMO, tmp_path / "base", model=str(tiny_model))
    same = Retriever.load(tmp_path / "idx")
    for query in ("honey bees", "volcano"):  # the batch budget changes speed, never a vector
        assert [(h.id, h.score) for h in same.search(query)] == [(h.id, h.score) for h in baseline.search(query)]
    result = CliRunner().invoke(main, ["search", "bees", "--index", str(tmp_path / "idx"), "--device", "cpu",
                                       "--threads", "1", "--json"])
    assert result.exit_code == 0, result.output


def test_explanations_read_as_the_query_words(built, tiny_backbone):
    from retriever.legs.keytokens.own_tokens import own_token_ids

    query = "Glossary placeholders for honeycombs"
    pieces = own_token_ids(tiny_backbone.tokenizer, [query])[0]
    assert len(pieces) > len(query.split())  # the tokenizer splits some of these words
    hits = built.search(query, k=37, mode="sparse")
    words = set(query.split())
    shown = {t["token"] for h in hits for t in h.tokens}
    assert shown & words  # the query's own words appear whole, merged from their pieces
    piece_texts = {tiny_backbone.tokenizer.decode([p]).strip() for p in pieces}
    for hit in hits:  # a piece reads as itself only where the document lacks the word it is part of
        text = f"{hit.title} {built.document(hit.id)['text']}".lower()
        for t in hit.tokens:
            whole = [w for w in words if t["token"] in w and t["token"] != w and t["token"] in piece_texts]
            assert not any(re.search(rf"(?<!\w){w.lower()}(?!\w)", text) for w in whole), (hit.id, t)
        for t in hit.tokens:  # and a query word is shown only where the document has it
            if t["token"] in words:
                assert re.search(rf"(?<!\w){t['token'].lower()}(?!\w)", text), (hit.id, t)
    lexical = built.search("glossary placeholders", k=1, mode="lexical")
    assert lexical[0].id == "empty-text"
    assert {t["token"] for t in lexical[0].tokens} == {"glossary", "placeholders"}  # as written, not stems


def test_the_cli_indexes_parquet_csv_and_folders_with_field_maps(tmp_path, tiny_model):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"key": "a", "body": "Bees make honey.", "topic": "insects"},
            {"key": "b", "body": "Lava erupts from volcanoes.", "topic": "earth"}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "c.parquet")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "bees.md").write_text("Bees make honey.")
    for source, extra in ((tmp_path / "c.parquet", ["--id-field", "key", "--text-field", "body"]),
                          (tmp_path / "notes", [])):
        target = tmp_path / f"idx-{source.name}"
        result = CliRunner().invoke(main, ["index", str(source), "--index", str(target), "--model", str(tiny_model),
                                           "--quiet", *extra])
        assert result.exit_code == 0, result.output
        hits = Retriever.load(target).search("honey", k=1, mode="lexical")
        assert hits[0].id in ("a", "bees.md")
    assert Retriever.load(tmp_path / "idx-c.parquet").search("honey", k=1)[0].metadata == {"topic": "insects"}


def test_info_shows_what_the_index_holds_and_its_tuning(tmp_path, built):
    result = CliRunner().invoke(main, ["index", str(DEMO), "--index", str(tmp_path / "bm25"), "--legs", "lexical",
                                       "--quiet"])
    assert result.exit_code == 0, result.output
    text = CliRunner().invoke(main, ["info", "--index", str(tmp_path / "bm25")]).output
    assert "none: no LLM leg" in text and "sparse" not in text and "dense index" not in text and "k1" in text
    built.set_fusion("rrf", record={"split": "train", "queries": 5, "measure": "nDCG@10", "value": 0.5,
                                    "settings_tried": 3, "at": "2026-12-01T00:00:00+00:00"})
    text = CliRunner().invoke(main, ["info", "--index", str(built.path)]).output
    assert "tuned" in text and "on train (5 queries): nDCG@10 0.5000" in text
    built.set_fusion("convex")
