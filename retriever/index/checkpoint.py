"""Committed chunks of a build in progress, so a killed build resumes instead of starting over.

An index can cost hours of model time. The indexer therefore commits its work chunk by chunk into a
hidden sibling folder (`.NAME.partial/`): each chunk's documents (Parquet) and vectors (.npy) are written
into a temporary folder and renamed into place, so a chunk is either whole or absent, whatever kills the
process. Running the same build again skips the committed chunks after checking that they hold exactly
the documents the corpus has at those positions (a digest per chunk), and that the model and every
setting are the same; anything else is refused rather than mixed into one index.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..corpus.documents import Document
from ..errors import InputError, RetrieverError, StorageError
from .store import documents_table, fsync_folder, guard_disk

STATE = "state.json"
CHUNK_INFO = "chunk.json"


def digest(documents: Sequence[Document]) -> str:
    """What a chunk holds, by content: the same documents in the same order give the same digest."""
    h = hashlib.sha256()
    for d in documents:
        h.update(json.dumps([d.id, d.title, d.text, d.metadata], ensure_ascii=False, sort_keys=True).encode())
        h.update(b"\n")
    return h.hexdigest()


@dataclass
class Chunk:
    """One committed chunk, read back for assembling the index."""

    folder: Path
    info: dict[str, Any]

    def documents(self) -> pa.Table:
        return pq.read_table(self.folder / "documents.parquet")

    def array(self, name: str) -> np.ndarray:
        return np.load(self.folder / f"{name}.npy", mmap_mode="r", allow_pickle=False)


def committed_documents(target: str | Path) -> int:
    """Documents an interrupted build of target has committed: what the same command resumes from (the
    progress line also counted documents of the chunk that was not finished)."""
    target = Path(target)
    total = 0
    for info in (target.parent / f".{target.name}.partial").glob("chunk-*/chunk.json"):
        try:
            total += int(json.loads(info.read_text()).get("documents", 0))
        except (OSError, ValueError):
            continue
    return total


class Checkpoint:
    """The work folder of one build target: its identity (model, settings, chunk size) and its chunks."""

    def __init__(self, target: str | Path, identity: dict[str, Any], restart: bool = False):
        self.target = Path(target)
        self.folder = self.target.parent / f".{self.target.name}.partial"
        self.identity = identity
        if restart:
            self.discard()
        if (self.folder / STATE).exists():
            self._check_identity()
        else:
            with guard_disk(self.folder):
                shutil.rmtree(self.folder, ignore_errors=True)
                self.folder.mkdir(parents=True)
                (self.folder / STATE).write_text(json.dumps(identity, indent=2, ensure_ascii=False))
        self.committed = self._count_chunks()

    def _check_identity(self) -> None:
        try:
            stored = json.loads((self.folder / STATE).read_text())
        except (OSError, ValueError):
            stored = {}
        changed = [key for key in sorted(set(stored) | set(self.identity)) if stored.get(key) != self.identity.get(key)]
        if changed:
            raise RetrieverError(
                f"{self.target}: an interrupted build of this index used another {', '.join(changed)}; "
                f"run it again as it was, or pass --restart to discard its work ({self.folder})")

    def _count_chunks(self) -> int:
        """Committed chunks are numbered from 0 without gaps; a gap ends the usable run."""
        count = 0
        while (self._chunk_folder(count) / CHUNK_INFO).exists():
            count += 1
        return count

    def _chunk_folder(self, number: int) -> Path:
        return self.folder / f"chunk-{number:06d}"

    def check(self, number: int, documents: Sequence[Document], source: str | None) -> None:
        """A committed chunk must hold the documents the corpus has now at its place."""
        info = self.chunk(number).info
        if info["digest"] != digest(documents):
            raise InputError(
                f"the corpus changed since the interrupted build: chunk {number} ({info['documents']} "
                f"documents from id '{info['first_document']}') differs from what the corpus has there now; "
                "run it on the same corpus, or pass --restart", source)

    def commit(self, number: int, documents: Sequence[Document], arrays: dict[str, np.ndarray],
               info: dict[str, Any], table: pa.Table | None = None) -> None:
        """Write one chunk aside and rename it into place: it is whole or absent. table: the rows the legs
        index (the documents' passages, store.passages_table), when not one per document."""
        final = self._chunk_folder(number)
        temp = self.folder / f".chunk-{number:06d}.tmp-{os.getpid()}"
        with guard_disk(temp):
            shutil.rmtree(temp, ignore_errors=True)
            temp.mkdir()
            table = documents_table(documents) if table is None else table
            pq.write_table(table, temp / "documents.parquet", compression="zstd")
            for name, array in arrays.items():
                np.save(temp / f"{name}.npy", np.ascontiguousarray(array), allow_pickle=False)
            info = {"documents": len(documents), "rows": table.num_rows,
                    "first_document": documents[0].id if documents else None,
                    "digest": digest(documents), **info}
            (temp / CHUNK_INFO).write_text(json.dumps(info, indent=2, ensure_ascii=False))
            fsync_folder(temp)
            os.rename(temp, final)
        self.committed = max(self.committed, number + 1)

    def chunk(self, number: int) -> Chunk:
        folder = self._chunk_folder(number)
        try:
            return Chunk(folder, json.loads((folder / CHUNK_INFO).read_text()))
        except (OSError, ValueError) as exc:
            raise StorageError(f"{folder}: unreadable chunk of an interrupted build ({exc}); "
                               "pass --restart to discard it") from None

    def chunks(self) -> Iterator[Chunk]:
        for number in range(self.committed):
            yield self.chunk(number)

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

