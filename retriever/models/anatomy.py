"""The parts of a decoder-only model that the embedding methods hook, found by role rather than by name.

Families spell the same parts differently: Llama, Qwen2 and Gemma keep `self_attn.v_proj` and
`self_attn.o_proj`, Phi-3 fuses the projections into `qkv_proj`, GPT-NeoX into `attention.query_key_value`
(per head, query, key and value side by side) with `dense` as W_O and `final_layer_norm` as its last norm.
Gemma 2/3 and OLMo 2 normalise each sub-layer's output before it joins the residual stream (a
`post_feedforward_layernorm` beside the `post_attention_layernorm` says so): for them what an attention
layer adds to the stream is `post_attention_layernorm(o_proj(...))`, not the attention module's output.

A model whose parts cannot be found fails here, with the part and the names looked for, rather than as an
AttributeError deep inside a forward hook.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import torch
from torch import nn

from ..errors import ModelError

LAYER_LISTS = ("layers", "h", "blocks")
FINAL_NORMS = ("norm", "final_layer_norm", "final_layernorm", "ln_f", "norm_f")
ATTENTIONS = ("self_attn", "attention", "attn", "self_attention")
OUTPUT_PROJECTIONS = ("o_proj", "dense", "out_proj")


@dataclass(frozen=True)
class AttentionParts:
    """One decoder layer's attention, as the value-based methods need it."""

    module: nn.Module  # its forward output (first element) is the sub-layer output before any sandwich norm
    values: nn.Module  # the Linear whose output holds the value vectors (alone or fused with q and k)
    take_values: Callable[[torch.Tensor], torch.Tensor]  # that output (..., out) -> values (..., kv_heads * head_dim)
    output: nn.Linear  # W_O
    residual_norm: nn.Module | None  # the sandwich norm applied before the stream, where the family has one

    def to_residual(self, attention_output: torch.Tensor) -> torch.Tensor:
        """What the attention sub-layer adds to the residual stream, given its module's output."""
        return attention_output if self.residual_norm is None else self.residual_norm(attention_output)


def _first(owner: nn.Module, names: tuple[str, ...]):
    for name in names:
        part = getattr(owner, name, None)
        if part is not None:
            return part
    return None


class Anatomy:
    """Role -> module for one loaded causal LM; every lookup is checked once and named when it fails."""

    def __init__(self, model: nn.Module, name: str = "model"):
        self.model, self.name = model, name
        self.config = model.config.get_text_config()
        self.architecture = type(model).__name__

    def _missing(self, what: str, looked_for: tuple[str, ...] | str) -> ModelError:
        names = looked_for if isinstance(looked_for, str) else ", ".join(looked_for)
        return ModelError(f"model '{self.name}' ({self.architecture}) is not supported: cannot find {what} "
                          f"(looked for {names})")

    @cached_property
    def decoder(self) -> nn.Module:
        return self.model.get_decoder()

    @cached_property
    def layers(self) -> nn.ModuleList:
        layers = _first(self.decoder, LAYER_LISTS)
        if not isinstance(layers, nn.ModuleList) or len(layers) == 0:
            raise self._missing("the list of decoder layers", LAYER_LISTS)
        return layers

    @cached_property
    def embeddings(self) -> nn.Module:
        module = self.decoder.get_input_embeddings()
        if module is None:
            raise self._missing("the input embeddings", "get_input_embeddings()")
        return module

    @cached_property
    def final_norm(self) -> nn.Module:
        norm = _first(self.decoder, FINAL_NORMS)
        if norm is None:
            raise self._missing("the final norm", FINAL_NORMS)
        return norm

    @cached_property
    def unembedding(self) -> torch.Tensor:
        head = self.model.get_output_embeddings()
        if head is None or getattr(head, "weight", None) is None:
            raise self._missing("the unembedding (LM head)", "get_output_embeddings()")
        return head.weight

    @property
    def heads(self) -> int:
        return int(self.config.num_attention_heads)

    @property
    def kv_heads(self) -> int:
        return int(getattr(self.config, "num_key_value_heads", None) or self.heads)

    @property
    def head_dim(self) -> int:
        return int(getattr(self.config, "head_dim", None) or self.config.hidden_size // self.heads)

    def attention(self, index: int) -> AttentionParts:
        """The attention parts of decoder layer index (0-based)."""
        layer = self.layers[index]
        module = _first(layer, ATTENTIONS)
        where = f"decoder layer {index}"
        if module is None:
            raise self._missing(f"the attention module of {where}", ATTENTIONS)
        output = _first(module, OUTPUT_PROJECTIONS)
        if not isinstance(output, nn.Linear):
            raise self._missing(f"the attention output projection (W_O) of {where}", OUTPUT_PROJECTIONS)
        values, take = self._values(module)
        if values is None:
            raise self._missing(f"the value projection of {where}", ("v_proj", "qkv_proj", "query_key_value"))
        sandwich = hasattr(layer, "post_feedforward_layernorm")
        norm = getattr(layer, "post_attention_layernorm", None) if sandwich else None
        return AttentionParts(module, values, take, output, norm)

    def _values(self, attention: nn.Module):
        heads, kv, dim = self.heads, self.kv_heads, self.head_dim
        if isinstance(getattr(attention, "v_proj", None), nn.Linear):
            return attention.v_proj, lambda out: out
        if isinstance(getattr(attention, "qkv_proj", None), nn.Linear):  # Phi-3: [q; k; v] along the output
            start = (heads + kv) * dim
            return attention.qkv_proj, lambda out: out[..., start:]
        if isinstance(getattr(attention, "query_key_value", None), nn.Linear):  # GPT-NeoX: (q, k, v) per head
            def per_head(out: torch.Tensor) -> torch.Tensor:
                return out.view(*out.shape[:-1], heads, 3 * dim)[..., 2 * dim:].reshape(*out.shape[:-1], heads * dim)
            return attention.query_key_value, per_head
        return None, None
