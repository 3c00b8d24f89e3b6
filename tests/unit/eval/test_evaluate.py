"""STS evaluation and the trec_eval wrapper."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from retriever.errors import InputError
from retriever.eval.evaluate import evaluate, read_sts, sts_spearman

from ...conftest import PAIRS


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




def test_trec_measures_hand_checked():
    qrels = {"q1": {"d1": 1}, "q2": {"d9": 1}}
    run = {"q1": {"d1": 2.0, "d2": 1.0}, "q2": {"d3": 1.0}}
    scores = evaluate(run, qrels)
    assert scores["ndcg_cut_10"] == pytest.approx(0.5)  # q1 perfect, q2 misses
    assert scores["recip_rank"] == pytest.approx(0.5)
    assert evaluate({}, qrels)["ndcg_cut_10"] == 0.0


def test_an_undefined_spearman_is_null_not_nan(tmp_path):
    import json

    one = tmp_path / "one.tsv"
    one.write_text("sentence1\tsentence2\tscore\nA cat.\tA dog.\t3.0\n")
    result = sts_spearman(lambda texts: np.eye(len(texts), 4), one)
    assert result["spearman"] is None and json.loads(json.dumps(result))["spearman"] is None
