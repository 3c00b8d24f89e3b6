"""Where indexes live by default and which was built last: two paths, no array library, so the CLI
finds an index (or says there is none) at once."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import BadIndexError

LAST_POINTER = ".last"


def home() -> Path:
    """Where indexes live by default: $RETRIEVER_HOME, else ./indexes."""
    return Path(os.environ.get("RETRIEVER_HOME") or "indexes")


def remember_last(path: Path) -> None:
    base = home()
    base.mkdir(parents=True, exist_ok=True)
    (base / LAST_POINTER).write_text(str(Path(path).resolve()))


def last_built() -> Path:
    pointer = home() / LAST_POINTER
    if not pointer.exists():
        raise BadIndexError(f"no index built yet under {home()}/; build one with `retriever index FILE` "
                            "or name one with --index DIR")
    return Path(pointer.read_text().strip())
