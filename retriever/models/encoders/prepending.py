"""Token Prepending (TP): let early tokens see the whole sentence, with no training.

A placeholder <PST> token sits just before the prompt's opening quote. Before each decoder layer i with
start <= i < exit, its hidden state is overwritten with the current last-token state, so every text token
after it can attend to a summary of the whole sentence. The placeholder reuses an existing token id, and
its embedding is zeroed: the method says its initial embedding does not matter, and zero carries nothing.
Works around any prompt method; the output layer is the inner method's (an early exit if it says so).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .base import BatchInfo, Method, Result, Wrapped, special_prefix, tokenize_whole
from .pooling import HiddenStatePooling


class TokenPrepending(Method):
    def __init__(self, inner: Method, start: int = 1, exit: int | None = None):
        if any(t is None or '"{text}"' not in t for t in inner.templates):
            raise ValueError("token prepending needs a prompt with a quoted \"{text}\"")
        self.inner, self.start, self.exit = inner, start, exit
        self.name = f"tp-{inner.name}"
        self.templates = inner.templates

    def resolve(self, num_layers: int) -> None:
        """The paper's defaults scaled to the model's depth: replacement over layers [1, round(7/32 L)) (7 of
        Llama-2-7B's 32), and the early exit: PromptEOL reads hidden_states[round(27/32 L)], every other
        prompt the penultimate layer (the authors' config.yaml, docs/methods.md)."""
        self.inner.prompt_format = self.prompt_format
        if isinstance(self.inner, HiddenStatePooling) and self.inner.layer is None and \
                self.prompt_format == "published":  # the split format read the last layer
            self.inner.layer = round(num_layers * 27 / 32) if self.inner.name == "prompteol" else num_layers - 1
        self.inner.resolve(num_layers)
        self.exit = self.exit_layer(num_layers)

    def exit_layer(self, num_layers: int) -> int:
        exit_ = self.exit if self.exit is not None else max(self.start, round(num_layers * 7 / 32))
        if not 0 <= self.start <= exit_ <= num_layers:
            raise ValueError(f"need 0 <= start ({self.start}) <= exit ({exit_}) <= {num_layers}")
        return exit_

    def parameters(self) -> dict[str, Any]:
        return {"inner": self.inner.name, **self.inner.parameters(), "tp_start": self.start, "tp_exit": self.exit}

    def check(self, backbone: Any) -> None:
        self.inner.check(backbone)
        super().check(backbone)

    def layers_needed(self, num_layers: int) -> int:
        return max(self.inner.layers_needed(num_layers), self.exit_layer(num_layers))

    def wrap(self, tokenizer, template: str | None, texts: Sequence[str]) -> list[Wrapped]:
        """The inner prompt with the placeholder right before the opening quote (this sentence : <PST> "...).

        <PST> is a token of its own, so the prompt is tokenized in two strings, as a tokenizer splits
        around an added token: the words before it, and the quoted text with the rest of the prompt.
        """
        before, after = template.split('"{text}"')
        lead = special_prefix(tokenizer, before or "a") + tokenizer(before.rstrip(), add_special_tokens=False).input_ids
        wrapped = tokenize_whole(tokenizer, ' "', texts, '"' + after, [*lead, self.placeholder_id(tokenizer)],
                                 whole=self.prompt_format == "published")
        for w in wrapped:
            w.mark = len(lead)
        return wrapped

    @staticmethod
    def placeholder_id(tokenizer) -> int:
        for candidate in (tokenizer.unk_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id, 0):
            if candidate is not None:
                return int(candidate)
        return 0

    def attach(self, backbone: Any, batch: BatchInfo) -> tuple[list, Result]:
        handles, result = self.inner.attach(backbone, batch)
        rows = torch.arange(batch.mask.shape[0], device=batch.mask.device)
        cols = batch.marks  # the placeholder's column in each row (wrap marks it)

        def zero_embedding(_module, _inputs, output):
            output = output.clone()
            output[rows, cols] = 0
            return output

        def replace(_module, args, kwargs):
            hidden = (args[0] if args else kwargs["hidden_states"]).clone()
            hidden[rows, cols] = hidden[:, -1].clone()
            if args:
                return (hidden, *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": hidden}

        handles.append(backbone.anatomy.embeddings.register_forward_hook(zero_embedding))
        for i in range(self.start, self.exit_layer(backbone.num_layers)):
            handles.append(backbone.layers[i].register_forward_pre_hook(replace, with_kwargs=True))
        return handles, result
