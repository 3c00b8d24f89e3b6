"""A leg with an option of its own (tests/helpers/toy_leg.py: --title-min-length) is built, searched with --mode,
shown by info and tuned by `eval beir --tune` from the CLI, with no engine file naming it: its flag, its
manifest entry and its info line come from its config through the registry."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from retriever.cli import main
from retriever.index.store import read_manifest
from retriever.legs.registry import register, unregister

from ...conftest import DEMO
from ...helpers.toy_leg import TitleLeg

QUERIES = {"q1": ("how volcanoes erupt", "volcano"), "q2": ("baking bread", "bread"),
           "q3": ("black holes in space", "black-hole"), "q4": ("how vaccines work", "vaccines"),
           "q5": ("photosynthesis in plants", "photosynthesis")}


@pytest.fixture
def title_leg():
    register(TitleLeg)
    yield TitleLeg
    unregister("title")


def run(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_the_toy_legs_option_is_a_cli_flag_stored_shown_and_searched(title_leg, tmp_path):
    assert "--title-min-length" in run("index", "--help")
    index = str(tmp_path / "idx")
    run("index", str(DEMO), "--index", index, "--legs", "lexical,title", "--title-min-length", "5",
        "--weight", "lexical=0.5", "--weight", "title=0.5", "--quiet")
    assert read_manifest(tmp_path / "idx")["settings"]["title"] == {"min_length": 5}
    assert '"min_length": 5' in run("info", "--index", index)
    hits = json.loads(run("search", "how vaccines work", "--index", index, "--mode", "title", "--json"))
    top = hits["results"][0]["hits"][0]
    # "how" and "work" are shorter than 5 letters: not indexed, so the title matches on "vaccines" alone
    assert top["id"] == "vaccines" and top["scores"] == {"title": 1.0}
    assert [t["token"] for t in top["tokens"]] == ["vaccines"]
    refused = CliRunner().invoke(main, ["index", str(DEMO), "--index", str(tmp_path / "bad"), "--legs",
                                        "lexical,title", "--title-min-length", "0"])
    assert refused.exit_code == 2 and "--title-min-length" in refused.output
    assert not (tmp_path / "bad").exists()


def test_eval_beir_builds_with_the_toy_legs_option_and_tunes_its_fusion(title_leg, tmp_path):
    beir = tmp_path / "toy-beir"
    (beir / "qrels").mkdir(parents=True)
    shutil.copy(DEMO, beir / "corpus.jsonl")
    (beir / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": t}) + "\n"
                                                for q, (t, _) in QUERIES.items()))
    for split, ids in (("train", ["q1", "q2", "q3"]), ("test", ["q4", "q5"])):
        rows = "".join(f"{q}\t{QUERIES[q][1]}\t1\n" for q in ids)
        (beir / "qrels" / f"{split}.tsv").write_text("query-id\tcorpus-id\tscore\n" + rows)
    report = json.loads(run("eval", "beir", str(beir), "--index", str(tmp_path / "idx"), "--legs", "lexical,title",
                            "--title-min-length", "4", "--tune", "--tune-step", "0.25", "--quiet", "--json"))
    assert set(report["results"]) == {"lexical", "title", "hybrid"}
    assert report["tuning"]["settings_tried"] > 1 and report["fusion"]["tuned"]["split"] == "train"
    manifest = read_manifest(tmp_path / "idx")
    assert manifest["settings"]["title"] == {"min_length": 4} and manifest["tuned"]["queries"] == 3


def test_a_leg_named_like_a_setting_or_the_fused_mode_is_refused():
    from retriever import IndexSettings, RetrieverError

    shadowing = type("Shadowing", (TitleLeg,), {"name": "weights"})
    register(shadowing)
    try:
        with pytest.raises(RetrieverError, match="a leg is named like a setting: weights"):
            IndexSettings()
    finally:
        unregister("weights")
    with pytest.raises(RetrieverError, match="fused mode"):
        register(type("Hybrid", (TitleLeg,), {"name": "hybrid"}))
