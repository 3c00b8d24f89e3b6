"""Run a method over texts: tokenize inside the token budget, batch by length, one forward pass per batch.

Texts are cut to the budget before the prompt is wrapped around them, so the prompt's end (which is what
the last token reads) always survives. Batches are sorted by length and sized by a padded-token budget:
on a CPU the matrix units are the limit, and padding is work thrown away.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

import numpy as np
import torch

from ..invariance import padded_width
from .base import BatchInfo, Capture, Method, StopForward
from .prompts import normalize


@dataclass
class EncodeStats:
    texts: int = 0
    tokens: int = 0  # real tokens run through the model, prompt included, summed over passes
    padded_tokens: int = 0  # tokens in the padded batches: tokens / padded_tokens is the padding efficiency
    truncated: int = 0
    tokenize_seconds: float = 0.0  # where the time went: the indexer reports its stages from these
    forward_seconds: float = 0.0  # batching, the forward pass, hooks and pooling

    def add(self, other: EncodeStats) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


@dataclass
class Prepared:
    """Texts tokenized within the budget, ready for the forward pass: made ahead of it by a read-ahead thread."""

    texts: int
    bodies: list[list[int]]
    truncated: int
    seconds: float


@dataclass
class Encoded:
    dense: np.ndarray  # (n, D) float32
    residual: np.ndarray  # (n, hidden) float32, residual-stream vector
    stats: EncodeStats


def _stop(*_args) -> None:
    raise StopForward()


class Encoder:
    """Turns texts into a method's vectors with the given backbone."""

    # A padded-token budget of 2048 ran the plain forward pass at 0.83 / 0.75 of the matmul rate (256- /
    # 512-token texts) against 0.62 / 0.41 at 16384 on 2 CPU cores: a small batch's activations stay in
    # cache (scripts/bench_speed.py --sweep, docs/benchmarks.md). A GPU needs far larger matrices to fill.
    CPU_BATCH, GPU_BATCH = (2048, 64), (32768, 256)  # (padded tokens, texts) per pass

    def __init__(self, backbone, method: Method, max_tokens: int = 512, batch_tokens: int | None = None,
                 max_batch: int | None = None):
        if max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")
        tokens, texts = self.CPU_BATCH if backbone.device.type == "cpu" else self.GPU_BATCH
        batch_tokens, max_batch = batch_tokens or tokens, max_batch or texts
        method.check(backbone)  # a model without the parts the method hooks fails here, by name
        self.backbone, self.method = backbone, method
        self.max_tokens, self.batch_tokens = max_tokens, batch_tokens
        self.max_batch = 1 if backbone.batching == "single" else max_batch
        self.prompts = [method.prompt_ids(backbone.tokenizer, t) for t in method.templates]
        tok = backbone.tokenizer
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        self.pad_id = int(pad if pad is not None else 0)

    @property
    def prefix_ids(self) -> list[int]:
        return self.prompts[0][0]

    @property
    def suffix_ids(self) -> list[int]:
        return self.prompts[0][1]

    def bodies(self, texts: Sequence[str], tokenizer=None) -> tuple[list[list[int]], int]:
        """Each text's own token ids within the budget, and how many texts were cut.

        tokenizer: a private copy for a thread that tokenizes while another runs the model (a fast
        tokenizer's truncation setting is shared state); the backbone's own by default.
        """
        prepared = [normalize(t) if self.method.templates[0] else t for t in texts]
        tokenizer = tokenizer or self.backbone.tokenizer
        bodies = tokenizer(prepared, add_special_tokens=False).input_ids if prepared else []
        truncated = sum(len(b) > self.max_tokens for b in bodies)
        return [b[: self.max_tokens] for b in bodies], truncated

    def wrap(self, bodies: Sequence[list[int]], prompt: int = 0) -> list[list[int]]:
        """Model inputs: each text's ids inside one of the method's prompts."""
        prefix, suffix = self.prompts[prompt]
        return [prefix + b + suffix for b in bodies]

    def token_ids(self, texts: Sequence[str], prompt: int = 0) -> tuple[list[list[int]], int]:
        """Model inputs for each text with one of the method's prompts, and how many were cut."""
        bodies, truncated = self.bodies(texts)
        return self.wrap(bodies, prompt), truncated

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

    def forward(self, inputs: Sequence[list[int]], prompt: int = 0) -> Capture:
        """One left-padded forward pass; returns the method's Capture for these inputs."""
        # Padded to a row count the BLAS rounds alike (invariance.py): attention ignores padding.
        width = max(len(ids) for ids in inputs)
        if self.backbone.batching == "rowwise":
            width = padded_width(len(inputs), width)
        prefix, suffix = (len(x) for x in self.prompts[prompt])
        ids = torch.full((len(inputs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(inputs), width), dtype=torch.long)
        text_mask = torch.zeros((len(inputs), width), dtype=torch.long)
        for row, seq in enumerate(inputs):
            ids[row, width - len(seq):] = torch.tensor(seq, dtype=torch.long)
            mask[row, width - len(seq):] = 1
            text_mask[row, width - len(seq) + prefix: width - suffix] = 1
        device = self.backbone.device
        ids, mask = ids.to(device), mask.to(device)
        batch = BatchInfo(mask, text_mask.to(device), (width - mask.sum(1)), prefix)
        # Positions count real tokens only, so a text gets the same embedding alone or in a padded batch.
        positions = (mask.cumsum(-1) - 1).clamp_min(0)
        handles, result = self.method.attach(self.backbone, batch)
        stop_at = self.method.layers_needed(self.backbone.num_layers)
        stopper = self.backbone.anatomy.embeddings if stop_at == 0 else self.backbone.layers[stop_at - 1]
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

    def prepare(self, texts: Sequence[str], tokenizer=None) -> Prepared:
        """Tokenize texts for encode(); safe beside a running encode() when given a private tokenizer."""
        started = time.perf_counter()
        bodies, truncated = self.bodies(texts, tokenizer)
        return Prepared(len(texts), bodies, truncated, time.perf_counter() - started)

    def encode(self, texts: Sequence[str] | Prepared,
               on_batch: Callable[[int, int], None] | None = None) -> Encoded:
        """Vectors for texts (or texts prepare() tokenized), in input order, averaged over the method's prompts.

        on_batch(texts, tokens) is called after each batch (texts counted on the last prompt only).
        """
        with self.backbone.lock:
            return self._encode(texts if isinstance(texts, Prepared) else self.prepare(texts), on_batch)

    def _encode(self, prepared: Prepared, on_batch: Callable[[int, int], None] | None) -> Encoded:
        bodies = prepared.bodies
        stats = EncodeStats(texts=prepared.texts, truncated=prepared.truncated, tokenize_seconds=prepared.seconds)
        started = time.perf_counter()
        hidden = self.backbone.hidden_size
        if not bodies:
            return Encoded(np.zeros((0, hidden), np.float32), np.zeros((0, hidden), np.float32), stats)
        dense = residual = None
        for p in range(len(self.prompts)):
            inputs = self.wrap(bodies, p)
            for group in self.batches([len(x) for x in inputs]):
                capture = self.forward([inputs[i] for i in group], prompt=p)
                if dense is None:
                    dense = np.zeros((len(inputs), capture.dense.shape[1]), np.float32)
                    residual = np.zeros((len(inputs), capture.residual.shape[1]), np.float32)
                dense[group] += capture.dense.cpu().numpy() / len(self.prompts)
                residual[group] += capture.residual.cpu().numpy() / len(self.prompts)
                tokens = sum(len(inputs[i]) for i in group)
                stats.tokens += tokens
                stats.padded_tokens += len(group) * len(inputs[group[0]])
                if on_batch:
                    on_batch(len(group) if p == len(self.prompts) - 1 else 0, tokens)
        stats.forward_seconds = time.perf_counter() - started
        return Encoded(dense, residual, stats)
