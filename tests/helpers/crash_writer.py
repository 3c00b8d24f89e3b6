"""Run one change to an index and SIGKILL this process at its n-th file-system call (tests/tiny/index/test_segments.py).

    python tests/helpers/crash_writer.py add|delete|optimize INDEX N MODEL DTYPE DOCS.jsonl

N = 0 runs the change to the end and prints {"calls": how many there were}. The calls counted are those
that change what is on disk, patched only after the model and the index are loaded.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys

import numpy as np

from retriever import Retriever, api


def _counting(kill_at: int) -> list[int]:
    calls = [0]

    def hook(function):
        def counted(*args, **kwargs):
            calls[0] += 1
            if calls[0] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return function(*args, **kwargs)
        return counted

    for name in ("rename", "replace", "fsync", "unlink", "mkdir", "rmdir"):
        setattr(os, name, hook(getattr(os, name)))
    np.save = hook(np.save)
    shutil.rmtree = hook(shutil.rmtree)
    return calls


def main() -> None:
    op, index, kill_at, model, dtype, docs = sys.argv[1:]
    retriever = Retriever.load(index, model=model, dtype=dtype) if op == "add" else None
    ids = Retriever.load(index, mode="lexical").searcher.ids
    gone = [ids[0], ids[len(ids) // 2], ids[-1]]  # the same three every run: first, middle and last
    calls = _counting(int(kill_at))
    if op == "add":
        retriever.add(docs, upsert=True)
    elif op == "delete":
        api.delete_documents(index, gone)
    else:
        api.optimize(index)
    print(json.dumps({"calls": calls[0]}))


if __name__ == "__main__":
    main()
