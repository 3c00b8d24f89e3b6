"""Layer choices per model, chosen on STS-B train (Spearman x100), checked on SICK-R dev, reported on STS-B dev.

    python scripts/tune_layers.py [--models smollm2-135m,gemma3-270m] [--tune FILE] [--sample N]
        [--check FILE] [--report FILE] [--methods ...]

One forward pass per model and method captures every layer at once: the output layer of `prompteol`
(or `cot`, `ke`, `mean`, `last`), and each single layer's contribution to `va` and `aligned-wva` (both
are sums over their layer set, so any contiguous set is a sum of those). Token Prepending needs a pass
per (start, exit) pair; each pass also captures every output layer. Prints one JSON line per setting and
a Markdown summary: the best setting on the tuning file (STS-B train, or a seeded sample of it) against the
generic default, adopted as the model's default only when SICK-R dev does not disagree (so one set's noise
does not move a default); STS-B dev is reported beside it and never chosen on.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from common import STS  # isort: skip (first: the offline environment)

import numpy as np
import torch
from scipy.stats import spearmanr

from retriever.eval.evaluate import read_sts
from retriever.models.backbones import load_backbone
from retriever.models.encoders import Encoder, make_method
from retriever.models.encoders.base import BatchInfo, Capture, Method


class EveryLayer(Method):
    """Several single-layer variants of one method side by side in one pass (their dense vectors concatenated)."""

    def __init__(self, parts: list[Method]):
        self.parts, self.name, self.templates = parts, f"{parts[0].name}-every-layer", parts[0].templates

    def parameters(self) -> dict[str, Any]:
        return {"parts": [p.parameters() for p in self.parts]}

    def layers_needed(self, num_layers: int) -> int:
        return max(p.layers_needed(num_layers) for p in self.parts)

    def attach(self, backbone: Any, batch: BatchInfo):
        attached = [p.attach(backbone, batch) for p in self.parts]
        handles = [h for hs, _ in attached for h in hs]

        def result() -> Capture:
            captures = [r() for _, r in attached]
            return Capture(torch.cat([c.dense for c in captures], dim=1), captures[0].residual)

        return handles, result


def per_layer(backbone, method: str, sentences: list[str], **params) -> list[np.ndarray]:
    """Each single layer's dense vectors for every sentence (layer l = after l decoder layers for pooling)."""
    n = backbone.num_layers
    if method in ("va", "aligned-wva"):
        parts = [make_method(method, layers=[i], **params) for i in range(n)]
    else:
        parts = [make_method(method, layer=i, **params) for i in range(1, n + 1)]
    if method.startswith("tp-"):  # one Token Prepending wrapper around every output layer
        tp = parts[0]
        tp.inner = EveryLayer([p.inner for p in parts])
        stacked = tp
    else:
        stacked = EveryLayer(parts)
    dense = Encoder(backbone, stacked, 512).encode(sentences).dense
    return np.split(dense, len(parts), axis=1)


def spearman(vectors: np.ndarray, index: dict[str, int], pairs) -> float:
    first, second, gold = pairs
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    cosine = np.einsum("ij,ij->i", unit[[index[s] for s in first]], unit[[index[s] for s in second]])
    return float(spearmanr(cosine, gold).statistic * 100)


