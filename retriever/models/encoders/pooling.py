"""Hidden-state methods: mean pooling, last token, and the prompt-based last token (PromptEOL, CoT, KE).

The residual stream after layer l is captured by a forward hook on that layer, pooled in the hook (only
the pooled row is kept, never the whole batch x tokens x layers stack), and the pass stops there.
"""

from __future__ import annotations

from typing import Any

import torch

from .base import BatchInfo, Capture, Method, Result


def layer_output(output: Any) -> torch.Tensor:
    """Decoder layers return a tensor in transformers 5 and a tuple in older releases."""
    return output[0] if isinstance(output, tuple) else output


def masked_mean(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """fp32 mean over each row's masked positions, one row at a time: summed across a padded batch, a
    row's additions would be grouped (and so rounded) by the batch's width, not by the text alone."""
    rows = [states[r][mask[r].bool()].float().sum(0) / max(int(mask[r].sum()), 1) for r in range(states.shape[0])]
    return torch.stack(rows) if rows else states.new_zeros((0, states.shape[-1]), dtype=torch.float32)


class HiddenStatePooling(Method):
    """Pool the residual stream after one layer: 'last' token or 'mean' over the real tokens.

    The dense vector follows the transformers convention for hidden states: after the last layer it is
    taken after the final norm, after an earlier layer it is the raw stream. The residual vector is always
    the raw (pre-norm) pooled stream; the sparse index decides whether to normalise it.
    """

    def __init__(self, name: str, pooling: str, templates: tuple[str | None, ...] = (None,),
                 layer: int | None = None):
        if pooling not in ("last", "mean"):
            raise ValueError(f"pooling must be 'last' or 'mean', not {pooling!r}")
        self.name, self.pooling, self.layer = name, pooling, layer
        self.templates = tuple(templates)

    def parameters(self) -> dict[str, Any]:
        return {"pooling": self.pooling, "templates": list(self.templates), "layer": self.layer}

    def output_layer(self, num_layers: int) -> int:
        layer = num_layers if self.layer is None else self.layer
        if not 0 <= layer <= num_layers:
            raise ValueError(f"layer {layer} out of range 0..{num_layers}")
        return layer

    def resolve(self, num_layers: int) -> None:
        self.layer = self.output_layer(num_layers)

    def layers_needed(self, num_layers: int) -> int:
        return self.output_layer(num_layers)

    def check(self, backbone: Any) -> None:
        super().check(backbone)
        if self.output_layer(backbone.num_layers) == backbone.num_layers:
            backbone.final_norm  # noqa: B018

    def attach(self, backbone: Any, batch: BatchInfo) -> tuple[list, Result]:
        layer = self.output_layer(backbone.num_layers)
        module = backbone.anatomy.embeddings if layer == 0 else backbone.layers[layer - 1]
        is_last = layer == backbone.num_layers
        norm = backbone.float32(backbone.final_norm)  # applied in fp32 to the pooled stream
        result: dict[str, Capture] = {}

        def hook(_module, _inputs, output):
            states = layer_output(output)
            if self.pooling == "last":
                residual = states[:, -1].float()
                dense = norm(residual) if is_last else residual
            else:
                residual = masked_mean(states, batch.mask)
                dense = masked_mean(norm(states.float()), batch.mask) if is_last else residual
            result["capture"] = Capture(dense, residual)

        return [module.register_forward_hook(hook)], lambda: result["capture"]
