"""Slow, obvious references for the engine's numbers, and tolerances derived from a dtype's rounding.

A bf16 value carries 8 significant bits: one rounding moves it by up to eps/2 of its size (eps = 2^-7), so
a result computed in bf16 and compared with an exact reference is allowed a few eps of the magnitudes that
went into it, never a fixed atol that only fits fp32.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager

import numpy as np
import torch
from transformers import AttentionInterface
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS

from retriever.models.attention import padding_mask, rowwise_attention, spans
from retriever.models.invariance import padded_width


def eps(dtype: torch.dtype) -> float:
    return float(torch.finfo(dtype).eps)


def assert_within(got, want, bound, what: str = "values") -> None:
    """Elementwise |got - want| <= bound, with the worst element named when it fails."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    excess = np.abs(got - want) - np.broadcast_to(np.asarray(bound, np.float64), got.shape)
    worst = int(np.argmax(excess))
    assert excess.flat[worst] <= 0, (f"{what}: element {worst} is {got.flat[worst]!r}, expected "
                                     f"{want.flat[worst]!r} within {np.broadcast_to(bound, got.shape).flat[worst]!r}")


def assert_rounded_from(got, want, dtype: torch.dtype, roundings: float = 2.0, magnitude=None,
                        summed: int = 0) -> None:
    """got equals want up to `roundings` roundings of dtype, each of at most eps/2 of magnitude (|want| by
    default, or the size of what was summed to make each element, where a sum may cancel), plus the
    worst case of an fp32 sum of `summed` terms (one fp32 rounding of the magnitude per term)."""
    want = np.asarray(want, np.float64)
    magnitude = np.abs(want) if magnitude is None else np.asarray(magnitude, np.float64)
    bound = (roundings * eps(dtype) + summed * eps(torch.float32)) / 2 * magnitude
    assert_within(got, want, bound, f"{dtype} result")


def assert_exact(got, want, what: str = "values") -> None:
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape and np.array_equal(got, want), (
        f"{what} differ: max |diff| {np.abs(got.astype(np.float64) - want).max()}")


@contextmanager
def attention(backbone, name: str):
    """Run the model with another attention implementation for a while (transformers' own 'sdpa', say)."""
    previous = backbone.model.config._attn_implementation
    backbone.model.set_attn_implementation(name)
    try:
        yield
    finally:
        backbone.model.set_attn_implementation(previous)


