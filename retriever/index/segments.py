"""An index as a manifest over immutable segments, so an add writes only what is new.

A segment is a folder (`seg-000001/`) with its documents and every leg's files for them, written once
and never changed. The manifest lists the live segments, each with its tombstones (the rows deleted from
it, a small .npy file beside the manifest) and the fields its legs recorded. An add writes one new
segment; a delete writes tombstone lists; `optimize` merges every segment into one and drops the
tombstoned rows (updates.py). Each of these writes its files aside, renames them into place, and then
publishes the new version by replacing the manifest (one atomic rename): a crash at any point leaves the
old version or the new one, and files no manifest names are removed by the next writer.

Search sees one index: the live rows of every segment, in segment order, numbered from 0 (Segment.offset),
so a segmented index and one built at once from the same documents in the same order give the same rows.
Legs open all segments together (leg.Leg.open) and take corpus statistics (BM25's document frequencies
and average length, the key-token idf) over the live rows of all of them, never per segment.

An index of format 1 (one flat folder, written before segments) reads as one legacy segment: its legs'
files hold finished weights, which its legs still read; any write first rewrites it as segments.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import scipy.sparse as sp

from ..errors import BadIndexError
from .store import (
    FORMAT_VERSION,
    MANIFEST,
    FileWriter,
    checksums,
    guard_disk,
    load_array,
    load_csr,
    read_documents,
    read_file,
    read_json_manifest,
    rewrite_manifest,
    sync_entries,
)

PREFIX = "seg-"


def segment_name(number: int) -> str:
    return f"{PREFIX}{number:06d}"


@dataclass
class Segment:
    """One segment as search and the legs see it: where its files are, which of its rows are deleted and
    where its live rows start in the index's numbering."""

    folder: Path
    name: str
    rows: int  # documents stored in it, deleted or not
    deleted: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # its tombstoned rows, sorted
    fields: dict[str, Any] = field(default_factory=dict)  # what its legs recorded when it was written
    sha256: dict[str, str] = field(default_factory=dict)  # its files' checksums, by name within folder
    offset: int = 0  # the index row of its first live document
    legacy: bool = False  # a format-1 index's flat folder: legs' files hold finished weights

    @property
    def live_count(self) -> int:
        return self.rows - len(self.deleted)

    @cached_property
    def live(self) -> np.ndarray | None:
        """Which of its rows are live; None when none is deleted (callers skip the copy)."""
        if len(self.deleted) == 0:
            return None
        keep = np.ones(self.rows, dtype=bool)
        keep[self.deleted] = False
        return keep

    def live_rows(self) -> np.ndarray:
        """Its live rows, in order."""
        return np.arange(self.rows) if self.live is None else np.flatnonzero(self.live)

    @cached_property
    def index_rows(self) -> np.ndarray:
        """Each of its rows' row in the index; -1 for a deleted one."""
        out = np.full(self.rows, -1, dtype=np.int64)
        out[self.live_rows()] = self.offset + np.arange(self.live_count)
        return out

    def read_file(self, name: str) -> bytes:
        return read_file(self.folder, name, {"sha256": self.sha256})

    def array(self, name: str) -> np.ndarray:
        return load_array(self.folder, name)

    def csr(self, name: str, shape: tuple[int, int]) -> sp.csr_matrix:
        return load_csr(self.folder, name, shape)

    def documents(self, columns: list[str] | None = None) -> pa.Table:
        """Every stored document, deleted or not (only columns, when given)."""
        return read_documents(self.folder, columns)

    def live_documents(self, columns: list[str] | None = None) -> pa.Table:
        table = self.documents(columns)
        return table if self.live is None else table.filter(pa.array(self.live))


def is_legacy(manifest: dict[str, Any]) -> bool:
    return manifest.get("format_version") == 1


