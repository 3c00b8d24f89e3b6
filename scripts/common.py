"""What the scripts share, in one place: where the data is (../shared beside the checkout), the offline
environment (set when this module is imported, so import it before any model library), peak memory in
one unit (MiB), and the corpora and sizes the benchmarks share. Scripts run as `python scripts/NAME.py`,
so this folder is on their path; common.py, costs.py and key_token_variants.py are its libraries."""

from __future__ import annotations

import json
import os
import resource
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # models come from PyPI packages; nothing downloads at run time

ROOT = Path(__file__).resolve().parents[1]  # the checkout
SHARED = ROOT.parent / "shared"
SCIFACT = SHARED / "data" / "beir" / "scifact"
STS = SHARED / "data" / "sts"


def peak_mib(children: bool = False) -> float:
    """Peak resident memory so far, in MiB: this process's, or its finished children's (a running maximum:
    measure a smaller run first). Linux reports ru_maxrss in KiB."""
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return resource.getrusage(who).ru_maxrss / 1024


def repeated_corpus(source: Path, docs: int, target: Path) -> Path:
    """docs records cycled from source, each copy under new ids (a id -> a id~2)."""
    lines = source.read_text(encoding="utf-8").splitlines()
    with open(target, "w", encoding="utf-8") as out:
        for i in range(docs):
            record = json.loads(lines[i % len(lines)])
            record["_id"] = f"{record['_id']}~{i // len(lines)}"
            out.write(json.dumps(record) + "\n")
    return target


def folder_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20
