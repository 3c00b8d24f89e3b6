"""The on-disk index format: a folder with a manifest over segments (segments.py), each a folder of
documents in Parquet and arrays in .npy.

A build writes into a hidden temporary sibling and renames it into place only when complete, so an
interrupted build (Ctrl-C, SIGTERM, SIGKILL, a crash) never leaves a half index under the real name and
never harms the index that was there. Nothing is pickled: loading reads JSON, Parquet, .npy with
allow_pickle=False and FAISS's own format, none of which can execute code.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute
import pyarrow.parquet as pq
import scipy.sparse as sp

from ..corpus.documents import Document
from ..corpus.passages import Passage
from ..errors import BadIndexError, BusyError, IndexExistsError, StorageError

FORMAT_VERSION = 2  # 2: a manifest over segments; 1: one flat folder (read as one segment, segments.py)
READABLE_FORMATS = (1, 2)
MANIFEST = "manifest.json"
DOCUMENTS = "documents.parquet"
# What loading relies on before anything else: field -> type, and the text fields inside two of them.
REQUIRED = {"settings": dict, "documents": int, "model": dict, "files": dict}
REQUIRED_TEXT = {"settings": ("method",), "model": ("name", "fingerprint", "dtype")}
NO_MODEL = {"name": "none", "fingerprint": "none", "dtype": "none"}  # the model record of a BM25-only index
DOCUMENT_SCHEMA = pa.schema([("id", pa.string()), ("title", pa.string()), ("text", pa.string()),
                             ("metadata", pa.string())])
# An index of passages (--passage-tokens) stores one row per passage: the document's id, title and metadata,
# the passage's text, its number in the document and its characters [start, end) of the document's text;
# "document" holds the whole text on the first passage of a document that was cut (null otherwise).
PASSAGE_COLUMNS = ("passage", "start", "end", "document")
PASSAGE_SCHEMA = pa.schema([*DOCUMENT_SCHEMA, ("passage", pa.int32()), ("start", pa.int64()),
                            ("end", pa.int64()), ("document", pa.string())])


def documents_table(documents: Sequence[Document]) -> pa.Table:
    """Documents as the index stores them (metadata as JSON text), in internal-id order."""
    return pa.table({"id": [d.id for d in documents], "title": [d.title for d in documents],
                     "text": [d.text for d in documents],
                     "metadata": [json.dumps(d.metadata, ensure_ascii=False) for d in documents]},
                    schema=DOCUMENT_SCHEMA)


def passages_table(passages: Sequence[Passage]) -> pa.Table:
    """Passages as an index of passages stores them (PASSAGE_SCHEMA), in internal-id order."""
    table = documents_table([p.row for p in passages])
    columns = {"passage": [p.number for p in passages], "start": [p.start for p in passages],
               "end": [p.end for p in passages],
               "document": [None if p.whole or p.number else p.document.text for p in passages]}
    return pa.table({**{name: table.column(name) for name in table.column_names}, **columns}, schema=PASSAGE_SCHEMA)


def whole_text(text: str, document: str | None) -> str:
    """A stored row's document text: the whole text a cut document's first passage carries, else its own."""
    return text if document is None else document


def has_passages(table: pa.Table) -> bool:
    return "passage" in table.column_names


def first_passages(table: pa.Table) -> pa.Table:
    """One row per document: its first passage (every row of an index without passages)."""
    return table.filter(pa.compute.equal(table.column("passage"), 0)) if has_passages(table) else table


def stored_contents(table: pa.Table) -> list[str]:
    """What was embedded for each stored document (title and text, as Document.content joins them)."""
    return [Document("", text, title).content
            for title, text in zip(table.column("title").to_pylist(), table.column("text").to_pylist(),
                                   strict=True)]


@contextmanager
def guard_disk(path: Path) -> Iterator[None]:
    """An OS error while writing (a full disk above all) becomes one clear StorageError naming the path."""
    try:
        yield
    except OSError as exc:
        hint = "; free some space and run it again" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else ""
        raise StorageError(f"cannot write {exc.filename or path}: {exc.strerror or exc}{hint} "
                           "(any existing index under that name is untouched)") from None


@contextmanager
def exclusive(target: str | Path) -> Iterator[None]:
    """One writer per index name at a time (builds, resumes, updates): a second one is refused, not
    interleaved, because two writers would each publish a version that lacks the other's work.

    The lock file is removed on release while still locked; a locker that opened the removed file
    notices (its inode is no longer the path's) and is refused like any other contender.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    lock = target.parent / f".{target.name}.lock"
    busy = BusyError(f"{target}: another build or update of this index is running; wait for it to finish")
    with guard_disk(lock):
        fh = open(lock, "a+")  # noqa: SIM115 (closed below; only the opening is a disk error)
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise busy from None
        try:
            if not lock.exists() or os.stat(lock).st_ino != os.fstat(fh.fileno()).st_ino:
                raise busy  # the holder before us removed this file: another writer has a newer one
            try:
                yield
            finally:
                lock.unlink(missing_ok=True)
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def check_target(target: str | Path, overwrite: bool) -> None:
    """Refuse to build over an existing index, or over anything else at that path, unless overwrite: one
    typo must not destroy hours of model time. (The replacement still swaps in atomically.)"""
    target = Path(target)
    if overwrite or not target.exists():
        return
    if (target / MANIFEST).is_file():
        try:
            count = f"{json.loads((target / MANIFEST).read_text()).get('documents', '?')} documents"
        except (OSError, ValueError):
            count = "a damaged manifest"
        raise IndexExistsError(f"{target} already holds an index ({count}); pass --overwrite (overwrite=True) "
                               "to replace it, or name another --index")
    kind = "folder" if target.is_dir() else "file"
    raise IndexExistsError(f"{target} exists and is a {kind}, not an index; refusing to replace it "
                           "(--overwrite replaces it)")


def fsync_folder(folder: Path) -> None:
    """Flush a folder's files and its entries to disk, so a rename after it publishes complete data."""
    for p in folder.iterdir():
        if p.is_file():
            with open(p, "rb") as fh:
                os.fsync(fh.fileno())
    sync_entries(folder)


def sync_entries(folder: Path) -> None:
    """Flush a folder's entries (a rename or a new name in it) to disk."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def file_sha256(path: Path, block: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while data := fh.read(block):
            h.update(data)
    return h.hexdigest()


def seal(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest with a checksum of its own content, so a changed value (a weight, a count) is caught
    on load like a changed file is."""
    body = {k: v for k, v in manifest.items() if k != "checksum"}
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False).encode("utf-8")
    return {**body, "checksum": hashlib.sha256(canonical).hexdigest()}


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


