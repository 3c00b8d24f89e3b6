"""Method x model table on STS (Spearman x100) with encoding cost relative to prompteol.

    python scripts/bench_methods.py [--models smollm2-135m,gemma3-270m] [--methods all] [--json out.json]

Reads ../shared/data/sts/{stsb,sickr}/dev.tsv. Prints a Markdown table to paste into docs/methods.md.

    python scripts/bench_methods.py --cost-only 400 [--rounds 5] [--models ...] [--methods ...]

Cost only, for a machine that is not quiet: each round times every method once on the same first 400
sentences of the first file, in turn, so slow drifts in the machine's load hit all methods alike; prints
each method's median seconds per 1,000 sentences and the median over rounds of its ratio to prompteol.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from common import STS  # isort: skip (first: the offline environment)

from costs import interleaved_costs  # scripts/ is on the path when a script runs

from retriever.eval.evaluate import read_sts
from retriever.eval.sts import evaluate_sts
from retriever.models.backbones import load_backbone
from retriever.models.encoders import method_names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="smollm2-135m,gemma3-270m")
    parser.add_argument("--methods", default="all")
    parser.add_argument("--files", default=f"{STS}/stsb/dev.tsv,{STS}/sickr/dev.tsv")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--cost-only", type=int, default=0, metavar="N", help="Only time N sentences per method.")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    methods = method_names() if args.methods == "all" else args.methods.split(",")
    if "prompteol" in methods:  # the cost baseline goes first
        methods = ["prompteol", *[m for m in methods if m != "prompteol"]]
    files = args.files.split(",")
    if args.cost_only:
        sentences = read_sts(files[0])[0][: args.cost_only]
        return cost_table(args.models.split(","), methods, sentences, args.rounds)
    rows = []
    for model in args.models.split(","):
        backbone = load_backbone(model)
        for method in methods:
            for row in evaluate_sts(files, [method], backbone=backbone):
                rows.append(row)
                print(json.dumps(row), flush=True)
    names = " | ".join(Path(f).parent.name for f in files)
    print(f"\n| model | method | {names} | s / 1k sentences | cost vs prompteol |")
    print(f"|---|---|{'---|' * len(files)}---|---|")
    for model in dict.fromkeys(r["model"] for r in rows):
        base = [r for r in rows if r["model"] == model and r["method"] == "prompteol"]
        base_cost = sum(r["seconds_per_1000"] for r in base) / max(len(base), 1)
        for method in methods:
            mine = [r for r in rows if r["model"] == model and r["method"] == method]
            cost = sum(r["seconds_per_1000"] for r in mine) / len(mine)
            cells = " | ".join(f"{r['spearman']:.2f}" for r in mine)
            print(f"| {model} | {method} | {cells} | {cost:.1f} | {cost / base_cost:.2f}x |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


def cost_table(models: list[str], methods: list[str], sentences: list[str], rounds: int) -> None:
    print(f"\n| model | method | tokens / sentence | s / 1k sentences (median of {rounds}) "
          "| cost vs prompteol (median ratio) |")
    print("|---|---|---|---|---|")
    for model in models:
        for row in interleaved_costs(load_backbone(model), methods, sentences, rounds):
            ratio = "-" if row["vs_prompteol"] is None else f"{row['vs_prompteol']:.2f}x"  # prompteol not timed
            print(f"| {model} | {row['method']} | {row['tokens'] / len(sentences):.1f} | {row['s_per_1k']:.1f} "
                  f"| {ratio} |", flush=True)


if __name__ == "__main__":
    main()
