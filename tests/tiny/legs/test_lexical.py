"""A BM25-only index is built, loaded and searched without the model ever running; a damaged vocabulary
is a clear error."""

from __future__ import annotations

import pytest

from retriever import Retriever
from retriever.errors import BadIndexError, RetrieverError

from ...conftest import DEMO
from ...helpers.models import forbid_llm


def test_lexical_only_index_never_runs_the_model(tmp_path, tiny_backbone, monkeypatch):
    from retriever.models.encoders import Encoder

    def no_forward(*args, **kwargs):
        raise AssertionError("the lexical leg must not run the LLM")

    monkeypatch.setattr(Encoder, "encode", no_forward)
    index = Retriever.build(DEMO, tmp_path / "bm25", backbone=tiny_backbone, legs=("lexical",))
    assert index.manifest["tokens_embedded"] == 0 and index.manifest["documents"] == 37
    assert not (tmp_path / "bm25" / "seg-000001" / "dense.npy").exists()
    assert not (tmp_path / "bm25" / "seg-000001" / "u1.npy").exists()
    hits = index.search("why does lava come out of a mountain", k=3)
    assert hits[0].id == "volcano" and set(hits[0].scores) == {"lexical"}
    assert {t["token"] for t in hits[0].tokens} >= {"lava"}
    assert index.search("zzzqx unknownword", k=5) == []  # no shared word: nothing found, not random documents
    with pytest.raises(RetrieverError, match="without the dense leg"):
        index.search("lava", mode="dense")


def test_a_lexical_only_index_loads_without_the_model(tmp_path, tiny_backbone, monkeypatch):

    built = Retriever.build(DEMO, tmp_path / "bm25", backbone=tiny_backbone, legs=("lexical",))
    forbid_llm(monkeypatch)
    loaded = Retriever.load(tmp_path / "bm25")
    assert loaded.backbone is None
    for query in ("why does lava come out of a mountain", "honey bees"):
        assert [(h.id, h.score) for h in loaded.search(query, k=5)] == \
            [(h.id, h.score) for h in built.search(query, k=5)]
    with pytest.raises(RetrieverError, match="without the dense leg"):
        loaded.search("lava", mode="dense")


def test_damaged_vocabulary_is_a_clear_error(tmp_path, tiny_backbone):
    path = tmp_path / "bm25"
    Retriever.build(DEMO, path, backbone=tiny_backbone, legs=("lexical",))
    vocab = path / "seg-000001" / "lexical_vocab.json"
    vocab.write_bytes(b"{" + vocab.read_bytes()[1:])  # same size, broken JSON
    with pytest.raises(BadIndexError, match=r"lexical_vocab\.json"):
        Retriever.load(path, backbone=tiny_backbone)


