"""`retriever eval beir` on a small BEIR folder made from the demo corpus."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from retriever import Retriever
from retriever.errors import InputError
from retriever.eval.beir import evaluate_beir, read_trec
from retriever.eval.evaluate import retrieval_measures

from ...conftest import DEMO, write_jsonl

TEST = {"q1": ("why does lava come out of a mountain", "volcano"), "q2": ("how do bees make honey", "bees"),
        "q3": ("fix a flat tire on my bike", "bicycle"), "q4": ("insulin and blood sugar", "diabetes"),
        "q5": ("first man to walk on the moon", "moon"), "q6": ("red planet rovers", "mars"),
        "chess": ("opening moves of a board game", "chess")}  # a query id that is also a document id
TRAIN = {"t1": ("brewing espresso beans", "coffee"), "t2": ("germs that survive drugs", "antibiotics"),
         "t3": ("ancient Egyptian tombs", "pyramids"), "t4": ("how plants turn light into sugar", "photosynthesis"),
         "t5": ("a puppy that bites", "dogs"), "t6": ("sleep and memory", "sleep")}

# graded judgments: a second, less relevant document, so the measures are not all perfect
SECOND = {"q1": {"earthquake": 1}, "q3": {"electric-car": 1}, "q5": {"mars": 1}, "q6": {"moon": 1},
          "t1": {"tea": 1}, "t2": {"vaccines": 1}, "t3": {"rome": 1}}


def make_beir(folder: Path) -> Path:
    folder.mkdir(parents=True)
    shutil.copy(DEMO, folder / "corpus.jsonl")
    write_jsonl(folder / "queries.jsonl", [{"_id": q, "text": t} for q, (t, _) in {**TEST, **TRAIN}.items()])
    (folder / "qrels").mkdir()
    for split, queries in (("test", TEST), ("train", TRAIN)):
        rows = "".join(f"{q}\t{doc}\t{grade}\n" for q, (_, top) in queries.items()
                       for doc, grade in {top: 2, **SECOND.get(q, {})}.items())
        (folder / "qrels" / f"{split}.tsv").write_text("query-id\tcorpus-id\tscore\n" + rows)
    return folder


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, backbone):
    root = tmp_path_factory.mktemp("beir")
    folder = make_beir(root / "mini")
    report = evaluate_beir(folder, root / "out", index_dir=root / "index", backbone=backbone, tune=True,
                           tune_step=0.25, depth=20, make_plot=True)
    return folder, root, report


def test_every_leg_and_the_fusion_are_reported_from_the_run_files(evaluated):
    _, root, report = evaluated
    assert set(report["results"]) == {"dense", "sparse", "lexical", "hybrid"}
    qrels = {q: {doc: 2, **SECOND.get(q, {})} for q, (_, doc) in TEST.items()}
    for name, values in report["results"].items():
        run = read_trec(root / "out" / f"run.{name}.trec")
        assert set(run) <= set(TEST) and all(len(docs) <= 20 for docs in run.values())
        assert retrieval_measures(run, qrels) == pytest.approx(values)  # the file is what was scored
        assert 0 < values["nDCG@10"] <= 1 and values["MRR@10"] > 0
    saved = json.loads((root / "out" / "report.json").read_text())
    assert saved["results"] == report["results"]
    assert any(values["nDCG@10"] < 1 for values in report["results"].values())  # graded, not all perfect
    assert "| hybrid |" in (root / "out" / "report.md").read_text()
    assert (root / "out" / "report.png").stat().st_size > 1000


def test_tuning_is_stored_in_the_index_and_never_worse_than_a_leg_on_its_split(evaluated, backbone):
    _, root, report = evaluated
    tuned = report["tuning"]
    assert tuned["split"] == "train" and tuned["settings_tried"] > 10
    assert tuned["value"] >= max(tuned["legs_alone"].values()) - 1e-9
    reloaded = Retriever.load(root / "index", backbone=backbone)
    assert reloaded.manifest["tuned"]["value"] == tuned["value"]
    assert reloaded.searcher.settings.fusion == report["fusion"]["fusion"]
    assert reloaded.searcher.settings.weights == report["fusion"]["weights"]


def test_reported_hybrid_is_what_search_returns(evaluated, backbone):
    _, root, _ = evaluated
    retriever = Retriever.load(root / "index", backbone=backbone)
    run = read_trec(root / "out" / "run.hybrid.trec")
    for qid in ("q1", "q4", "q6"):
        hits = retriever.search(TEST[qid][0], k=10, explain=False)
        expected = sorted(run[qid].items(), key=lambda ds: -ds[1])[:10]
        assert [h.id for h in hits] == [d for d, _ in expected]


def test_identical_ids_are_dropped_only_when_asked(evaluated, backbone):
    folder, root, _ = evaluated
    kept = evaluate_beir(folder, root / "kept", index_dir=root / "index", backbone=backbone, depth=20)
    dropped = evaluate_beir(folder, root / "dropped", index_dir=root / "index", backbone=backbone, depth=20,
                            ignore_identical_ids=True)
    assert "chess" in read_trec(root / "kept" / "run.lexical.trec")["chess"]
    for name in dropped["results"]:
        run = read_trec(root / "dropped" / f"run.{name}.trec")
        assert "chess" not in run.get("chess", {}) and len(run.get("chess", {})) <= 20  # may find nothing else
    assert kept["results"]["lexical"]["nDCG@10"] >= dropped["results"]["lexical"]["nDCG@10"] - 1e-9


def test_tuning_on_the_reported_split_and_another_corpus_are_refused(evaluated, backbone, tmp_path):
    folder, root, _ = evaluated
    with pytest.raises(InputError, match="tuning on the reported split"):
        evaluate_beir(folder, tmp_path / "o", index_dir=root / "index", backbone=backbone, tune=True,
                      tune_split="test")
    other = make_beir(tmp_path / "other")
    lines = (other / "corpus.jsonl").read_text().splitlines()
    (other / "corpus.jsonl").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(InputError, match="not built from this corpus"):
        evaluate_beir(other, tmp_path / "o", index_dir=root / "index", backbone=backbone)
    with pytest.raises(InputError, match="no qrels for split 'dev'"):
        evaluate_beir(folder, tmp_path / "o", index_dir=root / "index", backbone=backbone, split="dev")


def test_cli_eval_beir_lexical_only(tmp_path):
    from click.testing import CliRunner

    from retriever.cli.main import main

    folder = make_beir(tmp_path / "mini")
    args = ["eval", "beir", str(folder), "--legs", "lexical", "--index", str(tmp_path / "bm25"), "--quiet"]
    result = CliRunner().invoke(main, [*args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report["results"]) == {"lexical"} and report["results"]["lexical"]["nDCG@10"] > 0.5
    assert (tmp_path / "bm25-eval" / "test" / "run.lexical.trec").exists()
    result = CliRunner().invoke(main, [*args, "--tune", "--tune-split", "test"])
    assert result.exit_code == 1 and "tuning on the reported split" in result.output
    assert "Traceback" not in result.output
