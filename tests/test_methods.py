"""The papers' methods against slow, obvious recomputations from transformers' own outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from retriever.encoders import Encoder, make_method, method_names
from retriever.encoders.base import resolve_layers

TEXTS = ["Hi there", "A cat sits on the mat", "Quantum computers use qubits to solve some problems much "
         "faster than classical machines can, which matters for cryptography."]


def _cos(a, b):
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


@pytest.fixture
def eager(backbone):
    """Attention weights need the eager kernel; the hooks under test run the same maths either way."""
    previous = backbone.model.config._attn_implementation
    backbone.model.set_attn_implementation("eager")
    yield backbone
    backbone.model.set_attn_implementation(previous)


def _run(backbone, ids, **kw):
    with torch.inference_mode():
        return backbone.model(input_ids=torch.tensor([ids]), output_hidden_states=True, **kw)


def test_aligned_wva_equals_attention_weighted_values(eager):
    backbone = eager
    method = make_method("aligned-wva", layers="last-third")
    encoder = Encoder(backbone, method)
    ids = encoder.token_ids([TEXTS[2]])[0][0]
    values = {}
    layers = resolve_layers("last-third", backbone.num_layers)
    hooks = [backbone.layers[i].self_attn.v_proj.register_forward_hook(
        lambda m, a, out, i=i: values.__setitem__(i, out[0].float())) for i in layers]
    try:
        out = _run(backbone, ids, output_attentions=True)
    finally:
        for h in hooks:
            h.remove()
    config = backbone.model.config
    heads, kv = config.num_attention_heads, config.num_key_value_heads
    expected = 0
    for i in layers:
        attn = out.attentions[i][0, :, -1, :].float()  # (heads, tokens): the last token's distribution
        v = values[i].view(len(ids), kv, -1).transpose(0, 1)  # (kv, tokens, head_dim)
        z = torch.stack([attn[h] @ v[h // (heads // kv)] for h in range(heads)])  # (heads, head_dim)
        with torch.inference_mode():
            expected = expected + backbone.layers[i].self_attn.o_proj(z.reshape(1, -1).to(backbone.dtype))[0].float()
    got = encoder.encode([TEXTS[2]])
    assert np.allclose(got.dense[0], expected.numpy(), atol=2e-3, rtol=1e-3)
    assert np.allclose(got.residual[0], expected.numpy(), atol=2e-3, rtol=1e-3)


def test_va_equals_value_projection_of_normalised_hidden_states(backbone):
    method = make_method("va", layers="last-half")
    encoder = Encoder(backbone, method)
    ids = encoder.token_ids([TEXTS[1]])[0][0]
    hidden = _run(backbone, ids).hidden_states
    layers = resolve_layers("last-half", backbone.num_layers)
    config = backbone.model.config
    heads, kv = config.num_attention_heads, config.num_key_value_heads
    dense, residual = 0, 0
    with torch.inference_mode():
        for i in layers:
            layer = backbone.layers[i]
            v = layer.self_attn.v_proj(layer.input_layernorm(hidden[i][0])).float().mean(0)  # mean over tokens
            dense = dense + v / len(layers)
            repeated = v.view(kv, -1).repeat_interleave(heads // kv, dim=0).reshape(1, -1)
            residual = residual + layer.self_attn.o_proj(repeated)[0].float()
    got = encoder.encode([TEXTS[1]])
    assert np.allclose(got.dense[0], dense.numpy(), atol=1e-4, rtol=1e-4)
    assert np.allclose(got.residual[0], residual.numpy(), atol=1e-3, rtol=1e-3)


def _with_zero_placeholder(backbone, encoder, text):
    """Reference run: the TP prompt's ids, the placeholder's embedding zeroed, no replacement."""
    ids = encoder.token_ids([text])[0][0]
    with torch.no_grad():
        embeds = backbone.decoder.embed_tokens(torch.tensor([ids])).clone()
    pst = len(encoder.prefix_ids) - len(backbone.tokenizer(' "', add_special_tokens=False).input_ids) - 1
    embeds[0, pst] = 0
    with torch.inference_mode():
        out = backbone.model(inputs_embeds=embeds, output_hidden_states=True)
    return ids, pst, out.hidden_states


def test_tp_with_start_equal_exit_is_promptEOL_with_the_placeholder(backbone):
    encoder = Encoder(backbone, make_method("tp-prompteol", tp_start=3, tp_exit=3))
    ids, pst, hidden = _with_zero_placeholder(backbone, encoder, TEXTS[1])
    assert backbone.tokenizer.decode(ids[pst + 1:]).startswith(' "A cat')
    assert np.allclose(encoder.encode([TEXTS[1]]).dense[0], hidden[-1][0, -1].float().numpy(), atol=1e-3)
    plain = Encoder(backbone, make_method("prompteol")).encode([TEXTS[1]]).dense[0]
    assert _cos(plain, encoder.encode([TEXTS[1]]).dense[0]) < 0.99999  # the placeholder changes something


def test_tp_places_last_token_state_at_placeholder(backbone, monkeypatch):
    method = make_method("tp-prompteol", tp_start=2, tp_exit=5)
    encoder = Encoder(backbone, method)
    seen = {}
    original = method.attach

    def attach_and_watch(bb, batch):
        handles, result = original(bb, batch)
        def watch(i):
            def hook(_module, args, kwargs):
                seen[i] = (args[0] if args else kwargs["hidden_states"]).clone()
            return hook

        for i in range(1, 7):
            handles.append(bb.layers[i].register_forward_pre_hook(watch(i), with_kwargs=True))
        return handles, result

    monkeypatch.setattr(method, "attach", attach_and_watch)
    texts = [TEXTS[1], TEXTS[0]]  # longest first: batch rows follow this order
    encoder.encode(texts)  # one left-padded batch of two lengths
    pst_len = len(backbone.tokenizer(' "', add_special_tokens=False).input_ids) + 1
    for row, text in enumerate(texts):
        inputs = encoder.token_ids([text])[0][0]
        width = seen[2].shape[1]
        col = width - len(inputs) + len(encoder.prefix_ids) - pst_len
        for i in range(2, 5):  # layers start..exit-1 see the last token's state at the placeholder
            assert torch.equal(seen[i][row, col], seen[i][row, -1])
        assert not torch.equal(seen[1][row, col], seen[1][row, -1])  # before start: untouched
        assert not torch.equal(seen[6][row, col], seen[6][row, -1])  # after exit: runs normally


def test_tp_early_exit_reads_the_chosen_layer(backbone):
    encoder = Encoder(backbone, make_method("tp-prompteol", tp_start=0, tp_exit=0, layer=12))
    _, _, hidden = _with_zero_placeholder(backbone, encoder, TEXTS[0])
    assert np.allclose(encoder.encode([TEXTS[0]]).dense[0], hidden[12][0, -1].float().numpy(), atol=1e-3)


@pytest.mark.parametrize("name", method_names())
def test_every_method_same_alone_and_in_padded_batch(backbone, name):
    encoder = Encoder(backbone, make_method(name))
    batch = encoder.encode(TEXTS)
    assert batch.residual.shape == (3, backbone.hidden_size)
    for i, text in enumerate(TEXTS):
        alone = encoder.encode([text])
        assert _cos(alone.dense[0], batch.dense[i]) > 0.999
        assert _cos(alone.residual[0], batch.residual[i]) > 0.999


def test_metaeol_averages_eight_prompts(backbone):
    encoder = Encoder(backbone, make_method("metaeol"))
    assert len(encoder.prompts) == 8
    stats = encoder.encode(TEXTS[:1]).stats
    assert stats.tokens == sum(len(p) + len(s) for p, s in encoder.prompts) + 8 * len(
        backbone.tokenizer("Hi there.", add_special_tokens=False).input_ids)


def test_bad_method_parameters_are_clear():
    from retriever import RetrieverError

    with pytest.raises(RetrieverError, match="unknown method 'tp-mean'"):
        make_method("tp-mean")
    with pytest.raises(RetrieverError, match="bad parameters for method 'va'"):
        make_method("va", layer=3)
    with pytest.raises(RetrieverError, match="apply to tp- methods only"):
        make_method("prompteol", tp_start=1)


def test_model_defaults_are_stored_with_the_index_and_survive_a_table_change(backbone, tmp_path, monkeypatch):
    from retriever import Retriever
    from retriever.encoders import defaults

    docs = [{"_id": str(i), "text": t} for i, t in enumerate(TEXTS)]
    monkeypatch.setitem(defaults.MODEL_DEFAULTS, backbone.name, {"va": {"layers": "2-3"}})
    measured = Retriever.build(docs, tmp_path / "measured", backbone=backbone, method="va", legs=("dense",))
    chosen = Retriever.build(docs, tmp_path / "chosen", backbone=backbone, method="va", legs=("dense",),
                             method_params={"layers": "4-5"})
    assert measured.info()["settings"]["method_params"] == {"layers": "2-3"}
    assert chosen.info()["settings"]["method_params"] == {"layers": "4-5"}  # the caller's choice wins
    monkeypatch.setitem(defaults.MODEL_DEFAULTS, backbone.name, {})  # a later release measures again
    reloaded = Retriever.load(tmp_path / "measured", backbone=backbone)
    expected = Encoder(backbone, make_method("va", layers="2-3")).encode(TEXTS[:1]).dense[0]
    assert _cos(reloaded.searcher.encoder.encode(TEXTS[:1]).dense[0], expected) > 0.9999
    assert _cos(Encoder(backbone, make_method("va")).encode(TEXTS[:1]).dense[0], expected) < 0.99


def test_measured_defaults_of_the_default_model_build_and_run(backbone):
    from retriever.encoders.defaults import MODEL_DEFAULTS

    for name, params in MODEL_DEFAULTS.get(backbone.name, {}).items():
        encoder = Encoder(backbone, make_method(name, **params))
        assert np.isfinite(encoder.encode(TEXTS[:2]).dense).all()