def layer_sets(n: int) -> list[tuple[int, int]]:
    """Contiguous sets a..b (inclusive, 0-based) on a grid of about n/10 layers, plus every single layer."""
    step = max(1, n // 10)
    edges = sorted({*range(0, n, step), n - 1})
    return [(a, b) for a in edges for b in edges if b >= a] + [(i, i) for i in range(n) if i not in edges]


METHODS = ("prompteol", "tp-prompteol", "va", "aligned-wva")
TP_EXITS = (4 / 32, 7 / 32, 14 / 32)  # exit layers as fractions of the depth (the paper's is 7 of 32)


def sample_pairs(pairs, size: int, seed: int = 0):
    """A seeded sample of an STS file's pairs (all of them when size is 0 or larger than the file)."""
    first, second, gold = pairs
    if not size or size >= len(gold):
        return pairs
    keep = np.sort(np.random.default_rng(seed).choice(len(gold), size, replace=False))
    return [first[i] for i in keep], [second[i] for i in keep], np.asarray(gold)[keep]


def tune_model(model: str, tune_file: Path, check_file: Path, methods=METHODS, sample: int = 0,
               report: Path | None = None) -> list[dict]:
    backbone = load_backbone(model)
    data = {"tune": sample_pairs(read_sts(tune_file), sample), "check": read_sts(check_file)}
    if report is not None:
        data["report"] = read_sts(report)
    sentences = list(dict.fromkeys(s for first, second, _ in data.values() for s in first + second))
    index = {s: i for i, s in enumerate(sentences)}
    n, out = backbone.num_layers, []

    def emit(method: str, params: dict, vectors: np.ndarray) -> None:
        row = {"model": model, "method": method, "params": params,
               **{name: spearman(vectors, index, pairs) for name, pairs in data.items()}}
        out.append(row)
        print(json.dumps(row), flush=True)

    for method in [m for m in methods if m not in ("va", "aligned-wva")]:
        grid = [{}] if not method.startswith("tp-") else [
            {"tp_start": s, "tp_exit": e} for s, e in ((1, round(n * f)) for f in TP_EXITS)
        ] + [{"tp_start": 2, "tp_exit": round(n * 7 / 32)}]
        for params in grid:
            for layer, vectors in enumerate(per_layer(backbone, method, sentences, **params), start=1):
                emit(method, {**params, "layer": layer}, vectors)
    for method in [m for m in methods if m in ("va", "aligned-wva")]:
        single = per_layer(backbone, method, sentences)
        for a, b in layer_sets(n):
            emit(method, {"layers": f"{a}-{b}"}, sum(single[a:b + 1]))
    return out


def generic(method: str, n: int) -> dict:
    """The parameters a method gets on a model with no measured entry (encoders/defaults.py)."""
    if method in ("va", "aligned-wva"):
        return {"layers": f"{n - n // 2}-{n - 1}" if method == "va" else f"0-{n - 1}"}
    if method.startswith("tp-"):  # the paper's early exit (encoders/prepending.py)
        layer = round(n * 27 / 32) if method == "tp-prompteol" else n - 1
        return {"tp_start": 1, "tp_exit": max(1, round(n * 7 / 32)), "layer": layer}
    return {"layer": n}


def summary(rows: list[dict], layers: dict[str, int]) -> None:
    """Best on the tuning file against the generic default; adopted only if SICK-R dev does not disagree."""
    print("\n| model | method | generic: params, STS-B train, SICK-R dev, STS-B dev | best on STS-B train: params, "
          "STS-B train, SICK-R dev, STS-B dev | adopted |\n|---|---|---|---|---|")
    for model in dict.fromkeys(r["model"] for r in rows):
        for method in dict.fromkeys(r["method"] for r in rows):
            mine = [r for r in rows if r["model"] == model and r["method"] == method]
            if not mine:
                continue
            best = max(mine, key=lambda r: r["tune"])
            base = next((r for r in mine if r["params"] == generic(method, layers[model])), None)
            if base is None:
                continue  # a partial log: the generic setting was not reached
            adopted = best["tune"] > base["tune"] and best["check"] >= base["check"]
            print(f"| {model} | {method} | {_cell(base)} | {_cell(best)} | {'yes' if adopted else 'no'} |")


def _cell(row: dict) -> str:
    report = f", {row['report']:.2f}" if "report" in row else ""
    return f"{json.dumps(row['params'])}, {row['tune']:.2f}, {row['check']:.2f}{report}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="smollm2-135m,gemma3-270m")
    parser.add_argument("--tune", type=Path, default=STS / "stsb/train.tsv")
    parser.add_argument("--sample", type=int, default=0, help="a seeded sample of this many --tune pairs")
    parser.add_argument("--check", type=Path, default=STS / "sickr/dev.tsv")
    parser.add_argument("--report", type=Path, help="a file reported beside, never chosen on (e.g. STS-B dev)")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help="any of prompteol, cot, ke, metaeol, mean, last, tp-<prompt method>, va, aligned-wva")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--from-log", type=Path, help="only summarise the JSON lines of an earlier run's output")
    args = parser.parse_args()
    if args.from_log:
        rows = [json.loads(line) for line in args.from_log.read_text().splitlines() if line.startswith("{")]
    else:
        rows = [r for model in args.models.split(",")
                for r in tune_model(model, args.tune, args.check, args.methods.split(","), args.sample, args.report)]
    summary(rows, {model: load_backbone(model).num_layers for model in dict.fromkeys(r["model"] for r in rows)})
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
