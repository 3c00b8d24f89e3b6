"""Processes sharing one index on disk: two search while a third builds."""

from __future__ import annotations

import json
import subprocess
import sys

from retriever import Retriever

from ...conftest import DEMO, write_jsonl
from ...model.search.test_concurrency import QUERIES


def test_two_processes_search_while_a_third_builds(tmp_path, tiny_backbone, tiny_model):
    index = Retriever.build(DEMO, tmp_path / "idx", backbone=tiny_backbone)
    expected = [[h.id for h in hits] for hits in index.search_batch(QUERIES, k=5)]
    corpus = write_jsonl(tmp_path / "big.jsonl", [{"_id": str(i), "text": f"entry {i} on subject {i % 31} " * 12}
                                                   for i in range(3000)])
    cli = [sys.executable, "-m", "retriever.cli"]
    builder = subprocess.Popen([*cli, "index", str(corpus), "--model", str(tiny_model), "--dense-model", "none",
                                "--index", str(tmp_path / "other"), "--quiet"], stderr=subprocess.PIPE, text=True)
    searchers = [subprocess.Popen([*cli, "search", *QUERIES, "--index", str(tmp_path / "idx"), "-k", "5", "--json"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for proc in searchers:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        assert [[h["id"] for h in r["hits"]] for r in json.loads(out)["results"]] == expected
    _, err = builder.communicate(timeout=600)
    assert builder.returncode == 0, err
    assert Retriever.load(tmp_path / "other", backbone=tiny_backbone).manifest["documents"] == 3000


