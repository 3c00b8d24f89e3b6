"""The on-disk index format: a folder with a manifest, documents in Parquet and arrays in .npy.

A build writes into a hidden temporary sibling and renames it into place only when complete, so an
interrupted build (Ctrl-C, SIGTERM, SIGKILL, a crash) never leaves a half index under the real name and
never harms the index that was there. Nothing is pickled: loading reads JSON, Parquet, .npy with
allow_pickle=False and FAISS's own format, none of which can execute code.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .errors import BadIndexError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DOCUMENTS = "documents.parquet"
LAST_POINTER = ".last"
DOCUMENT_SCHEMA = pa.schema([("id", pa.string()), ("title", pa.string()), ("text", pa.string()),
                             ("metadata", pa.string())])


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


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_builds(target: Path) -> None:
    """Temporary folders left by builds that were killed outright (SIGKILL, power loss)."""
    for stale in target.parent.glob(f".{target.name}.tmp-*"):
        pid = stale.name.rsplit("-", 2)[-2] if stale.name.count("-") >= 2 else ""
        if not pid.isdigit() or not _pid_alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)


class IndexWriter:
    """Collects an index's files in a temporary folder; commit() puts it in place, anything else drops it."""

    def __init__(self, target: str | Path):
        self.target = Path(target)
        self.target.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_builds(self.target)
        self.folder = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.tmp-{os.getpid()}-",
                                            dir=self.target.parent))
        self._documents: pq.ParquetWriter | None = None
        self.sizes: dict[str, int] = {}

    def __enter__(self) -> IndexWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._documents is not None:
            self._documents.close()
            self._documents = None
        if self.folder.exists():
            shutil.rmtree(self.folder, ignore_errors=True)

    def add_documents(self, rows: Iterable[tuple[str, str, str, dict]]) -> None:
        """Append documents (id, title, text, metadata) in internal-id order; streams to disk."""
        rows = list(rows)
        table = pa.table({"id": [r[0] for r in rows], "title": [r[1] for r in rows],
                          "text": [r[2] for r in rows],
                          "metadata": [json.dumps(r[3], ensure_ascii=False) for r in rows]},
                         schema=DOCUMENT_SCHEMA)
        if self._documents is None:
            self._documents = pq.ParquetWriter(self.folder / DOCUMENTS, DOCUMENT_SCHEMA, compression="zstd")
        self._documents.write_table(table)

    def add_file(self, name: str, data: bytes) -> None:
        (self.folder / name).write_bytes(data)

    def add_array(self, name: str, array: np.ndarray) -> None:
        np.save(self.folder / f"{name}.npy", np.ascontiguousarray(array), allow_pickle=False)

    def commit(self, manifest: dict[str, Any]) -> Path:
        """Write the manifest last, then swap the folder into place."""
        if self._documents is None:
            self.add_documents([])
        self._documents.close()
        self._documents = None
        manifest = {"format_version": FORMAT_VERSION, **manifest}
        manifest["files"] = {p.name: p.stat().st_size for p in sorted(self.folder.iterdir())}
        (self.folder / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False))
        for p in self.folder.iterdir():
            with open(p, "rb") as fh:
                os.fsync(fh.fileno())
        old = None
        if self.target.exists():
            old = self.target.parent / f".{self.target.name}.old-{os.getpid()}"
            shutil.rmtree(old, ignore_errors=True)
            os.rename(self.target, old)
        os.rename(self.folder, self.target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.target


def read_manifest(folder: str | Path) -> dict[str, Any]:
    folder = Path(folder)
    path = folder / MANIFEST
    if not folder.is_dir():
        raise BadIndexError(f"no index at {folder}")
    if not path.exists():
        raise BadIndexError(f"{folder} is not a complete index: {MANIFEST} is missing")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadIndexError(f"{path}: unreadable manifest ({exc})") from None
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BadIndexError(f"{path}: index format {manifest.get('format_version')} is not supported "
                            f"(this version reads format {FORMAT_VERSION}); rebuild the index")
    for name, size in manifest.get("files", {}).items():
        actual = (folder / name).stat().st_size if (folder / name).exists() else None
        if actual != size:
            raise BadIndexError(f"{folder / name}: expected {size} bytes, found "
                                f"{'no file' if actual is None else actual}; the index is damaged")
    return manifest


def load_array(folder: str | Path, name: str, mmap: bool = True) -> np.ndarray:
    path = Path(folder) / f"{name}.npy"
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise BadIndexError(f"{path}: cannot read ({exc})") from None


def read_file(folder: str | Path, name: str) -> bytes:
    path = Path(folder) / name
    try:
        return path.read_bytes()
    except OSError as exc:
        raise BadIndexError(f"{path}: cannot read ({exc.strerror})") from None


def rewrite_manifest(folder: str | Path, manifest: dict[str, Any]) -> None:
    """Replace a committed index's manifest atomically (after tuning): readers see the old or the new."""
    path = Path(folder) / MANIFEST
    temp = path.with_name(f".{MANIFEST}.tmp-{os.getpid()}")
    with open(temp, "w") as fh:
        fh.write(json.dumps(manifest, indent=2, ensure_ascii=False))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(temp, path)


def read_documents(folder: str | Path) -> pa.Table:
    path = Path(folder) / DOCUMENTS
    try:
        return pq.read_table(path, memory_map=True)
    except (OSError, pa.ArrowException) as exc:
        raise BadIndexError(f"{path}: cannot read ({exc})") from None


def disk_size(folder: str | Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).iterdir() if p.is_file())