def segments_of(folder: str | Path, manifest: dict[str, Any]) -> list[Segment]:
    """The index's segments with live documents, in order, numbered as search numbers rows."""
    folder = Path(folder)
    if is_legacy(manifest):
        return [Segment(folder, "", manifest["documents"], fields=manifest, sha256=manifest.get("sha256", {}),
                        legacy=True)]
    out, offset = [], 0
    for entry in _entries(folder, manifest):
        name = entry["name"]
        segment = Segment(folder / name, name, entry["documents"], _tombstones(folder, manifest, entry),
                          entry.get("legs", {}), _files_of(manifest["sha256"], name), offset)
        offset += segment.live_count
        out.append(segment)
    if offset != manifest["documents"]:
        raise BadIndexError(f"{folder}: its segments hold {offset} live documents, the manifest says "
                            f"{manifest['documents']}; the index is damaged")
    return out


def _entries(folder: Path, manifest: dict[str, Any]) -> list[dict[str, Any]]:
    entries = manifest.get("segments")
    if not isinstance(entries, list) or not entries or not all(
            isinstance(e, dict) and isinstance(e.get("name"), str) and e["name"].startswith(PREFIX)
            and "/" not in e["name"] and isinstance(e.get("documents"), int) for e in entries):
        raise BadIndexError(f"{folder / MANIFEST}: field 'segments' is missing or damaged")
    return entries


def _files_of(sha256: dict[str, str], name: str) -> dict[str, str]:
    prefix = name + "/"
    return {path[len(prefix):]: digest for path, digest in sha256.items() if path.startswith(prefix)}


def _tombstones(folder: Path, manifest: dict[str, Any], entry: dict[str, Any]) -> np.ndarray:
    name = entry.get("tombstones")
    if name is None:
        return np.zeros(0, np.int64)
    read_file(folder, name, manifest)  # checksummed: a changed tombstone list would resurrect documents
    rows = np.asarray(load_array(folder, name.removesuffix(".npy"), mmap=False), dtype=np.int64)
    if rows.ndim != 1 or (len(rows) and (rows[0] < 0 or rows[-1] >= entry["documents"]
                                         or np.any(np.diff(rows) <= 0))):
        raise BadIndexError(f"{folder / name}: not sorted distinct rows of {entry['name']}")
    return rows


def live_documents(segments: Sequence[Segment], columns: list[str] | None = None) -> pa.Table:
    """The live documents of every segment, in index-row order (only columns, when given)."""
    return pa.concat_tables([s.live_documents(columns) for s in segments])


