"""What a newcomer stumbled on (issue 29), each refused the same way on every path, before any model loads
(forbid_models makes a load fail the test), with a message that says what to do and no traceback."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from retriever import InputError, ModelError, Retriever, read_corpus
from retriever.cli.main import main
from retriever.corpus.documents import cell_value
from retriever.index.checkpoint import committed_documents
from retriever.serve.config import ServeConfig
from retriever.serve.service import Service, ServiceError

from ...conftest import DEMO, write_jsonl
from ...helpers.fixtures import FIXTURES
from ...helpers.models import forbid_models

NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine's torch can use a GPU")


def _run(*args, **kwargs):
    return CliRunner().invoke(main, [str(a) for a in args], **kwargs)


@pytest.fixture(scope="module")
def lexical(tmp_path_factory):
    return Retriever.build(DEMO, tmp_path_factory.mktemp("refusals") / "bm25", legs=("lexical",))


@pytest.fixture
def full_manifest(tmp_path):
    """A copy of an index of every leg (tests/fixtures/v2-default): an add to it loads the LLM and MiniLM."""
    import shutil

    folder = tmp_path / "full"
    shutil.copytree(FIXTURES / "v2-default", folder)
    return folder


def _no_traceback(result) -> None:
    assert "Traceback" not in result.output and not isinstance(result.exception, (AssertionError, TypeError))


@NO_CUDA
def test_device_cuda_without_a_usable_gpu_is_refused_at_once(tmp_path, monkeypatch):
    forbid_models(monkeypatch)
    for args in (("index", DEMO, "--index", tmp_path / "i"), ("search", "bees", "--index", tmp_path / "i"),
                 ("add", tmp_path / "i", DEMO), ("eval", "sts", DEMO)):
        result = _run(*args, "--device", "cuda")
        assert result.exit_code == 2 and "no GPU is usable here" in result.output and "--device cpu" in result.output
        _no_traceback(result)
    with pytest.raises(ModelError, match="no GPU is usable here"):
        Retriever.build(DEMO, tmp_path / "api", device="cuda")
    assert not (tmp_path / "api").exists()


def test_search_output_options_are_checked_before_the_index_loads(lexical, tmp_path, monkeypatch):
    forbid_models(monkeypatch)
    cases = [(("--output", tmp_path / "nowhere" / "run.trec"), "does not exist: create it first"),
             (("--output", tmp_path), "is a folder"),
             (("--json", "--jsonl"), "--json or --jsonl, not both"),
             (("--format", "tsv"), "give --output FILE too"),
             (("--output", tmp_path / "run.trec", "--json"), "--output writes a run file")]
    for extra, message in cases:
        result = _run("search", "bees", "--index", tmp_path / "no-index-needed", *extra)
        assert result.exit_code == 2 and message in result.output, (extra, result.output)
        _no_traceback(result)
    result = _run("search", "bees", "--index", lexical.path, "--mode", "lexical", "--output", tmp_path / "run.tsv",
                  "--format", "tsv", "--quiet")
    assert result.exit_code == 0 and (tmp_path / "run.tsv").read_text().startswith("1\t")


def test_an_add_is_checked_whole_before_a_model_loads(full_manifest, tmp_path, monkeypatch):
    manifest = json.loads((full_manifest / "manifest.json").read_text())
    assert manifest["documents"] == 37
    forbid_models(monkeypatch)
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"_id": "n1", "text": "fine"}, "{not json"])
    dup = write_jsonl(tmp_path / "dup.jsonl", [{"_id": "volcano", "text": "again"}])
    twice = write_jsonl(tmp_path / "twice.jsonl", [{"_id": "n1", "text": "a"}, {"_id": "n1", "text": "b"}])
    empty = write_jsonl(tmp_path / "empty.jsonl", [{"_id": "n1", "title": " ", "text": " \n"}])
    cases = [(tmp_path / "missing.jsonl", "missing.jsonl: file not found"), (bad, "bad.jsonl:2: malformed JSON"),
             (dup, "id 'volcano' is already in the index"), (twice, "twice.jsonl:2: duplicate id 'n1'"),
             (empty, "empty.jsonl:1: empty document")]
    for corpus, message in cases:
        result = _run("add", full_manifest, corpus)
        assert result.exit_code == 1 and message in result.output, result.output
        assert "adding" not in result.output
        _no_traceback(result)
    assert json.loads((full_manifest / "manifest.json").read_text()) == manifest  # nothing changed


def test_sts_files_and_methods_are_checked_before_the_model_loads(tmp_path, sts_file, monkeypatch):
    forbid_models(monkeypatch)
    headless = tmp_path / "headless.tsv"
    headless.write_text("a\tb\t1\n")
    cases = [((tmp_path / "missing.tsv",), "missing.tsv: file not found"),
             ((headless,), "headless.tsv:1: expected a header"),
             ((sts_file, "--method", "nosuch"), "unknown method 'nosuch'"),
             ((sts_file, "--method", "prompteol,tp-mean"), "unknown method 'tp-mean'")]
    for args, message in cases:
        result = _run("eval", "sts", *args)
        assert result.exit_code == 1 and message in result.output, result.output
        _no_traceback(result)


def test_an_empty_document_is_refused_on_every_path(lexical, tmp_path, monkeypatch):
    blank = {"_id": "blank", "title": "  ", "text": "\t \n"}
    corpus = write_jsonl(tmp_path / "c.jsonl", [{"_id": "a", "text": "bees"}, blank])
    with pytest.raises(InputError, match=r"c\.jsonl:2: empty document: no text and no title"):
        list(read_corpus(corpus))
    csv = tmp_path / "c.csv"
    csv.write_text("_id,title,text\na,,bees\nb,,\n")
    with pytest.raises(InputError, match=r"c\.csv:3: empty document"):
        list(read_corpus(csv))
    forbid_models(monkeypatch)
    with pytest.raises(InputError, match="documents:2: empty document"):
        Retriever.build([{"_id": "a", "text": "bees"}, blank], tmp_path / "api")
    result = _run("index", corpus, "--index", tmp_path / "cli", "--legs", "lexical")
    assert result.exit_code == 1 and "c.jsonl:2: empty document" in result.output
    assert not (tmp_path / "api").exists() and not (tmp_path / "cli").exists()
    with pytest.raises(InputError, match="documents:1: empty document"):
        lexical.add([blank])
    service = Service(ServeConfig({"small": lexical.path}))
    service.load()
    try:
        with pytest.raises(ServiceError, match="empty document") as refused:
            service.add("small", [blank], upsert=False)
        assert refused.value.status == 400
    finally:
        service.close()
    assert lexical.document("blank") is None


def test_csv_metadata_numbers_are_numbers_so_range_filters_match(tmp_path):
    assert [cell_value(v) for v in ("1991", "-3", "3.25", "02139", "1e5", "nan", "12a", "")] == \
        [1991, -3, 3.25, "02139", "1e5", "nan", "12a", ""]
    csv = tmp_path / "papers.csv"
    csv.write_text("_id,text,year,zip\nold,bees make honey,1985,02139\nnew,bees and wax,1994,10001\n")
    r = Retriever.build(csv, tmp_path / "idx", legs=("lexical",))
    assert r.document("new")["metadata"] == {"year": 1994, "zip": 10001}
    assert r.document("old")["metadata"] == {"year": 1985, "zip": "02139"}
    assert [h.id for h in r.search("bees", mode="lexical", filter={"year": {"gte": 1991}})] == ["new"]


def test_the_commands_that_run_a_model_take_the_same_run_options():
    for command in (("index",), ("add",), ("search",), ("eval", "beir"), ("eval", "sts")):
        result = _run(*command, "--help")
        assert result.exit_code == 0
        for flag in ("--device", "--threads", "--batch-tokens") if command != ("search",) else ("--device",):
            assert flag in result.output, (command, flag)


def test_json_output_makes_errors_json_too(tmp_path):
    result = _run("verify", "--index", tmp_path / "nope", "--json")
    assert result.exit_code == 1 and json.loads(result.output) == {"error": f"no index at {tmp_path / 'nope'}"}
    result = _run("verify", "--index", tmp_path / "nope")
    assert result.exit_code == 1 and "Error: no index at" in result.output


def test_a_query_longer_than_the_servers_limit_is_refused_by_the_cli_too(lexical):
    result = _run("search", "bees " * 4400, "--index", lexical.path, "--mode", "lexical")
    assert result.exit_code == 1 and "22,000 characters; the limit is 4,000" in result.output


def test_an_interrupted_build_says_how_many_documents_it_kept(tmp_path):
    target = tmp_path / "idx"
    for number, count in enumerate((20, 20, 7)):
        chunk = tmp_path / ".idx.partial" / f"chunk-{number:06d}"
        chunk.mkdir(parents=True)
        (chunk / "chunk.json").write_text(json.dumps({"documents": count}))
    assert committed_documents(target) == 47
    assert committed_documents(tmp_path / "other") == 0
