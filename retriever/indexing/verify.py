"""`retriever verify`: every byte against the manifest's checksums, and every structure against the others.

Loading an index does the cheap checks (sizes, shapes, pointer ranges, FAISS's checksum) because it must
stay fast; a flipped bit inside a vector passes them. Verifying reads everything, so it is the command to
run after copying an index, restoring a backup, or before serving one that matters. Each leg checks its
own files (leg.py: Leg.check).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import BadIndexError
from ..index.segments import live_documents, segments_of
from ..index.store import MANIFEST, file_sha256, read_json_manifest
from ..legs.base import Leg
from ..legs.registry import leg_types

Check = dict[str, Any]  # {"check": what, "ok": bool, "detail": str}


def verify_index(folder: str | Path) -> dict[str, Any]:
    """Every check's outcome; ok only if all pass. Never raises for a damaged index: it reports it."""
    folder = Path(folder)
    try:
        manifest = read_json_manifest(folder)
    except BadIndexError as exc:
        return {"path": str(folder), "ok": False, "checks": [_fail(MANIFEST, str(exc))]}
    checks = [_file_check(folder, manifest, name) for name in manifest.get("files", {})]
    if all(c["ok"] for c in checks):  # structure is only worth reading once the bytes are right
        checks += [_run(name, check, folder, manifest) for name, check in _structure()]
    return {"path": str(folder), "ok": all(c["ok"] for c in checks), "checks": checks}


def _fail(name: str, detail: str) -> Check:
    return {"check": name, "ok": False, "detail": detail}


def _file_check(folder: Path, manifest: dict[str, Any], name: str) -> Check:
    path = folder / name
    if not path.is_file():
        return _fail(name, "missing")
    size, expected = path.stat().st_size, manifest["files"][name]
    if size != expected:
        return _fail(name, f"{size} bytes, the manifest says {expected}")
    digest = manifest.get("sha256", {}).get(name)
    if digest is None:
        return {"check": name, "ok": True, "detail": "size matches; no checksum recorded (an older index)"}
    if file_sha256(path) != digest:
        return _fail(name, "sha256 differs from the manifest: the file was altered or damaged")
    return {"check": name, "ok": True, "detail": "size and sha256 match"}


def _run(name: str, check: Callable[[Path, dict], str], folder: Path, manifest: dict[str, Any]) -> Check:
    try:
        return {"check": name, "ok": True, "detail": check(folder, manifest)}
    except BadIndexError as exc:
        return _fail(name, str(exc))


def _documents(folder: Path, manifest: dict[str, Any]) -> str:
    segments = segments_of(folder, manifest)
    for segment in segments:
        if (stored := segment.documents().num_rows) != segment.rows:
            raise BadIndexError(f"{segment.name}: {stored} documents stored, the manifest says {segment.rows}")
    passages = "passages" in manifest
    table = live_documents(segments, ["id", "passage"] if passages else ["id"])
    ids = table.column("id").to_pylist()
    if len(ids) != manifest["documents"]:
        raise BadIndexError(f"{len(ids)} live rows, the manifest says {manifest['documents']}")
    if passages:
        return _passages(ids, table.column("passage").to_pylist(), manifest, len(segments))
    if len(set(ids)) != len(ids):
        raise BadIndexError("document ids are not unique")
    return f"{len(ids)} documents in {len(segments)} segment{'s' * (len(segments) != 1)}, ids unique"


def _passages(ids: list[str], numbers: list[int], manifest: dict[str, Any], segments: int) -> str:
    """An index of passages: each document's passages consecutive and numbered from 0 (MaxP relies on it)."""
    firsts = [doc_id for doc_id, number in zip(ids, numbers, strict=True) if number == 0]
    for row, (doc_id, number) in enumerate(zip(ids, numbers, strict=True)):
        if number != 0 and (row == 0 or ids[row - 1] != doc_id or numbers[row - 1] != number - 1):
            raise BadIndexError(f"row {row}: passage {number} of '{doc_id}' does not follow its passage {number - 1}")
    if len(set(firsts)) != len(firsts):
        raise BadIndexError("document ids are not unique")
    if len(firsts) != manifest["passages"]["documents"]:
        raise BadIndexError(f"{len(firsts)} live documents, the manifest says {manifest['passages']['documents']}")
    return (f"{len(firsts)} documents ({len(ids)} passages) in {segments} segment{'s' * (segments != 1)}, "
            "ids unique, passages in order")


def _leg_check(leg: type[Leg]) -> Callable[[Path, dict], str]:
    def check(folder: Path, manifest: dict[str, Any]) -> str:
        if leg.name not in manifest["settings"]["legs"]:
            return f"no {leg.title}"
        said = [leg.check(segment, manifest) for segment in segments_of(folder, manifest)]
        return said[0] if len(said) == 1 else "; ".join(f"{i + 1}: {s}" for i, s in enumerate(said))

    return check


def _structure() -> list[tuple[str, Callable[[Path, dict], str]]]:
    """The documents, then every registered leg (each checks its own files, or says it is absent)."""
    return [("documents", _documents), *((leg.title, _leg_check(leg)) for leg in leg_types())]
