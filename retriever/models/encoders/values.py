"""Value Aggregation (VA) and Aligned Weighted Value Aggregation (AlignedWVA), from forward hooks.

VA: the value projections v^l = W_V norm(h^{l-1}) (before any attention mixing), mean over tokens, averaged
over a layer set. Its sparse-leg vector is the same pooled value aligned into the residual stream: kv heads
repeated to the query heads, then W_O (and a sandwich norm where the family has one), summed over the layers.

AlignedWVA: the attention sub-layer's output at the last position, o^l = W_O [sum_j a_{n,j} v_j per head],
summed over a layer set. The attention module's own output is exactly that (passed through the sandwich
norm in families that normalise it before the residual stream), so a hook on it costs nothing and needs no
output_attentions. Both find their modules by role (anatomy.py), whatever the family calls them.
"""

from __future__ import annotations

from typing import Any

import torch

from ..anatomy import AttentionParts
from .base import BatchInfo, Capture, Method, Result, resolve_layers
from .pooling import masked_mean

TOKEN_SETS = ("all", "text")


def align_values(values: torch.Tensor, backbone: Any, parts: AttentionParts) -> torch.Tensor:
    """Map pooled value vectors (batch, kv_heads * head_dim) into the residual stream, in fp32: kv heads
    repeated to the query heads, then W_O, then the family's sandwich norm where it has one.

    One row at a time: the BLAS takes another kernel (and rounding) for a single row than for several, and
    a text's vector must not depend on how many others share its batch.
    """
    anatomy = backbone.anatomy
    heads = values.view(values.shape[0], anatomy.kv_heads, anatomy.head_dim)
    heads = heads.repeat_interleave(anatomy.heads // anatomy.kv_heads, dim=1).reshape(values.shape[0], -1)
    output = backbone.float32(parts.output)
    heads = heads.to(output.weight.device, torch.float32)
    aligned = torch.cat([output(heads[r:r + 1]) for r in range(heads.shape[0])])
    return aligned if parts.residual_norm is None else backbone.float32(parts.residual_norm)(aligned)


def _check_attention(backbone: Any, spec) -> None:
    for i in resolve_layers(spec, backbone.num_layers):
        backbone.anatomy.attention(i)


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

    def check(self, backbone: Any) -> None:
        super().check(backbone)
        _check_attention(backbone, self.layer_spec)

    def attach(self, backbone: Any, batch: BatchInfo) -> tuple[list, Result]:
        layers = resolve_layers(self.layer_spec, backbone.num_layers)
        mask = batch.text_mask if self.tokens == "text" else batch.mask
        sums: dict[str, torch.Tensor] = {}

        def make_hook(parts: AttentionParts):
            def hook(_module, _inputs, output):
                pooled = masked_mean(parts.take_values(output), mask)
                sums["dense"] = sums.get("dense", 0) + pooled / len(layers)
                sums["residual"] = sums.get("residual", 0) + align_values(pooled, backbone, parts)
            return hook

        parts = [backbone.anatomy.attention(i) for i in layers]
        handles = [p.values.register_forward_hook(make_hook(p)) for p in parts]
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

    def check(self, backbone: Any) -> None:
        super().check(backbone)
        _check_attention(backbone, self.layer_spec)

    def attach(self, backbone: Any, batch: BatchInfo) -> tuple[list, Result]:
        layers = resolve_layers(self.layer_spec, backbone.num_layers)
        total: dict[str, torch.Tensor] = {}

        def hook(_module, _inputs, output):
            attn_out = output[0] if isinstance(output, tuple) else output
            total["e"] = total.get("e", 0) + attn_out[:, -1].float()

        # What the attention adds to the residual stream: its module's output, or the sandwich norm's.
        parts = [backbone.anatomy.attention(i) for i in layers]
        handles = [(p.module if p.residual_norm is None else p.residual_norm).register_forward_hook(hook)
                   for p in parts]
        return handles, lambda: Capture(total["e"], total["e"])
