"""Run a method over texts: tokenize inside the token budget, batch by length, one forward pass per batch.

Texts are cut to the budget before the prompt is wrapped around them, so the prompt's end (which is what
the last token reads) always survives. Batches are sorted by length and sized by a padded-token budget:
on a CPU the matrix units are the limit, and padding is work thrown away.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .base import Method, StopForward
from .prompts import normalize, split_template


@dataclass
class EncodeStats:
    texts: int = 0
    tokens: int = 0  # real tokens run through the model, prompt included
    padded_tokens: int = 0  # tokens in the padded batches: tokens / padded_tokens is the padding efficiency
    truncated: int = 0

    def add(self, other: EncodeStats) -> None:
        for name in ("texts", "tokens", "padded_tokens", "truncated"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class Encoded:
    dense: np.ndarray  # (n, D) float32
    residual: np.ndarray  # (n, hidden) float32, raw residual stream
    stats: EncodeStats


def _special_prefix(tokenizer, text: str) -> list[int]:
    """Token ids the tokenizer puts before any text (a BOS for Gemma, nothing for SmolLM2)."""
    plain = tokenizer(text, add_special_tokens=False).input_ids
    full = tokenizer(text).input_ids
    for start in range(len(full) - len(plain) + 1):
        if full[start:start + len(plain)] == plain:
            return full[:start]
    return []


def _stop(*_args) -> None:
    raise StopForward()


class Encoder:
    """Turns texts into a method's vectors with the given backbone."""

    def __init__(self, backbone, method: Method, max_tokens: int = 512, batch_tokens: int = 16384,
                 max_batch: int = 64):
        if max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")
        self.backbone, self.method = backbone, method
        self.max_tokens, self.batch_tokens, self.max_batch = max_tokens, batch_tokens, max_batch
        tok = backbone.tokenizer
        prefix, suffix = split_template(method.template) if method.template else ("", "")
        self.prefix_ids = _special_prefix(tok, prefix or "a") + tok(prefix, add_special_tokens=False).input_ids
        self.suffix_ids = tok(suffix, add_special_tokens=False).input_ids if suffix else []
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        self.pad_id = int(pad if pad is not None else 0)

    def token_ids(self, texts: Sequence[str]) -> tuple[list[list[int]], int]:
        """Model inputs for each text, and how many texts were cut to the token budget."""
        prepared = [normalize(t) if self.method.template else t for t in texts]
        bodies = self.backbone.tokenizer(prepared, add_special_tokens=False).input_ids if prepared else []
        truncated = sum(len(b) > self.max_tokens for b in bodies)
        return [self.prefix_ids + b[: self.max_tokens] + self.suffix_ids for b in bodies], truncated

    def batches(self, lengths: Sequence[int]) -> list[list[int]]:
        """Group text indices longest first so each batch pads little and stays within the token budget."""
        order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
        groups: list[list[int]] = []
        for i in order:
            if groups and len(groups[-1]) < self.max_batch and \
                    (len(groups[-1]) + 1) * lengths[groups[-1][0]] <= self.batch_tokens:
                groups[-1].append(i)
            else:
                groups.append([i])
        return groups

    def forward(self, inputs: Sequence[list[int]]):
        """One left-padded forward pass; returns the method's Capture for these inputs."""
        width = max(len(ids) for ids in inputs)
        ids = torch.full((len(inputs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(inputs), width), dtype=torch.long)
        for row, seq in enumerate(inputs):
            ids[row, width - len(seq):] = torch.tensor(seq, dtype=torch.long)
            mask[row, width - len(seq):] = 1
        device = self.backbone.device
        ids, mask = ids.to(device), mask.to(device)
        # Positions count real tokens only, so a text gets the same embedding alone or in a padded batch.
        positions = (mask.cumsum(-1) - 1).clamp_min(0)
        handles, result = self.method.attach(self.backbone, mask)
        stop_at = self.method.layers_needed(self.backbone.num_layers)
        stopper = self.backbone.decoder.embed_tokens if stop_at == 0 else self.backbone.layers[stop_at - 1]
        handles.append(stopper.register_forward_hook(_stop))
        try:
            with torch.inference_mode():
                self.backbone.decoder(input_ids=ids, attention_mask=mask, position_ids=positions,
                                      use_cache=False)
        except StopForward:
            pass
        finally:
            for handle in handles:
                handle.remove()
        return result()

    def encode(self, texts: Sequence[str], on_batch: Callable[[int, int], None] | None = None) -> Encoded:
        """Vectors for texts, in input order. on_batch(texts, tokens) is called after each batch."""
        inputs, truncated = self.token_ids(texts)
        stats = EncodeStats(texts=len(texts), truncated=truncated)
        if not inputs:
            empty = np.zeros((0, self.backbone.hidden_size), np.float32)
            return Encoded(empty, empty.copy(), stats)
        dense: list[np.ndarray | None] = [None] * len(inputs)
        residual: list[np.ndarray | None] = [None] * len(inputs)
        for group in self.batches([len(x) for x in inputs]):
            capture = self.forward([inputs[i] for i in group])
            for row, i in enumerate(group):
                dense[i] = capture.dense[row].cpu().numpy()
                residual[i] = capture.residual[row].cpu().numpy()
            tokens = sum(len(inputs[i]) for i in group)
            stats.tokens += tokens
            stats.padded_tokens += len(group) * len(inputs[group[0]])
            if on_batch:
                on_batch(len(group), tokens)
        return Encoded(np.stack(dense), np.stack(residual), stats)
