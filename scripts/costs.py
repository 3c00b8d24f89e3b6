"""What a model's work costs, measured the same way by every script that reports it (bench_speed,
bench_methods, gpu_check): a machine's matmul rate, a model's FLOPs per token, and each embedding method's
encoding cost. A library for the scripts, not one itself."""

from __future__ import annotations

import statistics
import time

import torch

from retriever.models.encoders import Encoder, defaults_for, make_method


def matmul_rate(dtype: torch.dtype, sizes: tuple[int, ...] = (2048, 3072, 4096), rounds: int = 10,
                device: str = "cpu") -> float:
    """FLOP/s of large square matmuls: the median rate of rounds x len(sizes) single products, sizes
    interleaved, so that a slow or fast moment of a shared machine moves one sample, not the figure."""
    pairs = {n: (torch.randn(n, n, dtype=dtype, device=device), torch.randn(n, n, dtype=dtype, device=device))
             for n in sizes}
    for a, b in pairs.values():
        a @ b
    rates = []
    for _ in range(rounds):
        for n, (a, b) in pairs.items():
            started = time.perf_counter()
            a @ b
            if device != "cpu":
                torch.cuda.synchronize()
            rates.append(2 * n**3 / (time.perf_counter() - started))
    return statistics.median(rates)


def flops_per_token(backbone) -> float:
    """2 x the parameters every token meets in the decoder layers (embeddings and LM head excluded)."""
    return 2.0 * sum(p.numel() for p in backbone.layers.parameters())


def interleaved_costs(backbone, methods: list[str], texts: list[str], rounds: int = 1,
                      max_tokens: int = 512) -> list[dict]:
    """Each method's encoding cost (its prompt, hooks and pooling) on texts, with its measured defaults.

    Round r times every method once, in turn, so slow drifts in the machine's load hit all methods alike:
    the ratio to prompteol is the median of the per-round ratios.
    """
    encoders = {m: Encoder(backbone, make_method(m, **defaults_for(backbone.name, m)), max_tokens) for m in methods}
    for encoder in encoders.values():
        encoder.encode(texts[:8])  # warm-up
    seconds: dict[str, list[float]] = {m: [] for m in methods}
    tokens = dict.fromkeys(methods, 0)
    for _ in range(rounds):
        for name, encoder in encoders.items():
            started = time.perf_counter()
            tokens[name] = encoder.encode(texts).stats.tokens
            seconds[name].append(1000 * (time.perf_counter() - started) / len(texts))
    base = seconds.get("prompteol")
    return [{"method": m, "tokens": tokens[m], "s_per_1k": round(statistics.median(seconds[m]), 2),
             "vs_prompteol": round(statistics.median(s / b for s, b in zip(seconds[m], base, strict=True)), 3)
             if base else None} for m in methods]