def _capture(records: dict):
    """An attention implementation that answers as the engine's does and records, per layer, the values it
    was given and the attention weights it used, computed plainly in fp32 from the same queries and keys."""
    def run(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
        out, _ = rowwise_attention(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout,
                                   **kwargs)
        n = next(iter(spans(attention_mask, 1, query.shape[2])))  # one text: its real tokens are the last n
        query, key, value = (x[:, :, -n:] for x in (query, key, value))
        groups = query.shape[1] // key.shape[1]
        q, k = query.double(), key.double().repeat_interleave(groups, dim=1)
        logits = q @ k.transpose(2, 3) * (scaling if scaling is not None else query.shape[-1] ** -0.5)
        if kwargs.get("softcap") is not None:
            logits = torch.tanh(logits / kwargs["softcap"]) * kwargs["softcap"]
        pos = torch.arange(n)
        allowed = pos[None, :] <= pos[:, None]
        if kwargs.get("sliding_window") is not None:
            allowed &= pos[:, None] - pos[None, :] < kwargs["sliding_window"]
        weights = torch.softmax(logits.masked_fill(~allowed, float("-inf")), dim=-1)
        records[module.layer_idx] = {"value": value.detach().clone(), "weights": weights}
        return out, weights
    return run


@contextmanager
def capturing(backbone):
    """Values and attention weights of every layer of the passes run inside, one text at a time."""
    records: dict[int, dict] = {}
    AttentionInterface.register("retriever_test_capture", _capture(records))
    ALL_MASK_ATTENTION_FUNCTIONS.register("retriever_test_capture", padding_mask)
    with attention(backbone, "retriever_test_capture"):
        yield records


def run_padded(backbone, ids: list[int]) -> None:
    """One text through the model as the engine's encoder runs it: left-padded to its minimum width (the
    CPU BLAS rounds products of very few rows differently, and the reference must see the same values)."""
    width = padded_width(1, len(ids))
    tokens = torch.zeros((1, width), dtype=torch.long)
    tokens[0, width - len(ids):] = torch.tensor(ids)
    mask = (torch.arange(width) >= width - len(ids)).long()[None]
    with torch.inference_mode():
        backbone.model(input_ids=tokens, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp_min(0))


def float64(module: torch.nn.Module) -> torch.nn.Module:
    return copy.deepcopy(module).double().requires_grad_(False)


def _to_residual(norm, vector: torch.Tensor, magnitude: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A sub-layer output into the residual stream (the sandwich norm where there is one), and how an error
    bounded by magnitude before it is bounded after: an RMS norm scales element i by g_i / rms(o) and
    couples the elements through rms(o) (|delta_i| <= g_i (m_i + |o_i| rms(m) / rms(o)) / rms(o)); the norm
    itself rounds its output once more."""
    if norm is None:
        return vector, magnitude
    norm = float64(norm)
    out, gain = norm(vector), norm(torch.ones_like(vector)).abs()
    rms_o, rms_m = vector.pow(2).mean().sqrt(), magnitude.pow(2).mean().sqrt()
    return out, gain * (magnitude + vector.abs() * rms_m / rms_o) / rms_o + out.abs()


def _bias(parts) -> torch.Tensor:
    bias = parts.output.bias
    return bias.double() if bias is not None else torch.zeros(parts.output.out_features, dtype=torch.float64)


def _heads(backbone, values: torch.Tensor) -> torch.Tensor:
    """(kv_heads, head_dim) rows repeated to the query heads, flattened as W_O reads them."""
    a = backbone.anatomy
    return values.reshape(a.kv_heads, a.head_dim).repeat_interleave(a.heads // a.kv_heads, dim=0).reshape(-1)


def _sandwich(backbone, index: int, sandwich: bool):
    """The norm between layer index's attention and the residual stream: Gemma's post_attention_layernorm
    (modeling_gemma3.py applies it to the attention output), none for Llama-like families."""
    return backbone.layers[index].post_attention_layernorm if sandwich else None


@torch.no_grad()
def value_aggregation(backbone, ids: list[int], layers: list[int], sandwich: bool = False) -> dict[str, np.ndarray]:
    """VA of one text from the values the model handed its attention, in float64: the dense and residual
    vectors, and the magnitudes of what was summed to make each."""
    with capturing(backbone) as records:
        run_padded(backbone, ids)
    out = {"dense": 0, "dense_magnitude": 0, "residual": 0, "residual_magnitude": 0}
    for i in layers:
        v = records[i]["value"][0].double()  # (kv_heads, tokens, head_dim)
        pooled, size = v.mean(1), v.abs().mean(1)  # (kv_heads, head_dim): mean over the text's tokens
        out["dense"] = out["dense"] + pooled.reshape(-1) / len(layers)
        out["dense_magnitude"] = out["dense_magnitude"] + size.reshape(-1) / len(layers)
        parts = backbone.anatomy.attention(i)
        w_o, bias = parts.output.weight.double(), _bias(parts)
        aligned, bound = _to_residual(_sandwich(backbone, i, sandwich), w_o @ _heads(backbone, pooled) + bias,
                                      w_o.abs() @ _heads(backbone, size) + bias.abs())
        out["residual"], out["residual_magnitude"] = out["residual"] + aligned, out["residual_magnitude"] + bound
    return {k: v.numpy() for k, v in out.items()}


@torch.no_grad()
def aligned_wva(backbone, ids: list[int], layers: list[int], sandwich: bool = False):
    """AlignedWVA of one text from the model's attention weights and values, in float64: (vector, magnitude).

    o^l = W_O [sum_j a^{l,h}_{n,j} v^{l,h}_j]_h at the last position n, through the sandwich norm where the
    family has one; magnitude sums |W_O| |z| and |o|, the sizes a model-dtype computation rounds.
    """
    with capturing(backbone) as records:
        run_padded(backbone, ids)
    total, magnitude = 0, 0
    a = backbone.anatomy
    for i in layers:
        weights = records[i]["weights"][0, :, -1]  # (heads, tokens): the last token's attention
        values = records[i]["value"][0].double().repeat_interleave(a.heads // a.kv_heads, dim=0)
        z = torch.einsum("ht,htd->hd", weights, values).reshape(-1)
        zmag = torch.einsum("ht,htd->hd", weights, values.abs()).reshape(-1)
        parts = a.attention(i)
        w_o = parts.output.weight.double()
        o = w_o @ z + _bias(parts)
        added, size = _to_residual(_sandwich(backbone, i, sandwich), o, w_o.abs() @ zmag + o.abs())
        total, magnitude = total + added, magnitude + size
    return total.numpy(), magnitude.numpy()
