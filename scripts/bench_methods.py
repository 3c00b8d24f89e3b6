"""Method x model table on STS (Spearman x100) with encoding cost relative to prompteol.

    python scripts/bench_methods.py [--models smollm2-135m,gemma3-270m] [--methods all] [--json out.json]

Reads ../shared/data/sts/{stsb,sickr}/dev.tsv. Prints a Markdown table to paste into docs/methods.md.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from retriever.api import evaluate_sts
from retriever.backbones import load_backbone
from retriever.encoders import method_names

ROOT = Path(__file__).resolve().parents[1]
STS = ROOT.parent / "shared/data/sts"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="smollm2-135m,gemma3-270m")
    parser.add_argument("--methods", default="all")
    parser.add_argument("--files", default=f"{STS}/stsb/dev.tsv,{STS}/sickr/dev.tsv")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    methods = method_names() if args.methods == "all" else args.methods.split(",")
    if "prompteol" in methods:  # the cost baseline goes first
        methods = ["prompteol", *[m for m in methods if m != "prompteol"]]
    files = args.files.split(",")
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


if __name__ == "__main__":
    main()
