"""A smaller SciFact for comparing prompts without a full build: every judged document plus a seeded sample.

    python scripts/scifact_subset.py OUT [--data DIR] [--size 1500] [--from-index INDEX]

Writes OUT/corpus.jsonl (every document judged in train or test, then others sampled with seed 0 up to
--size, in the corpus's order), OUT/queries.jsonl and OUT/qrels/ (copied). --from-index: also copy an
index of the full corpus to OUT-index and delete every other document from it (no model runs), so an
existing build is compared on exactly the same documents.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
from pathlib import Path

from common import SCIFACT  # isort: skip (first: the offline environment)
from retriever.api import delete_documents


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--data", type=Path, default=SCIFACT)
    parser.add_argument("--size", type=int, default=1500)
    parser.add_argument("--from-index", type=Path)
    args = parser.parse_args()
    judged = {line.split("\t")[1] for split in ("train", "test")
              for line in (args.data / "qrels" / f"{split}.tsv").read_text().splitlines()[1:]}
    docs = [json.loads(line) for line in (args.data / "corpus.jsonl").read_text().splitlines()]
    others = [d["_id"] for d in docs if d["_id"] not in judged]
    keep = judged | set(random.Random(0).sample(others, max(0, args.size - len(judged))))
    (args.out / "qrels").mkdir(parents=True, exist_ok=True)
    with open(args.out / "corpus.jsonl", "w") as fh:
        fh.writelines(json.dumps(d) + "\n" for d in docs if d["_id"] in keep)
    shutil.copy(args.data / "queries.jsonl", args.out / "queries.jsonl")
    for split in ("train", "test"):
        shutil.copy(args.data / "qrels" / f"{split}.tsv", args.out / "qrels" / f"{split}.tsv")
    print(f"{args.out}: {len(keep)} documents ({len(judged)} judged)")
    if args.from_index:
        index = args.out.with_name(args.out.name + "-index")
        shutil.copytree(args.from_index, index)
        delete_documents(index, [d["_id"] for d in docs if d["_id"] not in keep])
        print(f"{index}: the full index's rows for those documents")


if __name__ == "__main__":
    main()
