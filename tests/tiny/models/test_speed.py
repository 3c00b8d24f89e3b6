"""The transposed weight layout (a speed choice) keeps every output and never writes into storage shared
with other tensors."""

from __future__ import annotations

import copy

import torch

from retriever.models import backbones


def test_transposed_weight_layout_keeps_every_output(tiny_backbone):
    linears = [m for m in tiny_backbone.layers.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(m.weight.t().is_contiguous() and not m.weight.is_contiguous() for m in linears)
    plain = copy.deepcopy(tiny_backbone.model)
    for module in plain.get_decoder().layers.modules():
        if isinstance(module, torch.nn.Linear):
            module.weight = torch.nn.Parameter(module.weight.contiguous(), requires_grad=False)
    ids = torch.tensor([[5, 17, 300, 42, 7, 99]])
    with torch.inference_mode():
        got = tiny_backbone.model(input_ids=ids).logits
        want = plain(input_ids=ids).logits
    assert torch.allclose(got, want, atol=1e-5)


def test_weight_layout_never_writes_into_storage_shared_with_other_tensors(tiny_backbone):
    model = copy.deepcopy(tiny_backbone.model)
    linear = next(m for m in model.get_decoder().layers.modules() if isinstance(m, torch.nn.Linear))
    values = torch.randn(linear.weight.shape)
    shared = torch.cat([values.flatten(), torch.arange(10.0)])  # the weight and a neighbour in one storage
    linear.weight = torch.nn.Parameter(shared[: values.numel()].view(values.shape), requires_grad=False)
    backbones.store_weights_transposed(model)
    assert torch.equal(shared[: values.numel()], values.flatten()) and torch.equal(shared[-10:], torch.arange(10.0))
    assert torch.equal(linear.weight, values) and linear.weight.t().is_contiguous()


