"""The papers' methods against slow, obvious recomputations from transformers' own outputs."""

from __future__ import annotations

import numpy as np
import torch

from retriever.models.encoders import Encoder, make_method
from retriever.models.encoders.base import resolve_layers

from ...conftest import SHARED
from ...helpers.reference import aligned_wva, assert_exact, assert_rounded_from, attention, value_aggregation

TEXTS = ["Hi there", "A cat sits on the mat", "Quantum computers use qubits to solve some problems much "
         "faster than classical machines can, which matters for cryptography."]


def _cos(a, b):
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def _run(backbone, ids, **kw):
    with attention(backbone, "sdpa"), torch.inference_mode():
        return backbone.model(input_ids=torch.tensor([ids]), output_hidden_states=True, **kw)


def test_aligned_wva_equals_attention_weighted_values(backbone):
    encoder = Encoder(backbone, make_method("aligned-wva", layers="last-third"))
    ids = encoder.token_ids([TEXTS[2]])[0][0]
    expected, magnitude = aligned_wva(backbone, ids, resolve_layers("last-third", backbone.num_layers))
    got = encoder.encode([TEXTS[2]])
    # the model's attention output and W_O each round once in its dtype; the reference is float64
    assert_rounded_from(got.dense[0], expected, backbone.dtype, roundings=2, magnitude=magnitude, summed=len(ids))
    assert_exact(got.residual[0], got.dense[0])


def test_va_equals_value_projection_of_normalised_hidden_states(backbone):
    encoder = Encoder(backbone, make_method("va", layers="last-half"))
    ids = encoder.token_ids([TEXTS[1]])[0][0]
    layers = resolve_layers("last-half", backbone.num_layers)
    want = value_aggregation(backbone, ids, layers)
    got = encoder.encode([TEXTS[1]])
    # the values are the model's own; pooling and alignment through W_O run in fp32 whatever its dtype
    assert_rounded_from(got.dense[0], want["dense"], torch.float32, roundings=1, magnitude=want["dense_magnitude"],
                        summed=len(ids) + len(layers))
    assert_rounded_from(got.residual[0], want["residual"], torch.float32, roundings=1,
                        magnitude=want["residual_magnitude"], summed=len(ids) + backbone.hidden_size + len(layers))


def _with_zero_placeholder(backbone, encoder, text):
    """Reference run: the TP prompt's ids, the placeholder's embedding zeroed, no replacement."""
    [wrapped] = encoder.wrapped([text])
    ids, pst = wrapped.ids, wrapped.mark
    with torch.no_grad():
        embeds = backbone.decoder.embed_tokens(torch.tensor([ids])).clone()
    assert backbone.tokenizer.decode(ids[:pst]).endswith("This sentence :")
    embeds[0, pst] = 0
    with attention(backbone, "sdpa"), torch.inference_mode():
        out = backbone.model(inputs_embeds=embeds, output_hidden_states=True)
    return ids, pst, out.hidden_states


def test_tp_with_start_equal_exit_is_promptEOL_with_the_placeholder(backbone):
    encoder = Encoder(backbone, make_method("tp-prompteol", tp_start=3, tp_exit=3, layer=backbone.num_layers))
    ids, pst, hidden = _with_zero_placeholder(backbone, encoder, TEXTS[1])
    assert backbone.tokenizer.decode(ids[pst + 1:]).startswith(' "A cat')
    # the final norm: fp32 in the engine, the model's dtype in transformers (test_encoders.py)
    assert_rounded_from(encoder.encode([TEXTS[1]]).dense[0], hidden[-1][0, -1].float().numpy(), backbone.dtype)
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
    for row, text in enumerate(texts):
        [wrapped] = encoder.wrapped([text])
        width = seen[2].shape[1]
        col = width - len(wrapped.ids) + wrapped.mark
        for i in range(2, 5):  # layers start..exit-1 see the last token's state at the placeholder
            assert torch.equal(seen[i][row, col], seen[i][row, -1])
        assert not torch.equal(seen[1][row, col], seen[1][row, -1])  # before start: untouched
        assert not torch.equal(seen[6][row, col], seen[6][row, -1])  # after exit: runs normally


