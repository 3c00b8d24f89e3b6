"""Value Aggregation (VA) and Aligned Weighted Value Aggregation (AlignedWVA), from forward hooks.

VA: the value projections v^l = W_V norm(h^{l-1}) (before any attention mixing), mean over tokens, averaged
over a layer set. Its sparse-leg vector is the same pooled value aligned into the residual stream: kv heads
repeated to the query heads, then W_O, summed over the layers.

AlignedWVA: the attention sub-layer's output at the last position, o^l = W_O [sum_j a_{n,j} v_j per head],
summed over a layer set. The attention module's own output is exactly that, so a hook on it costs nothing
and needs no output_attentions.
"""

from __future__ import annotations

from typing import Any

import torch

from .base import BatchInfo, Capture, Method, Result, resolve_layers
from .pooling import masked_mean

TOKEN_SETS = ("all", "text")


def align_values(values: torch.Tensor, attention: torch.nn.Module, num_heads: int, num_kv: int) -> torch.Tensor:
    """Map pooled value vectors (batch, kv_heads * head_dim) into the residual stream through W_O."""
    head_dim = values.shape[-1] // num_kv
    heads = values.view(values.shape[0], num_kv, head_dim).repeat_interleave(num_heads // num_kv, dim=1)
    return attention.o_proj(heads.reshape(values.shape[0], num_heads * head_dim))


def _head_counts(backbone) -> tuple[int, int]:
    config = backbone.model.config.get_text_config()
    return int(config.num_attention_heads), int(getattr(config, "num_key_value_heads", config.num_attention_heads))


class ValueAggregation(Method):
    def __init__(self, layers: str | list[int] = "last-half", tokens: str = "all",
                 templates: tuple[str | None, ...] = (None,), name: str = "va"):
        if tokens not in TOKEN_SETS:
            raise ValueError(f"tokens must be one of {TOKEN_SETS}")
        self.name, self.layer_spec, self.tokens, self.templates = name, layers, tokens, tuple(templates)

    def parameters(self) -> dict[str, Any]:
        return {"layers": self.layer_spec, "tokens": self.tokens, "templates": list(self.templates)}

    def layers_needed(self, num_layers: int) -> int:
        return resolve_layers(self.layer_spec, num_layers)[-1] + 1

    def attach(self, backbone: Any, batch: BatchInfo) -> tuple[list, Result]:
        layers = resolve_layers(self.layer_spec, backbone.num_layers)
        mask = batch.text_mask if self.tokens == "text" else batch.mask
        heads, kv = _head_counts(backbone)
        sums: dict[str, torch.Tensor] = {}

        def make_hook(attention):
            def hook(_module, _inputs, output):
                pooled = masked_mean(output, mask).float()
                aligned = align_values(pooled.to(output.dtype), attention, heads, kv).float()
                sums["dense"] = sums.get("dense", 0) + pooled / len(layers)
                sums["residual"] = sums.get("residual", 0) + aligned
            return hook

        handles = [backbone.layers[i].self_attn.v_proj.register_forward_hook(
            make_hook(backbone.layers[i].self_attn)) for i in layers]
        return handles, lambda: Capture(sums["dense"], sums["residual"])


class AlignedWeightedValues(Method):
    def __init__(self, layers: str | list[int] = "all", templates: tuple[str | None, ...] = (None,),
                 name: str = "aligned-wva"):
        if not templates or templates[0] is None:
            raise ValueError("AlignedWVA reads the last token: it needs a prompt")
        self.name, self.layer_spec, self.templates = name, layers, tuple(templates)

    def parameters(self) -> dict[str, Any]:
        return {"layers": self.layer_spec, "templates": list(self.templates)}

    def layers_needed(self, num_layers: int) -> int:
        return resolve_layers(self.layer_spec, num_layers)[-1] + 1

    def attach(self, backbone: Any, batch: BatchInfo) -> tuple[list, Result]:
        layers = resolve_layers(self.layer_spec, backbone.num_layers)
        total: dict[str, torch.Tensor] = {}

        def hook(_module, _inputs, output):
            attn_out = output[0] if isinstance(output, tuple) else output
            total["e"] = total.get("e", 0) + attn_out[:, -1].float()

        handles = [backbone.layers[i].self_attn.register_forward_hook(hook) for i in layers]
        return handles, lambda: Capture(total["e"], total["e"])
