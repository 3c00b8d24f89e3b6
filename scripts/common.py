"""What the scripts share, in one place: where the data is (../shared beside the checkout), the offline
environment (set when this module is imported, so import it before any model library), and peak memory
in one unit (MiB). Scripts run as `python scripts/NAME.py`, so this folder is on their path."""

from __future__ import annotations

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

