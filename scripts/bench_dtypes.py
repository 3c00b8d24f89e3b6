"""Quality does not depend on the dtype: SciFact and STS-B in fp32 and bf16, side by side, for docs/quality.md.

    python scripts/bench_dtypes.py [--max-tokens auto] [--indexes /tmp/dtypes] [--only beir,sts]

For each dtype: a SciFact build with the default settings except the token budget (--max-tokens auto: 512
where this CPU has native bf16, else 128 so that an emulated-bf16 build stays under an hour), evaluated on
the test split with the index's default fusion (no tuning, so that nothing but the dtype differs), and the
STS-B dev Spearman x100 of every one-pass method (each with the model's measured defaults). Prints both as
Markdown tables with the bf16 - fp32 difference; the targets are |diff| <= 0.003 nDCG@10 and <= 0.5 Spearman.
The indexes are reused when present (a rerun only evaluates), and the per-query differences are printed
with their paired standard error.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from common import ROOT, SHARED  # isort: skip (first: the offline environment)

import numpy as np
import torch

from retriever.corpus.queries import read_qrels
from retriever.eval.beir import evaluate_beir, read_trec
from retriever.eval.sts import evaluate_sts
from retriever.models.backbones import auto_dtype, load_backbone, pick_device
from retriever.settings import IndexSettings

DATA = SHARED / "data"
DTYPES = ("float32", "bfloat16")
ONE_PASS = ("prompteol", "cot", "ke", "mean", "last", "va", "aligned-wva", "tp-prompteol")


def beir_rows(args, budget: int) -> dict[str, dict[str, float]]:
    results = {}
    for dtype in DTYPES:
        index = args.indexes / f"scifact-{budget}-{dtype}"
        report = evaluate_beir(DATA / "beir/scifact", index.parent / f"{index.name}-eval", index_dir=index,
                               settings=IndexSettings(max_tokens=budget, dense_model=None), dtype=dtype, quiet=False)
        results[dtype] = {run: v["nDCG@10"] for run, v in report["results"].items()}
        print(json.dumps({"dtype": dtype, "max_tokens": budget, "nDCG@10": results[dtype]}), flush=True)
    return results


def paired(args, budget: int) -> None:
    """Per-query nDCG@10 differences between the two dtypes' runs (the eval folders' TREC files): how many
    of the test queries changed at all, and the paired standard error of the mean difference, so a
    difference can be read against the sampling noise of this many queries."""
    import pytrec_eval

    qrels = read_qrels(DATA / "beir/scifact/qrels/test.tsv")
    measure = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut_10"})
    print("\n| leg | mean bf16 - fp32 | paired SE | queries changed |\n|---|---|---|---|")
    for leg in ("dense", "sparse", "lexical", "hybrid"):
        per = [measure.evaluate(read_trec(args.indexes / f"scifact-{budget}-{d}-eval/run.{leg}.trec")) for d in DTYPES]
        diffs = np.array([per[1][q]["ndcg_cut_10"] - per[0][q]["ndcg_cut_10"] for q in per[0]])
        se = diffs.std(ddof=1) / np.sqrt(len(diffs))
        print(f"| {leg} | {diffs.mean():+.4f} | {se:.4f} | {int((np.abs(diffs) > 1e-9).sum())}/{len(diffs)} |")


def sts_rows(methods: list[str]) -> dict[str, dict[str, float]]:
    results = {}
    for dtype in DTYPES:
        backbone = load_backbone("smollm2-135m", dtype=dtype, quiet=True)
        rows = evaluate_sts([DATA / "sts/stsb/dev.tsv"], methods, backbone=backbone)
        results[dtype] = {r["method"]: r["spearman"] for r in rows}
        print(json.dumps({"dtype": dtype, "stsb_dev_spearman": results[dtype]}), flush=True)
    return results


def table(title: str, results: dict[str, dict[str, float]], digits: int, target: float) -> None:
    print(f"\n| {title} | fp32 | bf16 | bf16 - fp32 |\n|---|---|---|---|")
    worst = 0.0
    for name in results["float32"]:
        a, b = results["float32"][name], results["bfloat16"][name]
        worst = max(worst, abs(b - a))
        print(f"| {name} | {a:.{digits}f} | {b:.{digits}f} | {b - a:+.{digits}f} |")
    print(f"\nlargest |bf16 - fp32|: {worst:.{digits}f} (target <= {target})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-tokens", default="auto")
    parser.add_argument("--indexes", type=Path, default=ROOT / "indexes")
    parser.add_argument("--only", default="beir,sts")
    parser.add_argument("--methods", default=",".join(ONE_PASS))
    args = parser.parse_args()
    native = auto_dtype(pick_device()) == torch.bfloat16
    budget = (512 if native else 128) if args.max_tokens == "auto" else int(args.max_tokens)
    print(f"native bf16: {native}; SciFact budget {budget} tokens", flush=True)
    only = args.only.split(",")
    if "beir" in only:
        table(f"SciFact test nDCG@10 ({budget} tokens)", beir_rows(args, budget), 4, 0.003)
        paired(args, budget)
    if "sts" in only:
        table("STS-B dev Spearman x100", sts_rows(args.methods.split(",")), 2, 0.5)


if __name__ == "__main__":
    main()
