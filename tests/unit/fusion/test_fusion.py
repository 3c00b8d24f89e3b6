"""Fusion functions against hand-computed examples, and exact rescoring of one-leg candidates."""

from __future__ import annotations

import numpy as np
import pytest

from retriever.fusion import convex, fuse, min_max, ranks, rrf


def test_ranks_descending_with_stable_ties():
    assert ranks(np.array([0.2, 0.9, 0.5, 0.9])).tolist() == [4, 1, 3, 2]


def test_rrf_hand_computed():
    # candidates a, b, c; dense ranks a=1, b=2, c=3; sparse ranks c=1, a=2, b=3
    scores = {"dense": np.array([0.9, 0.8, 0.1]), "sparse": np.array([5.0, 1.0, 7.0])}
    expected = [1 / 61 + 1 / 62, 1 / 62 + 1 / 63, 1 / 63 + 1 / 61]
    assert np.allclose(rrf(scores, k=60), expected)
    assert np.allclose(rrf(scores, k=1), [1 / 2 + 1 / 3, 1 / 3 + 1 / 4, 1 / 4 + 1 / 2])


def test_convex_hand_computed():
    scores = {"dense": np.array([0.9, 0.7, 0.5]), "sparse": np.array([10.0, 30.0, 20.0])}
    # min-max: dense [1, .5, 0], sparse [0, 1, .5]
    out = convex(scores, {"dense": 0.25, "sparse": 0.75})
    assert np.allclose(out, [0.25, 0.25 * 0.5 + 0.75, 0.75 * 0.5])
    # weights renormalise over the legs present
    assert np.allclose(convex({"dense": scores["dense"]}, {"dense": 0.25, "sparse": 0.75}), [1, 0.5, 0])


def test_min_max_constant_leg_contributes_nothing():
    assert min_max(np.array([3.0, 3.0])).tolist() == [0.0, 0.0]


def test_document_found_by_one_leg_only():
    # d3 came only from the sparse leg; its dense score was computed exactly (0.2), not set to a floor,
    # so it keeps a real dense rank (3 of 3) rather than none.
    scores = {"dense": np.array([0.8, 0.6, 0.2]), "sparse": np.array([0.0, 1.0, 4.0])}
    fused = fuse(scores, "rrf", params={"k": 60})
    assert np.allclose(fused, [1 / 61 + 1 / 63, 1 / 62 + 1 / 62, 1 / 63 + 1 / 61])
    cc = fuse(scores, "convex", weights={"dense": 0.5, "sparse": 0.5})
    assert np.allclose(cc, [0.5 * 1 + 0.5 * 0, 0.5 * 2 / 3 + 0.5 * 0.25, 0.5 * 0 + 0.5 * 1])


def test_unknown_fusion_and_mismatched_legs_fail():
    with pytest.raises(ValueError):
        fuse({"dense": np.zeros(2)}, "sum")
    with pytest.raises(ValueError):
        rrf({"dense": np.zeros(2), "sparse": np.zeros(3)})




def test_dbsf_scales_by_mean_and_three_standard_deviations():
    from retriever.fusion import distribution

    x = np.array([1.0, 2.0, 3.0, 10.0])
    mean, sd = x.mean(), x.std()
    want = (x - (mean - 3 * sd)) / (6 * sd)
    assert np.allclose(distribution(x), want)
    assert np.allclose(distribution(np.full(3, 5.0)), 0)  # no spread: the leg says nothing
    scores = {"a": np.array([0.0, 1.0, 2.0]), "b": np.array([4.0, 0.0, 8.0])}
    fused = fuse(scores, "dbsf", weights={"a": 0.25, "b": 0.75})
    assert np.allclose(fused, 0.25 * distribution(scores["a"]) + 0.75 * distribution(scores["b"]))


def test_tuning_tries_dbsf_and_keeps_it_when_it_wins():
    from retriever.eval.tuning import Scored, tune_weights

    # leg "a" finds the right document; min-max and DBSF differ only in how they weigh it against "b"
    scored = [Scored("q", ["d1", "d2", "d3"], {"a": np.array([3.0, 2.9, 0.0]), "b": np.array([0.0, 1.0, 0.9])})]
    best, tried = tune_weights(scored, {"q": {"d1": 1}}, ["a", "b"], step=0.5)
    assert {t["fusion"] for t in tried} == {"convex", "dbsf", "rrf"}
    assert best["value"] == max(t["value"] for t in tried)
