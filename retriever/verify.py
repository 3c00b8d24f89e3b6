"""`retriever verify`: every byte against the manifest's checksums, and every structure against the others.

Loading an index does the cheap checks (sizes, shapes, pointer ranges, FAISS's checksum) because it must
stay fast; a flipped bit inside a vector passes them. Verifying reads everything, so it is the command to
run after copying an index, restoring a backup, or before serving one that matters.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from .errors import BadIndexError
from .store import MANIFEST, file_sha256, load_array, load_csr, read_documents, read_file, read_json_manifest

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
        checks += [_run(name, check, folder, manifest) for name, check in STRUCTURE]
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
    ids = read_documents(folder).column("id").to_pylist()
    if len(ids) != manifest["documents"]:
        raise BadIndexError(f"{len(ids)} documents stored, the manifest says {manifest['documents']}")
    if len(set(ids)) != len(ids):
        raise BadIndexError("document ids are not unique")
    return f"{len(ids)} documents, ids unique"


def _legs(manifest: dict[str, Any]) -> list[str]:
    return list(manifest["settings"]["legs"])


def _dense(folder: Path, manifest: dict[str, Any]) -> str:
    if "dense" not in _legs(manifest):
        return "no dense leg"
    n, dim = manifest["documents"], manifest["dense_dim"]
    vectors = load_array(folder, "dense")
    if vectors.shape != (n, dim) or not np.all(np.isfinite(vectors)):
        raise BadIndexError(f"dense.npy: shape {vectors.shape} (expected {(n, dim)}) or non-finite values")
    norms = np.linalg.norm(vectors, axis=1)
    if not np.all((np.abs(norms - 1) < 1e-3) | (norms == 0)):
        raise BadIndexError("dense.npy: vectors are not unit length")
    index = faiss.deserialize_index(np.frombuffer(read_file(folder, "dense.faiss", manifest), dtype=np.uint8))
    if index.ntotal != n or index.d != dim:
        raise BadIndexError(f"dense.faiss holds {index.ntotal} vectors of dimension {index.d}, expected {n} x {dim}")
    return f"{n} unit vectors of dimension {dim}; FAISS holds the same count"


def _sparse(folder: Path, manifest: dict[str, Any]) -> str:
    if "sparse" not in _legs(manifest):
        return "no key-token leg"
    n, vocab = manifest["documents"], manifest["vocab_size"]
    rows = load_csr(folder, "sparse_rows", (n, vocab))
    postings = load_csr(folder, "sparse_postings", (vocab, n))
    if not np.all(np.isfinite(rows.data)) or np.any(rows.data <= 0):
        raise BadIndexError("sparse_rows: weights must be finite and positive")
    if (rows.T.tocsr() != postings).nnz:
        raise BadIndexError("sparse_postings is not the transpose of sparse_rows")
    u1 = load_array(folder, "u1")
    if u1.ndim != 1 or not np.all(np.isfinite(u1)) or abs(float(np.linalg.norm(u1)) - 1) > 1e-3:
        raise BadIndexError("u1.npy: not a finite unit vector")
    return f"{rows.nnz} postings over {vocab} tokens; rows and postings agree; u1 is a unit vector"


def _lexical(folder: Path, manifest: dict[str, Any]) -> str:
    if "lexical" not in _legs(manifest):
        return "no lexical leg"
    from .lexical import VOCAB_FILE, parse_vocabulary

    vocabulary = parse_vocabulary(read_file(folder, VOCAB_FILE, manifest), str(folder / VOCAB_FILE))
    postings = load_csr(folder, "lexical_postings", (len(vocabulary), manifest["documents"]))
    if not np.all(np.isfinite(postings.data)):
        raise BadIndexError("lexical_postings: non-finite weights")
    return f"{postings.nnz} postings over {len(vocabulary)} words"


STRUCTURE = [("documents", _documents), ("dense leg", _dense), ("key-token leg", _sparse),
             ("lexical leg", _lexical)]
