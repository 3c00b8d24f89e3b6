"""Batch-invariant attention: every text attends over its own tokens only, exactly as it would alone.

Why a text's vectors moved with its batch: in a left-padded batch the attention kernels see each row at the
batch's width, and both where the real tokens fall inside the kernels' blocks and vector lanes, and which
block sizes a fused kernel picks (SDPA chooses them by sequence length), depend on the other texts. In fp32
that moves the last bits; in bf16, where every layer's output is rounded to 8 bits of mantissa, it moved a
query's key-token scores by up to 12% on the demo index. Every other operation of a decoder works on one
position at a time (linear layers, norms, rotary embeddings, activations), and is the same per row whatever
the batch (checked in tests/model/models/test_invariance.py).

So attention runs per text, on that text's span, through the same SDPA call transformers makes for one
unpadded text: texts of the same length share a call, padded positions get zeros, and a text's vectors are
identical alone and in any batch, in any dtype. Sliding-window layers (Gemma 3) get the window as an
explicit mask once a text is longer than it; logit soft-capping (Gemma 2) runs the plain maths.

Registered with transformers as the attention implementation "retriever_rowwise"; the model receives the
2D padding mask (left padding: the real tokens of each row are its last ones).
"""

from __future__ import annotations

import weakref

import torch

# transformers is imported where it is used, not here: importing it costs seconds, and every CLI command that
# fails on its input (or needs no model) must answer without paying for it.

NAME = "retriever_rowwise"
_last: tuple = (lambda: None, {})  # (weak ref to a padding mask, its groups): one mask serves every layer of a pass


def padding_mask(*, attention_mask: torch.Tensor | None = None, **_kwargs) -> torch.Tensor | None:
    """The mask 'function' for this implementation: the 2D padding mask itself, rows resolved at attention."""
    return attention_mask


def spans(mask: torch.Tensor | None, batch: int, width: int) -> dict[int, list[int]]:
    """Rows grouped by their number of real tokens, which must be the row's last ones (left padding)."""
    if mask is None:
        return {width: list(range(batch))}
    global _last
    seen, groups = _last  # read once: another thread may replace it, never half-way
    if seen() is mask:
        return groups
    if mask.dim() != 2:
        raise ValueError(f"{NAME} attention takes a 2D padding mask, not shape {tuple(mask.shape)}")
    flags = mask.bool().cpu()
    lengths = flags.sum(1)
    columns = torch.arange(flags.shape[1])
    if not torch.equal(flags, columns >= (flags.shape[1] - lengths)[:, None]):
        raise ValueError(f"{NAME} attention needs left padding: each row's real tokens must be its last ones")
    groups = {}
    for row, length in enumerate(lengths.tolist()):
        groups.setdefault(int(length), []).append(row)
    _last = (weakref.ref(mask), groups)
    return groups


def _window_mask(length: int, window: int, device: torch.device) -> torch.Tensor:
    """Causal and within the sliding window (a query sees the window - 1 tokens before it and itself)."""
    q = torch.arange(length, device=device)[:, None]
    k = torch.arange(length, device=device)[None, :]
    return ((k <= q) & (q - k < window))[None, None]


def _softcapped(module, query, key, value, scaling: float, softcap: float, mask: torch.Tensor | None):
    """Plain attention with tanh soft-capping of the logits (Gemma 2), in the query's dtype, softmax in fp32."""
    groups = query.shape[1] // key.shape[1]
    from transformers.integrations.sdpa_attention import repeat_kv

    key, value = repeat_kv(key, groups), repeat_kv(value, groups)
    logits = torch.matmul(query, key.transpose(2, 3)) * scaling
    logits = torch.tanh(logits / softcap) * softcap
    length = query.shape[2]
    allowed = mask if mask is not None else torch.ones(length, length, dtype=torch.bool, device=query.device).tril()
    logits = logits.masked_fill(~allowed, torch.finfo(logits.dtype).min)
    weights = torch.softmax(logits, dim=-1, dtype=torch.float32).to(query.dtype)
    return torch.matmul(weights, value).transpose(1, 2).contiguous()


def rowwise_attention(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                      attention_mask: torch.Tensor | None, scaling: float | None = None, dropout: float = 0.0,
                      **kwargs) -> tuple[torch.Tensor, None]:
    """Attention for (batch, heads, width, dim) inputs, each row over its own tokens; returns (batch, width,
    heads, dim) as transformers' attention functions do."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    batch, heads, width, _ = query.shape
    out = query.new_zeros(batch, width, heads, value.shape[-1])
    window, softcap = kwargs.get("sliding_window"), kwargs.get("softcap")
    scaling = scaling if scaling is not None else query.shape[-1] ** -0.5
    for length, rows in spans(attention_mask, batch, width).items():
        if length == 0:
            continue
        index = torch.tensor(rows, device=query.device) if len(rows) < batch else None
        q, k, v = (x[:, :, width - length:] if index is None else x[index, :, width - length:]
                   for x in (query, key, value))
        mask = _window_mask(length, window, query.device) if window is not None and length > window else None
        if softcap is not None:
            got = _softcapped(module, q, k, v, scaling, softcap, mask)
        else:
            got, _ = sdpa_attention_forward(module, q, k, v, mask, dropout=dropout, scaling=scaling,
                                            is_causal=mask is None and getattr(module, "is_causal", True))
        if index is None:
            out[:, width - length:] = got
        else:
            out[index, width - length:] = got
    return out, None


def register() -> str:
    """Make the implementation known to transformers (idempotent); returns its name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS

    AttentionInterface.register(NAME, rowwise_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, padding_mask)
    return NAME
