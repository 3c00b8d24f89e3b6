"""The hidden-state methods against transformers' own hidden states (its own SDPA attention, the model's dtype),
alone and in padded batches."""

from __future__ import annotations

import numpy as np
import torch

from retriever.models.encoders import Encoder, make_method

from ...helpers.reference import assert_exact, assert_rounded_from, attention

TEXTS = ["Hi", "A cat sits on the mat", "Quantum computers use qubits to solve some problems much faster "
         "than classical machines can, which matters for cryptography."]


def _cos(a, b):
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def _reference(backbone, ids):
    """transformers' hidden states of one unpadded text: hidden[-1] is after the final norm, the rest raw."""
    with attention(backbone, "sdpa"), torch.inference_mode():
        out = backbone.model(input_ids=torch.tensor([ids]), output_hidden_states=True)
    return [h[0].float().numpy() for h in out.hidden_states]


def test_prompteol_is_last_hidden_state_of_the_prompt(backbone):
    encoder = Encoder(backbone, make_method("prompteol"))
    ids = encoder.token_ids([TEXTS[1]])[0][0]
    assert backbone.tokenizer.decode(ids) == 'This sentence : "A cat sits on the mat." means in one word:"'
    hidden = _reference(backbone, ids)
    got = encoder.encode([TEXTS[1]])
    # the engine applies the final norm in fp32 to the model's own last state, transformers in the model's
    # dtype: two roundings of that dtype apart (none in fp32)
    assert_rounded_from(got.dense[0], hidden[-1][-1], backbone.dtype, roundings=2)
    with torch.inference_mode():  # the residual is the pre-norm stream: the final norm maps it onto dense
        normed = backbone.float32(backbone.final_norm)(torch.from_numpy(got.residual[:1])).numpy()[0]
    assert_exact(normed, got.dense[0])
    # an earlier output layer reads the raw residual stream after that layer: the model's own values
    early = Encoder(backbone, make_method("prompteol", layer=10)).encode([TEXTS[1]])
    assert_exact(early.dense[0], hidden[10][-1])
    assert_exact(early.residual[0], hidden[10][-1])


def test_mean_is_average_of_last_hidden_states(backbone):
    encoder = Encoder(backbone, make_method("mean"))
    ids = encoder.token_ids([TEXTS[2]])[0][0]
    hidden = np.asarray(_reference(backbone, ids)[-1], np.float64)
    # each normed state two roundings from transformers' (see above), then an fp32 sum over the tokens
    got = encoder.encode([TEXTS[2]]).dense[0]
    assert_rounded_from(got, hidden.mean(0), backbone.dtype, roundings=2, magnitude=np.abs(hidden).mean(0),
                        summed=len(ids))


def test_truncation_keeps_the_prompt_end_and_is_counted(backbone):
    encoder = Encoder(backbone, make_method("prompteol"), max_tokens=5)
    inputs, truncated = encoder.token_ids(TEXTS)
    assert truncated == 2
    texts = [backbone.tokenizer.decode(ids) for ids in inputs]
    assert all(t.startswith('This sentence : "') and t.endswith('" means in one word:"') for t in texts)
    assert texts[2] == 'This sentence : "Quantum computers use qubits to." means in one word:"'  # 5 tokens, then "."
    assert encoder.encode(TEXTS).stats.truncated == 2


def test_the_whole_prompt_is_tokenized_as_one_string(backbone):
    """As the papers feed it: the model sees the tokens of the prompt string itself, so a text's last '.'
    and the closing quote are one token where the vocabulary has one."""
    tok = backbone.tokenizer
    encoder = Encoder(backbone, make_method("prompteol"))
    text = 'Is a "cat" on the mat?'
    [wrapped] = encoder.wrapped([text])
    prompt = 'This sentence : "Is a \'cat\' on the mat." means in one word:"'  # normalised as published
    assert wrapped.ids == special(tok) + tok(prompt, add_special_tokens=False).input_ids
    assert tok.decode(wrapped.ids[wrapped.start:wrapped.end]).strip().startswith("Is a 'cat' on the mat")
    if len(tok('."', add_special_tokens=False).input_ids) == 1:  # SmolLM2's vocabulary has '."'
        apart = tok("mat.", add_special_tokens=False).input_ids + tok('"', add_special_tokens=False).input_ids
        assert tok('mat."', add_special_tokens=False).input_ids != apart


def special(tokenizer) -> list[int]:
    from retriever.models.encoders.base import special_prefix

    return special_prefix(tokenizer, "a")


def test_batches_respect_the_token_budget(backbone):
    encoder = Encoder(backbone, make_method("prompteol"), batch_tokens=100, max_batch=4)
    lengths = [50, 10, 30, 20, 10, 10, 10, 10, 10, 40]
    groups = encoder.batches(lengths)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    for g in groups:
        assert len(g) <= 4 and (len(g) == 1 or len(g) * max(lengths[i] for i in g) <= 100)
