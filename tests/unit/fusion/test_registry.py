"""A new fusion is one registry entry made from outside the engine: settings accept it, the CLI builds an
index with it and its own parameter, searches fuse with it, `info` shows it, and tuning tries it on the
weight grid and keeps it when it measures best. No engine file names it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from retriever import IndexSettings, Retriever, RetrieverError
from retriever.cli import main
from retriever.eval.tuning import Scored, tune_weights
from retriever.fusion import Fusion, fuse, min_max, register_fusion, unregister_fusion
from retriever.legs.registry import register, unregister

from ...conftest import DEMO
from ...helpers.toy_leg import TitleLeg


def best_leg(scores, weights, params):
    """Each candidate's best weighted min-max score over the legs, raised to `power`: a max, not a sum."""
    total = sum(weights.get(leg, 0.0) for leg in scores)
    scaled = [weights.get(leg, 0.0) / total * min_max(np.asarray(s, np.float64)) for leg, s in scores.items()]
    return np.max(scaled, axis=0) ** params["power"]


@pytest.fixture
def toy_fusion():
    fusion = register_fusion(Fusion("best-leg", best_leg, weighted=True, params={"power": 1.0}, plainness=3))
    register(TitleLeg)
    yield fusion
    unregister_fusion("best-leg")
    unregister("title")


def test_settings_take_the_toy_fusion_and_its_parameter(toy_fusion):
    settings = IndexSettings(legs=("lexical", "title"), fusion="best-leg", fusion_params={"power": 2})
    assert settings.fusion_params == {"power": 2.0}
    assert IndexSettings(legs=("lexical", "title"), fusion="best-leg").fusion_params == {"power": 1.0}
    with pytest.raises(RetrieverError, match="takes no parameter k"):
        IndexSettings(legs=("lexical", "title"), fusion="best-leg", fusion_params={"k": 60})


def test_the_cli_builds_searches_and_shows_an_index_with_the_toy_fusion(toy_fusion, tmp_path):
    runner = CliRunner()
    out = runner.invoke(main, ["index", str(DEMO), "--index", str(tmp_path / "idx"), "--legs", "lexical,title",
                               "--fusion", "best-leg", "--fusion-param", "power=2", "--weight", "lexical=1",
                               "--weight", "title=1", "--quiet"])
    assert out.exit_code == 0, out.output
    shown = runner.invoke(main, ["info", "--index", str(tmp_path / "idx")])
    assert 'best-leg ({"power": 2.0}' in shown.output, shown.output
    retriever = Retriever.load(tmp_path / "idx")
    hits = retriever.search("the game of chess", k=5)
    run = retriever.searcher.run(["the game of chess"], k=5)
    want = fuse(run.queries[0].scores, "best-leg", {"lexical": 1.0, "title": 1.0}, {"power": 2.0})
    assert [h.score for h in hits] == pytest.approx(sorted(want, reverse=True)[:5])
    listed = runner.invoke(main, ["index", "--help"])
    assert "best-leg" in listed.output
    refused = runner.invoke(main, ["index", str(DEMO), "--index", str(tmp_path / "other"), "--legs", "lexical,title",
                                   "--fusion", "best-leg", "--fusion-param", "k=60"])
    assert refused.exit_code != 0 and "takes no parameter k" in refused.output
    assert not (tmp_path / "other").exists()


def test_tuning_tries_the_toy_fusion_on_the_grid_and_keeps_it_when_it_wins(toy_fusion):
    # d1 is relevant to both queries; leg a ranks it first for q0 only, leg b for q1 only; summed at any
    # weight, d2 or d3 comes first for one of them, taken as a max of the weighted legs it does better
    scored = [Scored("q0", ["d1", "d2", "d3"], {"a": np.array([0.9, 0.8, 0.2]), "b": np.array([0.0, 1.0, 1.0])}),
              Scored("q1", ["d1", "d2", "d3"], {"a": np.array([0.2, 0.2, 0.8]), "b": np.array([0.8, 0.4, 0.7])})]
    best, tried = tune_weights(scored, {"q0": {"d1": 1}, "q1": {"d1": 1}}, ["a", "b"], step=0.25)
    assert {t["fusion"] for t in tried} == {"convex", "dbsf", "rrf", "best-leg"}
    assert sum(t["fusion"] == "best-leg" for t in tried) == 5  # every point of the 0.25 grid
    assert best["fusion"] == "best-leg" and best["params"] == {"power": 1.0}, json.dumps(tried)
    assert best["value"] > max(t["value"] for t in tried if t["fusion"] != "best-leg")
