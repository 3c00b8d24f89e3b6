"""The key-token leg without the LLM at query time (the doc-only recipe), its folds of a word's variants and
its BM25-shaped scorings, against slow references; and the int8 forward pass."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from retriever import Retriever
from retriever.cli.main import main
from retriever.legs.keytokens.config import SparseConfig
from retriever.legs.keytokens.own_tokens import canonical_ids, excluded_token_ids, noise_token_ids
from retriever.settings import IndexSettings

from ...conftest import DEMO
from ...helpers.models import forbid_llm

OWN = {"query_side": "own"}


@pytest.fixture(scope="module")
def indexes(tmp_path_factory, tiny_backbone):
    root = tmp_path_factory.mktemp("doc-only")
    configs = {"own": SparseConfig(**OWN, idf="documents"), "model": SparseConfig(query_side="model"),
               "own-idf": SparseConfig(**OWN, idf="both"), "fold": SparseConfig(**OWN, fold="max", stem=True),
               "bm25": SparseConfig(**OWN, scoring="bm25"), "bm25-count": SparseConfig(**OWN, scoring="bm25-count")}
    return {name: Retriever.build(DEMO, root / name, backbone=tiny_backbone,
                                  settings=IndexSettings(legs=("sparse", "lexical"), sparse=config))
            for name, config in configs.items()}


def _id(tokenizer, text: str) -> int:
    ids = tokenizer(text, add_special_tokens=False).input_ids
    assert len(ids) == 1, text
    return ids[0]


def test_case_and_space_variants_fold_into_the_spaced_lowercase_token(tokenizer):
    excluded = excluded_token_ids(tokenizer) + noise_token_ids(tokenizer)
    canon = canonical_ids(tokenizer, len(tokenizer), excluded)
    target = _id(tokenizer, " target")
    for variant in (" Target", "target", "Target"):
        assert canon[_id(tokenizer, variant)] == target, variant
    assert canon[_id(tokenizer, " targets")] == _id(tokenizer, " targets")  # another word without the stem
    stemmed = canonical_ids(tokenizer, len(tokenizer), excluded, stem=True)
    assert stemmed[_id(tokenizer, " targets")] == stemmed[_id(tokenizer, " targeted")] == stemmed[target]
    assert all(canon[t] == t for t in excluded)  # noise and control tokens never join a word
    texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])  # the reference: group by reading
    sample = np.random.default_rng(0).choice(len(tokenizer), 2000, replace=False)
    for t in sample:
        if t not in set(excluded):
            assert texts[canon[t]].strip().lower() == texts[t].strip().lower()


def test_a_search_that_needs_no_llm_does_not_load_it(indexes, tiny_model, monkeypatch):
    forbid_llm(monkeypatch)
    r = Retriever.load(indexes["own"].path)
    assert r.backbone is None and r.tokenizer is not None
    hits = r.search("honey bees", k=5)
    assert hits and hits[0].tokens  # the per-hit explanation stays
    assert {t["token"].lower() for t in hits[0].tokens} & {"honey", "bees"}
    assert Retriever.load(indexes["model"].path, mode="lexical").backbone is None
    with pytest.raises(pytest.fail.Exception):
        Retriever.load(indexes["model"].path)  # the LLM's query side still needs it


def test_own_token_queries_score_the_documents_weights_over_the_querys_own_tokens(indexes, tokenizer):
    for name in ("own", "own-idf", "bm25", "bm25-count"):
        r = Retriever.load(indexes[name].path)
        leg = r.searcher.leg("sparse")
        on_query = leg.config.idf == "both" and leg.config.scoring == "weighted"
        assert on_query == (name == "own-idf")
        query = "How do honey bees make wax?"
        own = {t for t in leg.own([query])[0] if t not in leg.excluded}  # canonical ids (folds tested above)
        rows = leg.index.doc_rows.toarray()
        weights = leg.idf if on_query else np.ones(rows.shape[1], np.float32)
        want = sum(rows[:, t] * weights[t] for t in own)
        hits = r.search(query, k=5, mode="sparse", explain=False)
        order = np.argsort(-want, kind="stable")[:len(hits)]
        assert [h.score for h in hits] == pytest.approx(list(want[order]), rel=1e-5), name


def test_folded_documents_hold_distinct_words_and_a_plural_finds_its_singular(indexes, tokenizer):
    r = Retriever.load(indexes["fold"].path)
    leg = r.searcher.leg("sparse")
    texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
    import Stemmer

    stem = Stemmer.Stemmer("english").stemWord
    rows = leg.index.doc_rows
    for d in range(rows.shape[0]):
        words = [stem(texts[t].strip().lower()) for t in rows.indices[rows.indptr[d]:rows.indptr[d + 1]]]
        assert len(words) == len(set(words)), d  # K expansions are K distinct words
    plural = r.search("bees", k=37, mode="sparse", explain=False)
    singular = r.search("bee", k=37, mode="sparse", explain=False)
    assert plural and [h.id for h in plural] == [h.id for h in singular]


def _stored_rows(r):
    """The key-token rows as the build wrote them (before any corpus statistic)."""
    from retriever.index.segments import segments_of
    from retriever.legs.keytokens.leg import ROWS

    segment = segments_of(r.path, r.manifest)[0]
    return segment.csr(ROWS, (segment.rows, r.manifest["vocab_size"]))


def test_bm25_count_rows_weigh_each_own_token_by_its_count_in_the_text(indexes):
    from collections import Counter

    from retriever.index.store import stored_contents

    plain, counted = indexes["bm25"], indexes["bm25-count"]
    leg = plain.searcher.leg("sparse")
    owns = leg.own(stored_contents(plain.searcher.documents))
    a, b = _stored_rows(plain).toarray(), _stored_rows(counted).toarray()
    repeated = 0
    for d, own in enumerate(owns):
        for t, count in Counter(t for t in own if t not in leg.excluded).items():
            assert b[d, t] == pytest.approx(a[d, t] * count, rel=1e-6)
            repeated += count > 1
    assert repeated  # the demo repeats words: the test saw counts above 1


def test_an_add_loads_the_llm_the_searches_did_not_need(indexes, tmp_path, tiny_model):
    import shutil

    shutil.copytree(indexes["own"].path, tmp_path / "idx")
    r = Retriever.load(tmp_path / "idx")
    assert r.backbone is None
    r.add([{"_id": "wax", "text": "Beeswax candles burn slowly."}])
    assert r.backbone is not None and r.search("beeswax candles", k=1, mode="sparse")[0].id == "wax"


def test_the_cli_searches_own_token_queries_without_the_llm(indexes, monkeypatch, capsys):
    forbid_llm(monkeypatch)
    with pytest.raises(SystemExit) as done:
        main(["search", "--index", str(indexes["own"].path), "--json", "honey bees"])
    assert done.value.code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["results"] if isinstance(out, dict) else out


def test_int8_quantizes_the_decoder_layers_only(tiny_model):
    from retriever.models.backbones import load_backbone
    from retriever.models.encoders import Encoder, make_method

    fp32 = load_backbone(str(tiny_model), dtype="float32")
    int8 = load_backbone(str(tiny_model), dtype="int8")
    quantized = torch.ao.nn.quantized.dynamic.Linear
    assert any(isinstance(m, quantized) for m in int8.layers.modules())
    assert not any(type(m) is torch.nn.Linear for m in int8.layers.modules())
    assert int8.describe()["dtype"] == "int8" and int8.dtype == torch.float32
    assert torch.equal(int8.unembedding_fp32, fp32.unembedding_fp32)  # W_U and the final norm stay fp32
    texts = ["Honey bees make wax.", "A rover landed on Mars."]
    a = Encoder(fp32, make_method("prompteol"), 64).encode(texts).residual
    b = Encoder(int8, make_method("prompteol"), 64).encode(texts).residual
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert not np.array_equal(a, b) and cos.min() > 0.8