class Change:
    """One new version of a segmented index, written beside the current one and published by replacing its
    manifest. The caller holds the index's writer lock (store.exclusive)."""

    def __init__(self, folder: Path, manifest: dict[str, Any]):
        self.folder, self.base = folder, manifest
        self.entries = [dict(e) for e in manifest["segments"]]
        self.files, self.sha256 = dict(manifest["files"]), dict(manifest["sha256"])
        self.generation = manifest.get("generation", 1) + 1
        self._next = manifest.get("next_segment", len(self.entries) + 1)
        remove_unreferenced(folder, read_json_manifest(folder))  # what a writer killed before left behind

    def new_segment(self) -> SegmentDraft:
        """A segment written aside, in the index's folder (so that publishing it is a rename)."""
        name = segment_name(self._next)
        self._next += 1
        return SegmentDraft(self, name)

    def _publish(self, draft: SegmentDraft, legs: dict[str, Any], documents: int) -> None:
        final = self.folder / draft.name
        with guard_disk(final):
            os.rename(draft.writer.folder, final)
            sync_entries(self.folder)
        names = sorted(p.name for p in final.iterdir())
        files, digests = checksums(final, names)
        self.files.update({f"{draft.name}/{n}": size for n, size in files.items()})
        self.sha256.update({f"{draft.name}/{n}": d for n, d in digests.items()})
        self.entries.append({"name": draft.name, "documents": documents, "deleted": 0, "tombstones": None,
                             "legs": legs})

    def delete(self, segment: Segment, rows: np.ndarray) -> None:
        """Tombstone more of a segment's rows (its local rows); a segment left without live rows is dropped."""
        entry = next(e for e in self.entries if e["name"] == segment.name)
        deleted = np.union1d(segment.deleted, np.asarray(rows, np.int64))
        self._forget(entry.get("tombstones"))
        if len(deleted) == entry["documents"]:
            self.drop(segment.name)
            return
        name = f"{segment.name}.deleted-{self.generation:06d}.npy"
        with guard_disk(self.folder / name):
            np.save(self.folder / name, deleted, allow_pickle=False)
            with open(self.folder / name, "rb") as fh:
                os.fsync(fh.fileno())
        sizes, digests = checksums(self.folder, [name])
        self.files[name], self.sha256[name] = sizes[name], digests[name]
        entry.update(deleted=len(deleted), tombstones=name)

    def drop(self, name: str) -> None:
        """A segment out of the index (merged into another, or every row deleted)."""
        entry = next(e for e in self.entries if e["name"] == name)
        self._forget(entry.get("tombstones"))
        self.entries.remove(entry)
        for path in [p for p in self.files if p.startswith(name + "/")]:
            self.files.pop(path)
            self.sha256.pop(path, None)

    def _forget(self, name: str | None) -> None:
        if name is not None:
            self.files.pop(name, None)
            self.sha256.pop(name, None)

    def manifest(self, fields: dict[str, Any]) -> dict[str, Any]:
        """The new version's manifest: the base's fields, then fields, then the segments and files."""
        manifest = {**self.base, **fields, "format_version": FORMAT_VERSION, "segments": self.entries,
                    "generation": self.generation, "next_segment": self._next,
                    "documents": sum(e["documents"] - e["deleted"] for e in self.entries),
                    "files": dict(sorted(self.files.items())), "sha256": dict(sorted(self.sha256.items()))}
        manifest.pop("checksum", None)
        return manifest

    def segments(self) -> list[Segment]:
        """The new version's live segments, as search will open them (before it is published)."""
        return segments_of(self.folder, self.manifest({}))

    def commit(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Publish: the manifest replaces the old one in one rename; the files only the old version used
        are removed after."""
        manifest = self.manifest(fields)
        with guard_disk(self.folder / MANIFEST):
            rewrite_manifest(self.folder, manifest)
        remove_unreferenced(self.folder, manifest)
        return manifest


class SegmentDraft:
    """A segment being written: its folder is hidden until Change publishes it (finish)."""

    def __init__(self, change: Change, name: str):
        self.change, self.name = change, name
        folder = change.folder / f".{name}.tmp-{os.getpid()}"
        with guard_disk(folder):
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
        self.writer = FileWriter(folder)

    def finish(self, legs: dict[str, Any], documents: int) -> None:
        self.writer.close()
        self.change._publish(self, legs, documents)

    def abandon(self) -> None:
        self.writer.abandon()
        shutil.rmtree(self.writer.folder, ignore_errors=True)


def remove_unreferenced(folder: Path, manifest: dict[str, Any]) -> None:
    """Remove what the manifest does not name: segments merged away, old tombstone lists, folders of
    writers that were killed. Readers that opened the old version keep their open files (POSIX)."""
    if is_legacy(manifest):
        kept = set(manifest.get("files", {}))
    else:
        kept = {path.split("/", 1)[0] for path in manifest.get("files", {})}
    for entry in folder.iterdir():
        if entry.name == MANIFEST or entry.name in kept:
            continue
        if entry.name.startswith(".") and not _writer_gone(entry.name):
            continue  # another process's file in the making (only ours, under the lock, in practice)
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def _writer_gone(name: str) -> bool:
    """Whether a hidden temporary name (.x.tmp-PID) belongs to a process that no longer runs (or ours)."""
    pid = name.rsplit("tmp-", 1)[-1]
    if not pid.isdigit():
        return True
    if int(pid) == os.getpid():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