def test_tp_early_exit_reads_the_chosen_layer(backbone):
    encoder = Encoder(backbone, make_method("tp-prompteol", tp_start=0, tp_exit=0, layer=12))
    _, _, hidden = _with_zero_placeholder(backbone, encoder, TEXTS[0])
    assert_exact(encoder.encode([TEXTS[0]]).dense[0], hidden[12][0, -1].float().numpy())


def test_metaeol_averages_the_eight_published_prompts(backbone):
    import re

    published = re.findall(r"^\d\. `(In this task.*)`$", (SHARED / "docs/methods.md")
                           .read_text(), re.M)
    encoder = Encoder(backbone, make_method("metaeol"))
    assert list(encoder.method.templates) == published and len(published) == 8
    got = encoder.encode(TEXTS[:1])
    alone = [Encoder(backbone, make_method("prompteol")) for _ in published]
    for enc, template in zip(alone, published, strict=True):  # each prompt as its own PromptEOL-like method
        enc.method.templates = (template,)
    want = np.mean([e.encode(TEXTS[:1]).dense[0] for e in alone], axis=0)
    assert_exact(got.dense[0], want.astype(np.float32)) if backbone.dtype == torch.float32 else \
        np.testing.assert_allclose(got.dense[0], want, rtol=0, atol=1e-5 * np.abs(want).max())
    assert got.stats.tokens == sum(len(enc.token_ids(TEXTS[:1])[0][0]) for enc in alone)


def test_tp_resolves_the_papers_layers_and_stores_them(backbone):
    """The early exit is part of TP's recipe: PromptEOL reads round(27/32 L), other prompts the penultimate
    layer; the replacement runs over [1, round(7/32 L)); the index records the numbers."""
    layers = backbone.num_layers
    for name, layer in (("tp-prompteol", round(layers * 27 / 32)), ("tp-cot", layers - 1)):
        encoder = Encoder(backbone, make_method(name))
        params = encoder.method.parameters()
        assert (params["layer"], params["tp_start"], params["tp_exit"]) == (layer, 1, round(layers * 7 / 32))
    assert Encoder(backbone, make_method("prompteol")).method.parameters()["layer"] == layers




def test_model_defaults_are_stored_with_the_index_and_survive_a_table_change(backbone, tmp_path, monkeypatch):
    from retriever import Retriever
    from retriever.models.encoders import defaults

    docs = [{"_id": str(i), "text": t} for i, t in enumerate(TEXTS)]
    monkeypatch.setitem(defaults.MODEL_DEFAULTS, backbone.name, {"va": {"layers": "2-3"}})
    measured = Retriever.build(docs, tmp_path / "measured", backbone=backbone, method="va", legs=("dense",),
                               dense_model=None)  # the LLM's method as the dense leg
    chosen = Retriever.build(docs, tmp_path / "chosen", backbone=backbone, method="va", legs=("dense",),
                             dense_model=None, method_params={"layers": "4-5"})
    assert measured.info()["settings"]["method_params"] == {"layers": "2-3"}
    assert chosen.info()["settings"]["method_params"] == {"layers": "4-5"}  # the caller's choice wins
    monkeypatch.setitem(defaults.MODEL_DEFAULTS, backbone.name, {})  # a later release measures again
    reloaded = Retriever.load(tmp_path / "measured", backbone=backbone)
    expected = Encoder(backbone, make_method("va", layers="2-3")).encode(TEXTS[:1]).dense[0]
    assert _cos(reloaded.searcher.encoder.encode(TEXTS[:1]).dense[0], expected) > 0.9999
    assert _cos(Encoder(backbone, make_method("va")).encode(TEXTS[:1]).dense[0], expected) < 0.99


def test_measured_defaults_of_the_default_model_build_and_run(backbone):
    from retriever.models.encoders.defaults import MODEL_DEFAULTS

    for name, params in MODEL_DEFAULTS.get(backbone.name, {}).items():
        encoder = Encoder(backbone, make_method(name, **params))
        assert np.isfinite(encoder.encode(TEXTS[:2]).dense).all()
