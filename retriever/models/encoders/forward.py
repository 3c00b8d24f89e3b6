"""Run a method over texts: tokenize inside the token budget, batch by length, one forward pass per batch.

Texts are cut to the budget before the prompt is wrapped around them, so the prompt's end (which is what
the last token reads) always survives; then the whole prompt is tokenized as one string (Method.wrap).
Batches are sorted by length and sized by a padded-token budget:
on a CPU the matrix units are the limit, and padding is work thrown away.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

import numpy as np
import torch

from ..invariance import left_padded, padded_width
from .base import BatchInfo, Capture, Method, StopForward, Wrapped


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
    inputs: list[list[Wrapped]]  # per prompt of the method, per text
    cut: list[int]  # the texts cut to the token budget, by position
    seconds: float

    @property
    def truncated(self) -> int:
        return len(self.cut)


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
    # A pass's fixed cost, in tokens, when choosing where to cut batches (scripts/bench_batches.py,
    # docs/benchmarks.md); a GPU pass is dearer still against its speed, so there batches are rarely cut.
    CPU_PASS_TOKENS, GPU_PASS_TOKENS = 64, 4096

    def __init__(self, backbone, method: Method, max_tokens: int = 512, batch_tokens: int | None = None,
                 max_batch: int | None = None):
        if max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")
        tokens, texts = self.CPU_BATCH if backbone.device.type == "cpu" else self.GPU_BATCH
        self.pass_tokens = self.CPU_PASS_TOKENS if backbone.device.type == "cpu" else self.GPU_PASS_TOKENS
        batch_tokens, max_batch = batch_tokens or tokens, max_batch or texts
        method.check(backbone)  # a model without the parts the method hooks fails here, by name
        method.resolve(backbone.num_layers)  # defaults that depend on the depth become numbers, stored as such
        self.backbone, self.method = backbone, method
        self.max_tokens, self.batch_tokens = max_tokens, batch_tokens
        self.max_batch = 1 if backbone.batching == "single" else max_batch
        tok = backbone.tokenizer
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        self.pad_id = int(pad if pad is not None else 0)

    def cut(self, texts: Sequence[str], tokenizer=None) -> tuple[list[str], list[int]]:
        """Each text within the token budget (cut at a token boundary, then normalised as the prompt papers
        do where the method has a prompt), and which texts were cut.

        tokenizer: a private copy for a thread that tokenizes while another runs the model (a fast
        tokenizer's truncation setting is shared state); the backbone's own by default.
        """
        tokenizer = tokenizer or self.backbone.tokenizer
        split = self.method.prompt_format == "split"  # which normalised the text first, then cut its tokens
        texts = [self.method.normalize(t) for t in texts] if split else list(texts)
        ends = token_ends(tokenizer, texts)
        long = [i for i, e in enumerate(ends) if len(e) > self.max_tokens]
        for i in long:
            texts[i] = texts[i][: ends[i][self.max_tokens - 1]]
        return (texts if split else [self.method.normalize(t) for t in texts]), long

    def wrapped(self, texts: Sequence[str], prompt: int = 0) -> list[Wrapped]:
        """Model inputs for texts under one of the method's prompts (cut and normalised first)."""
        return self.prepare(texts).inputs[prompt]

    def token_ids(self, texts: Sequence[str], prompt: int = 0) -> tuple[list[list[int]], int]:
        """Model input ids for each text with one of the method's prompts, and how many were cut."""
        prepared = self.prepare(texts)
        return [w.ids for w in prepared.inputs[prompt]], prepared.truncated

    def batches(self, lengths: Sequence[int]) -> list[list[int]]:
        """Text indices, longest first, cut into batches within the budget at the cheapest places.

        A batch costs its padded tokens (texts x the longest's width) plus a pass's fixed cost: the cut of
        the length-sorted texts that costs least in all (dynamic programming over where batches end). A
        micro-batch of mixed-length queries then runs as two or three passes of similar lengths rather
        than one padded to the longest; a build's chunk, sorted and long, is cut by the budget as before.
        """
        order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
        widths = [lengths[i] for i in order]
        rowwise = self.backbone.batching == "rowwise"
        best, start = [0.0] + [float("inf")] * len(order), [0] * (len(order) + 1)
        for end in range(1, len(order) + 1):
            for first in range(max(0, end - self.max_batch), end):
                count = end - first
                if count > 1 and count * widths[first] > self.batch_tokens:
                    continue
                width = padded_width(count, widths[first]) if rowwise else widths[first]
                cost = best[first] + self.pass_tokens + count * width
                if cost < best[end]:
                    best[end], start[end] = cost, first
        groups, end = [], len(order)
        while end > 0:
            groups.append(order[start[end]:end])
            end = start[end]
        return groups[::-1]

    def forward(self, inputs: Sequence[Wrapped]) -> Capture:
        """One left-padded forward pass; returns the method's Capture for these inputs."""
        # Padded to a row count the BLAS rounds alike (invariance.py): attention ignores padding.
        width = max(len(w.ids) for w in inputs)
        if self.backbone.batching == "rowwise":
            width = padded_width(len(inputs), width)
        ids, mask, positions = left_padded([w.ids for w in inputs], width, self.pad_id)
        text_mask = torch.zeros((len(inputs), width), dtype=torch.long)
        for row, w in enumerate(inputs):
            first = width - len(w.ids)
            text_mask[row, first + w.start: first + w.end] = 1
        marks = None
        if inputs[0].mark is not None:
            marks = torch.tensor([width - len(w.ids) + w.mark for w in inputs], dtype=torch.long)
        device = self.backbone.device
        ids, mask, positions = ids.to(device), mask.to(device), positions.to(device)
        batch = BatchInfo(mask, text_mask.to(device), (width - mask.sum(1)),
                          None if marks is None else marks.to(device))
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
        tokenizer = tokenizer or self.backbone.tokenizer
        cut, long = self.cut(texts, tokenizer)
        inputs = [self.method.wrap(tokenizer, template, cut) for template in self.method.templates]
        return Prepared(len(texts), inputs, long, time.perf_counter() - started)

    def encode(self, texts: Sequence[str] | Prepared,
               on_batch: Callable[[int, int], None] | None = None) -> Encoded:
        """Vectors for texts (or texts prepare() tokenized), in input order, averaged over the method's prompts.

        on_batch(texts, tokens) is called after each batch (texts counted on the last prompt only).
        """
        with self.backbone.lock:
            return self._encode(texts if isinstance(texts, Prepared) else self.prepare(texts), on_batch)

    def _encode(self, prepared: Prepared, on_batch: Callable[[int, int], None] | None) -> Encoded:
        stats = EncodeStats(texts=prepared.texts, truncated=prepared.truncated, tokenize_seconds=prepared.seconds)
        started = time.perf_counter()
        hidden = self.backbone.hidden_size
        if prepared.texts == 0:
            return Encoded(np.zeros((0, hidden), np.float32), np.zeros((0, hidden), np.float32), stats)
        dense = residual = None
        prompts = len(prepared.inputs)
        for p, inputs in enumerate(prepared.inputs):
            for group in self.batches([len(w.ids) for w in inputs]):
                capture = self.forward([inputs[i] for i in group])
                if dense is None:
                    dense = np.zeros((len(inputs), capture.dense.shape[1]), np.float32)
                    residual = np.zeros((len(inputs), capture.residual.shape[1]), np.float32)
                dense[group] += capture.dense.cpu().numpy() / prompts
                residual[group] += capture.residual.cpu().numpy() / prompts
                tokens = sum(len(inputs[i].ids) for i in group)
                stats.tokens += tokens
                stats.padded_tokens += len(group) * len(inputs[group[0]].ids)
                if on_batch:
                    on_batch(len(group) if p == prompts - 1 else 0, tokens)
        stats.forward_seconds = time.perf_counter() - started
        return Encoded(dense, residual, stats)


def token_ends(tokenizer, texts: list[str]) -> list[list[int]]:
    """For each text, the character offset where each of its tokens ends (one tokenizer call for all); a
    tokenizer without offsets (a slow one) gives each token's decoded length instead."""
    if not texts:
        return []
    try:
        encoded = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
        return [[end for _, end in offsets] for offsets in encoded.offset_mapping]
    except NotImplementedError:
        ids = tokenizer(texts, add_special_tokens=False).input_ids
        return [[len(tokenizer.decode(x[: n + 1])) for n in range(len(x))] for x in ids]
