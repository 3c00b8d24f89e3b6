"""SciFact quality tables for docs/quality.md and docs/methods.md: each configuration through `retriever eval beir`.

    python scripts/bench_quality.py [--data DIR] [--indexes /tmp/bench] [--only NAME,...|methods]

Builds each index unless it already exists under --indexes (on 2 CPU cores a 512-token LLM build takes ~40 min),
tunes the fusion on train, reports test, and prints one Markdown table of every leg and the fusion.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from common import ROOT, SCIFACT  # isort: skip (first: the offline environment)

from retriever.eval.beir import evaluate_beir
from retriever.legs.keytokens.config import SparseConfig
from retriever.settings import IndexSettings

TOP_128 = SparseConfig(top_k=128, alpha=1.0, weighting="relu", own_tokens=False)
CONFIGS = {  # name -> (packaged model, settings); the LLM's own dense leg, as these rows were measured
    "bm25": ("smollm2-135m", IndexSettings(dense_model=None, legs=("lexical",))),
    # the key-token leg as first measured (top-128, alpha 1, relu): the rows in docs/quality.md, and the index
    # scripts/sweep_knobs.py re-derives every key-token variant from
    "prompteol-512": ("smollm2-135m", IndexSettings(dense_model=None, method="prompteol", max_tokens=512,
                                                    sparse=TOP_128)),
    "prompteol-512-default": ("smollm2-135m", IndexSettings(dense_model=None, method="prompteol", max_tokens=512)),
    "va-256": ("smollm2-135m", IndexSettings(dense_model=None, method="va", method_params={"layers": "last-half"},
                                             max_tokens=256, sparse=TOP_128)),
    "gemma3-prompteol-512": ("gemma3-270m", IndexSettings(dense_model=None, method="prompteol", max_tokens=512)),
    # the same budget for both models, for the model comparison (a 512-token gemma3 build takes ~2 h here)
    "prompteol-256-default": ("smollm2-135m", IndexSettings(dense_model=None, method="prompteol", max_tokens=256)),
    "gemma3-prompteol-256": ("gemma3-270m", IndexSettings(dense_model=None, method="prompteol", max_tokens=256)),
    # the methods table's best dense leg at the full budget, against prompteol-512-default
    "mean-512": ("smollm2-135m", IndexSettings(dense_model=None, method="mean", max_tokens=512)),
}
# The methods issue's comparison: each method with its measured per-model defaults, at 128 tokens so that
# all of them fit in one working session here (~20 min per build instead of ~40 at 512). `--only methods`
# runs the one-pass methods; metaeol is its own config, `--only m128-metaeol`: 8 passes, ~6.3M tokens,
# ~2.5 h at the ~710 tokens/s the one-pass builds ran at here.
METHODS = ("mean", "prompteol", "va", "aligned-wva", "tp-prompteol", "last", "cot", "ke")
CONFIGS.update({f"m128-{m}": ("smollm2-135m", IndexSettings(dense_model=None, method=m, max_tokens=128))
                for m in (*METHODS, "metaeol")})
GROUPS = {"methods": ",".join(f"m128-{m}" for m in METHODS)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=SCIFACT)
    parser.add_argument("--indexes", type=Path, default=ROOT / "indexes")
    parser.add_argument("--only", default=",".join(CONFIGS))
    args = parser.parse_args()
    rows = []
    for name in GROUPS.get(args.only, args.only).split(","):
        model, settings = CONFIGS[name]
        index = args.indexes / f"scifact-{name}"
        report = evaluate_beir(args.data, index.parent / f"{index.name}-eval" / "test", index_dir=index,
                               settings=settings, model=model, tune=len(settings.legs) > 1, make_plot=True, quiet=False)
        print(json.dumps({"config": name, **report["results"], "fusion": report["fusion"]}), flush=True)
        for run, values in report["results"].items():
            rows.append((name, run, values))
    print("\n| config | run | nDCG@10 | Recall@100 | MRR@10 | MAP@100 |\n|---|---|---|---|---|---|")
    for name, run, v in rows:
        print(f"| {name} | {run} | {v['nDCG@10']:.4f} | {v['Recall@100']:.4f} | {v['MRR@10']:.4f} "
              f"| {v['MAP@100']:.4f} |")


if __name__ == "__main__":
    main()
