"""The command line through click's test runner, JSON output parsed back."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from retriever.cli.main import main

from ...conftest import DEMO, write_jsonl


@pytest.fixture(scope="module")
def cli_home(tmp_path_factory):
    return tmp_path_factory.mktemp("cli-home")


@pytest.fixture
def run(cli_home, monkeypatch):
    monkeypatch.setenv("RETRIEVER_HOME", str(cli_home))

    def invoke(*args):
        return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)

    return invoke


def test_index_search_info_round_trip(run, cli_home):
    result = run("index", DEMO, "--quiet", "--json")
    assert result.exit_code == 0, result.output
    built = json.loads(result.stdout)
    assert built["documents"] == 37 and built["documents_empty"] == 0
    assert (cli_home / "demo" / "manifest.json").exists()

    result = run("search", "how do bees make honey", "-k", "3", "--json")  # the last built index
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)["results"][0]  # one schema for one query or many (README)
    assert payload["mode"] == "hybrid" and payload["hits"][0]["id"] == "bees"
    hit = payload["hits"][0]
    assert set(hit) == {"id", "rank", "score", "scores", "title", "snippet", "tokens", "metadata", "passage"}
    assert hit["passage"] is None  # documents indexed whole (an index of passages names the one that scored)
    assert {"dense", "sparse", "lexical"} == set(hit["scores"]) and hit["tokens"]

    result = run("search", "lava and magma", "insulin", "--mode", "sparse", "--json", "-k", "1")
    assert [p["hits"][0]["id"] for p in json.loads(result.stdout)["results"]] == ["volcano", "diabetes"]

    text = run("search", "first man on the moon", "-k", "2").stdout
    assert "1. moon" in text and "matched:" in text

    info = json.loads(run("info", "--json").stdout)
    assert info["documents"] == 37 and info["settings"]["method"] == "prompteol"
    assert info["model"]["name"] == "smollm2-135m" and info["size_bytes"] > 0
    assert info["stage_seconds"]["forward"] > 0
    text = run("info").stdout
    assert "tokens embedded" in text and "where the time went" in text and "forward" in text


def test_models_lists_presets(run):
    rows = json.loads(run("models", "--json").stdout)
    by_name = {r["name"]: r for r in rows}
    assert by_name["smollm2-135m"]["installed"] and by_name["smollm2-135m"]["default"]
    assert "gemma3-270m" in by_name
    assert by_name["minilm-l6"] | {"installed": True, "default": True, "kind": "dense"} == by_name["minilm-l6"]


def test_user_errors_exit_non_zero_without_traceback(run, tmp_path, monkeypatch):
    monkeypatch.setenv("RETRIEVER_HOME", str(tmp_path / "home"))
    result = run("search", "x", "--index", tmp_path / "missing")
    assert result.exit_code == 1 and "no index at" in result.output and "Traceback" not in result.output
    result = run("search", "x")
    assert result.exit_code == 1 and "no index built yet" in result.output
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"_id": "a", "text": "x"}, '{"_id": "a", "text": "y"}'])
    result = run("index", bad, "--quiet")
    assert result.exit_code == 1 and f"{bad}:2" in result.output and "duplicate id" in result.output
    assert not (tmp_path / "home" / "bad").exists()
    result = run("index", tmp_path / "none.jsonl", "--quiet")
    assert result.exit_code == 1 and "file not found" in result.output


def test_top_k_zero_needs_own_tokens(run):
    result = run("index", DEMO, "--no-own-tokens", "--top-k", "0", "--quiet")
    assert result.exit_code == 2
    assert "top_k must be >= 1" in result.output and "Traceback" not in result.output