class FileWriter:
    """Writes one folder's files (a segment's: the documents and each leg's arrays); checksums come later."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._documents: pq.ParquetWriter | None = None
        self._schema = DOCUMENT_SCHEMA

    def add_documents(self, table: pa.Table) -> None:
        """Append documents (DOCUMENT_SCHEMA, or PASSAGE_SCHEMA: the first table decides) in internal-id
        order; streams to disk."""
        with guard_disk(self.folder / DOCUMENTS):
            if self._documents is None:
                self._schema = PASSAGE_SCHEMA if has_passages(table) else DOCUMENT_SCHEMA
                self._documents = pq.ParquetWriter(self.folder / DOCUMENTS, self._schema, compression="zstd")
            self._documents.write_table(table.select(self._schema.names).cast(self._schema))

    def add_file(self, name: str, data: bytes) -> None:
        with guard_disk(self.folder / name):
            (self.folder / name).write_bytes(data)

    def add_array(self, name: str, array: np.ndarray) -> None:
        with guard_disk(self.folder / f"{name}.npy"):
            np.save(self.folder / f"{name}.npy", np.ascontiguousarray(array), allow_pickle=False)

    def add_csr(self, name: str, matrix: sp.csr_matrix) -> None:
        """A CSR matrix as three plain .npy arrays (read back by load_csr): no pickle."""
        for part in ("indptr", "indices", "data"):
            self.add_array(f"{name}_{part}", getattr(matrix, part))

    def close(self) -> None:
        """Finish the documents file (an empty one when none were added) and flush the folder to disk."""
        with guard_disk(self.folder):
            if self._documents is None:
                self.add_documents(documents_table([]))
            self._documents.close()
            self._documents = None
            fsync_folder(self.folder)

    def abandon(self) -> None:
        if self._documents is not None:
            self._documents.close()
            self._documents = None


def checksums(folder: Path, names: Sequence[str]) -> tuple[dict[str, int], dict[str, str]]:
    """Sizes and sha256 of files named relative to folder, as a manifest lists them."""
    return ({name: (folder / name).stat().st_size for name in names},
            {name: file_sha256(folder / name) for name in names})


class IndexWriter:
    """Collects a whole index (its segments' folders) in a temporary folder; commit() puts it in place,
    anything else drops it."""

    def __init__(self, target: str | Path):
        self.target = Path(target)
        self.target.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_builds(self.target)
        self.folder = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.tmp-{os.getpid()}-",
                                            dir=self.target.parent))
        self._open: list[FileWriter] = []

    def __enter__(self) -> IndexWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        for writer in self._open:
            writer.abandon()
        if self.folder.exists():
            shutil.rmtree(self.folder, ignore_errors=True)

    def segment(self, name: str) -> FileWriter:
        """A writer for one segment's folder inside the index being written."""
        with guard_disk(self.folder / name):
            (self.folder / name).mkdir()
        writer = FileWriter(self.folder / name)
        self._open.append(writer)
        return writer

    def commit(self, manifest: dict[str, Any]) -> Path:
        """Write the manifest last, with every file's size and sha256, then swap the folder into place."""
        with guard_disk(self.folder):  # the segments' writers were closed by their owner (indexer._assemble)
            names = sorted(str(p.relative_to(self.folder)) for p in self.folder.rglob("*") if p.is_file())
            manifest = {"format_version": FORMAT_VERSION, **manifest}
            manifest["files"], manifest["sha256"] = checksums(self.folder, names)
            (self.folder / MANIFEST).write_text(json.dumps(seal(manifest), indent=2, ensure_ascii=False))
            fsync_folder(self.folder)
            return self._swap()

    def _swap(self) -> Path:
        old = None
        if self.target.exists():
            old = self.target.parent / f".{self.target.name}.old-{os.getpid()}"
            shutil.rmtree(old, ignore_errors=True)
            os.rename(self.target, old)
        os.rename(self.folder, self.target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.target


def read_json_manifest(folder: str | Path) -> dict[str, Any]:
    """The manifest alone, format checked; the files it lists are not looked at."""
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
    if not isinstance(manifest, dict) or manifest.get("format_version") not in READABLE_FORMATS:
        version = manifest.get("format_version") if isinstance(manifest, dict) else None
        raise BadIndexError(f"{path}: index format {version} is not supported "
                            f"(this version reads formats {', '.join(map(str, READABLE_FORMATS))}); "
                            "rebuild the index")
    if "checksum" in manifest and seal(manifest)["checksum"] != manifest["checksum"]:
        raise BadIndexError(f"{path}: its checksum does not match its content; the manifest was altered or "
                            "damaged")
    for key, kind in REQUIRED.items():
        if not isinstance(manifest.get(key), kind) or isinstance(manifest.get(key), bool):
            raise BadIndexError(f"{path}: field '{key}' is missing or not a {kind.__name__}; the index is damaged")
    for key, names in REQUIRED_TEXT.items():
        if missing := [n for n in names if not isinstance(manifest[key].get(n), str)]:
            raise BadIndexError(f"{path}: field '{key}' lacks {', '.join(missing)}; the index is damaged")
    return manifest


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """The manifest, after the cheap check that every file it lists is there with its recorded size."""
    folder = Path(folder)
    manifest = read_json_manifest(folder)
    for name, size in manifest.get("files", {}).items():
        actual = (folder / name).stat().st_size if (folder / name).exists() else None
        if actual != size:
            raise BadIndexError(f"{folder / name}: expected {size} bytes, found "
                                f"{'no file' if actual is None else actual}; the index is damaged")
    return manifest


def load_array(folder: str | Path, name: str, mmap: bool = True) -> np.ndarray:
    """An .npy array. numpy parses the header with `ast.literal_eval` and falls back to `tokenize`, so a
    damaged header raises SyntaxError, tokenize.TokenError and others besides ValueError: any failure to
    parse means a damaged file, so every one becomes BadIndexError."""
    path = Path(folder) / f"{name}.npy"
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except Exception as exc:  # any parse failure: see the docstring
        raise BadIndexError(f"{path}: cannot read ({exc})") from None


def read_file(folder: str | Path, name: str, manifest: dict[str, Any] | None = None) -> bytes:
    """A whole file; checked against the manifest's sha256 when given one (cheap: it is read anyway)."""
    path = Path(folder) / name
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BadIndexError(f"{path}: cannot read ({exc.strerror})") from None
    expected = (manifest or {}).get("sha256", {}).get(name)
    if expected is not None and hashlib.sha256(data).hexdigest() != expected:
        raise BadIndexError(f"{path}: its checksum does not match the manifest; the file was altered or "
                            "damaged (`retriever verify` checks every file)")
    return data


def load_csr(folder: str | Path, name: str, shape: tuple[int, int]) -> sp.csr_matrix:
    """A CSR matrix from its three .npy arrays, with the structural checks that keep a damaged file from
    becoming a wrong answer or a crash inside scipy: pointers monotone and matching, ids in range."""
    data, indices, indptr = (load_array(folder, f"{name}_{part}") for part in ("data", "indices", "indptr"))
    where = f"{Path(folder) / name}_*.npy"
    if indptr.ndim != 1 or len(indptr) != shape[0] + 1 or indices.ndim != 1 or len(indices) != len(data):
        raise BadIndexError(f"{where}: array lengths do not fit a {shape[0]} x {shape[1]} matrix")
    if len(indptr) and (indptr[0] != 0 or indptr[-1] != len(indices) or np.any(np.diff(indptr) < 0)):
        raise BadIndexError(f"{where}: row pointers are damaged")
    if len(indices) and (indices.min() < 0 or indices.max() >= shape[1]):
        raise BadIndexError(f"{where}: column ids out of range")
    return sp.csr_matrix((data, indices, indptr), shape=shape)


def rewrite_manifest(folder: str | Path, manifest: dict[str, Any]) -> None:
    """Replace a committed index's manifest atomically (after tuning): readers see the old or the new."""
    path = Path(folder) / MANIFEST
    temp = path.with_name(f".{MANIFEST}.tmp-{os.getpid()}")
    with open(temp, "w") as fh:
        fh.write(json.dumps(seal(manifest), indent=2, ensure_ascii=False))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(temp, path)
    sync_entries(path.parent)


def read_documents(folder: str | Path, columns: list[str] | None = None) -> pa.Table:
    """A segment's stored documents; columns: only these (an id check needs no text)."""
    path = Path(folder) / DOCUMENTS
    try:
        return pq.read_table(path, columns=columns, memory_map=True)
    except (OSError, pa.ArrowException) as exc:
        raise BadIndexError(f"{path}: cannot read ({exc})") from None


def disk_size(folder: str | Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())
