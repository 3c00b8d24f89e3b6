"""STS evaluation and the trec_eval wrapper."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from scipy.stats import spearmanr

from retriever.cli import main
from retriever.errors import InputError
from retriever.evaluate import evaluate, read_sts, sts_spearman

PAIRS = [("A man is playing a guitar.", "A man plays the guitar.", 4.8),
         ("A dog runs in the park.", "A dog is running on grass.", 4.0),
         ("A woman slices an onion.", "Someone is cutting vegetables.", 3.1),
         ("Kids play football.", "The stock market fell sharply.", 0.2),
         ("A cat sleeps on a sofa.", "A plane takes off at night.", 0.1),
         ("He said \"hello\" twice.", "He greeted them.", 2.5)]


@pytest.fixture
def sts_file(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("sentence1\tsentence2\tscore\n" + "".join(f"{a}\t{b}\t{s}\n" for a, b, s in PAIRS))
    return path


def test_read_sts_keeps_quotes_and_checks_fields(sts_file, tmp_path):
    first, _, gold = read_sts(sts_file)
    assert first[5] == 'He said "hello" twice.' and gold == [p[2] for p in PAIRS]
    bad = tmp_path / "bad.tsv"
    bad.write_text("sentence1\tsentence2\tscore\na\tb\thigh\n")
    with pytest.raises(InputError, match=r"bad.tsv:2.*score"):
        read_sts(bad)
    bad.write_text("a\tb\n")
    with pytest.raises(InputError, match="header"):
        read_sts(bad)


def test_spearman_matches_scipy_on_a_known_encoder(sts_file):
    def encode(texts):  # a 2-d toy embedding whose cosines are easy to recompute
        return np.array([[len(t), t.count("a") + 1.0] for t in texts])

    result = sts_spearman(encode, sts_file)
    first, second, gold = read_sts(sts_file)
    a, b = encode(first), encode(second)
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert result["spearman"] == pytest.approx(spearmanr(cos, gold).statistic * 100)
    assert result["pairs"] == 6 and result["sentences"] == 12


def test_eval_sts_command_with_the_real_model(sts_file):
    out = CliRunner().invoke(main, ["eval", "sts", str(sts_file), "--method", "prompteol,va", "--json"])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.stdout)
    assert [r["method"] for r in rows] == ["prompteol", "va"]
    assert all(-100 <= r["spearman"] <= 100 and r["pairs"] == 6 for r in rows)
    assert rows[0]["spearman"] > 50  # clear-cut pairs: a working embedding orders them
    text = CliRunner().invoke(main, ["eval", "sts", str(sts_file)]).stdout
    assert "prompteol" in text and "spearman" in text


def test_trec_measures_hand_checked():
    qrels = {"q1": {"d1": 1}, "q2": {"d9": 1}}
    run = {"q1": {"d1": 2.0, "d2": 1.0}, "q2": {"d3": 1.0}}
    scores = evaluate(run, qrels)
    assert scores["ndcg_cut_10"] == pytest.approx(0.5)  # q1 perfect, q2 misses
    assert scores["recip_rank"] == pytest.approx(0.5)
    assert evaluate({}, qrels)["ndcg_cut_10"] == 0.0
