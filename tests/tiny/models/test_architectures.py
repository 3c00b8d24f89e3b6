"""Every method on every decoder family the hooks serve, from tiny random models built here (no download).

Llama, Qwen2 (biased q/k/v), Gemma 3 (sandwich norms, sliding-window layers shorter than the texts, a
head size unlike hidden / heads), Phi-3 (fused qkv_proj) and GPT-NeoX (fused per-head query_key_value,
LayerNorm, its own names for W_O and the final norm), each saved as a transformers folder and loaded the
way `--model PATH` loads one. GPT-2 has hidden states but no Linear W_O: the value methods refuse it by name.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers

from retriever import RetrieverError
from retriever.models.backbones import load_backbone
from retriever.models.encoders import Encoder, make_method, method_names
from retriever.models.encoders.base import resolve_layers

from ...conftest import TEST_DTYPE
from ...helpers.reference import aligned_wva, assert_exact, assert_rounded_from, attention, value_aggregation

SMALL = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 3, "num_attention_heads": 4}
ARCHITECTURES = {
    "llama": (transformers.LlamaConfig, transformers.LlamaForCausalLM, {"num_key_value_heads": 2}),
    "qwen2": (transformers.Qwen2Config, transformers.Qwen2ForCausalLM, {"num_key_value_heads": 2}),
    "gemma3": (transformers.Gemma3TextConfig, transformers.Gemma3ForCausalLM,
               {"num_key_value_heads": 1, "head_dim": 32, "query_pre_attn_scalar": 32, "sliding_window": 8,
                "layer_types": ["sliding_attention", "full_attention", "sliding_attention"]}),
    "phi3": (transformers.Phi3Config, transformers.Phi3ForCausalLM, {"num_key_value_heads": 2}),
    "gpt_neox": (transformers.GPTNeoXConfig, transformers.GPTNeoXForCausalLM, {"rotary_pct": 0.5}),
}
TEXTS = ["Hi", "A cat sits on the mat", "Quantum computers use qubits to solve some problems much faster than "
         "classical machines can, which matters for cryptography.", "bees"]


def _sandwich(family) -> bool:
    """Whether the family normalises the attention output before the residual stream (Gemma 2/3)."""
    return family.model.config.model_type.startswith("gemma")


def _save(folder, config_class, model_class, tokenizer, **fields):
    vocab = len(tokenizer)
    ids = {"pad_token_id": tokenizer.pad_token_id or 0, "bos_token_id": tokenizer.bos_token_id or 0,
           "eos_token_id": tokenizer.eos_token_id or 0}
    torch.manual_seed(0)
    model = model_class(config_class(vocab_size=vocab, tie_word_embeddings=True, **ids, **fields))
    with torch.no_grad():  # random norms and biases, so that a norm or bias read wrongly shows
        for name, p in model.named_parameters():
            if "norm" in name or name.endswith(".bias"):
                p.add_(torch.randn_like(p) * 0.1)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module", params=list(ARCHITECTURES))
def family(request, tmp_path_factory, tokenizer):
    config_class, model_class, extra = ARCHITECTURES[request.param]
    folder = _save(tmp_path_factory.mktemp(request.param), config_class, model_class, tokenizer,
                   **SMALL, **extra)
    return load_backbone(str(folder), dtype=TEST_DTYPE)


def test_the_engine_attention_runs_per_text_and_equals_transformers_eager(family):
    """A left-padded batch under the engine's attention against each text alone under transformers' own
    eager attention (sliding windows included), in fp32."""
    model = family.model.float()
    try:
        ids = [family.tokenizer(t).input_ids for t in TEXTS]
        width = max(map(len, ids))
        tokens = torch.zeros((len(ids), width), dtype=torch.long)
        mask = torch.zeros_like(tokens)
        for row, seq in enumerate(ids):
            tokens[row, width - len(seq):], mask[row, width - len(seq):] = torch.tensor(seq), 1
        with torch.inference_mode():
            batch = model(input_ids=tokens, attention_mask=mask,
                          position_ids=(mask.cumsum(-1) - 1).clamp_min(0)).logits
            for row, seq in enumerate(ids):
                with attention(family, "eager"):
                    eager = model(input_ids=torch.tensor([seq])).logits[0]
                got = batch[row, width - len(seq):]
                assert float((got - eager).abs().max()) <= 1e-4 * float(eager.abs().max()), f"text {row}"
        assert max(map(len, ids)) > (getattr(model.config.get_text_config(), "sliding_window", None) or 0)
    finally:
        model.to(family.dtype)


@pytest.mark.parametrize("name", method_names())
def test_every_method_runs_and_is_the_same_alone_and_in_a_batch(family, name):
    encoder = Encoder(family, make_method(name))
    batch = encoder.encode(TEXTS)
    assert batch.dense.shape[0] == len(TEXTS) and np.isfinite(batch.dense).all() and np.isfinite(batch.residual).all()
    for i, text in enumerate(TEXTS):
        alone = encoder.encode([text])
        if family.dtype == torch.float32:
            assert_exact(batch.dense[i], alone.dense[0], f"{name} on {text!r}")
            assert_exact(batch.residual[i], alone.residual[0], f"{name} on {text!r}")
        else:
            assert np.abs(batch.dense[i] - alone.dense[0]).max() <= 0.01 * np.abs(alone.dense[0]).max()


def test_aligned_wva_equals_its_attention_weights_reference(family):
    """o^l = W_O sum_j a_j v_j at the last token, through the family's sandwich norm, from the attention
    weights (output_attentions) and the values the model handed its attention."""
    encoder = Encoder(family, make_method("aligned-wva", layers="all"))
    ids = encoder.token_ids([TEXTS[2]])[0][0]
    expected, magnitude = aligned_wva(family, ids, resolve_layers("all", family.num_layers), _sandwich(family))
    got = encoder.encode([TEXTS[2]]).dense[0]
    assert_rounded_from(got, expected, family.dtype, roundings=3, magnitude=magnitude,
                        summed=len(ids) + family.hidden_size)


def test_va_equals_its_values_reference(family):
    encoder = Encoder(family, make_method("va", layers="all"))
    ids = encoder.token_ids([TEXTS[2]])[0][0]
    layers = resolve_layers("all", family.num_layers)
    want = value_aggregation(family, ids, layers, _sandwich(family))
    got = encoder.encode([TEXTS[2]])
    assert_rounded_from(got.dense[0], want["dense"], torch.float32, roundings=1, magnitude=want["dense_magnitude"],
                        summed=len(ids) + len(layers))
    assert_rounded_from(got.residual[0], want["residual"], torch.float32, roundings=2,
                        magnitude=want["residual_magnitude"], summed=len(ids) + family.hidden_size + len(layers))


def test_an_index_of_every_leg_builds_and_searches(family, tmp_path):
    from retriever import Retriever
    from retriever.corpus.documents import Document

    docs = [Document(str(i), t) for i, t in enumerate(TEXTS)]
    index = Retriever.build(docs, tmp_path / "idx", backbone=family)
    hits = index.search("qubits and cryptography", k=2)
    assert hits and set(hits[0].scores) == {"dense", "sparse", "lexical"}


def test_a_family_the_value_hooks_cannot_serve_fails_by_name(tmp_path, tokenizer):
    folder = _save(tmp_path / "gpt2", transformers.GPT2Config, transformers.GPT2LMHeadModel, tokenizer,
                   n_embd=64, n_layer=2, n_head=4)
    gpt2 = load_backbone(str(folder), dtype=TEST_DTYPE)
    assert np.isfinite(Encoder(gpt2, make_method("prompteol")).encode(TEXTS).dense).all()  # hidden states: fine
    expected = (r"GPT2LMHeadModel.*cannot find the attention output projection \(W_O\) of decoder layer \d "
                r"\(looked for o_proj, dense, out_proj\)")
    for name in ("va", "aligned-wva", "tp-aligned-wva"):
        with pytest.raises(RetrieverError, match=expected):
            Encoder(gpt2, make_method(name))
