"""Adding and deleting documents in a built index, with old and new documents scored alike.

New documents are encoded with the index's stored method parameters and projected with its stored u_1,
alpha and K, so they are scored exactly as if they had been there from the start. The BM25 leg is
recomputed from every stored text, because its idf and average length are statistics of the whole
corpus. Each leg rewrites its own files (leg.py: Leg.update); this module names none of them. The
result therefore equals a fresh build of the final corpus with u_1 held fixed (tested).

An update writes the new version of the index aside and swaps it in, as a build does (store.IndexWriter):
a reader sees the old index or the new one, a crash leaves the old one, and a deleted document is gone
from every leg at once. The price is rewriting the index's files; the model only runs on new documents.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from .corpus import Document
from .encoders import Encoder, EncodeStats
from .errors import InputError, RetrieverError
from .indexer import CHUNK, Progress
from .leg import LegContext, TablePart
from .legs import leg_types
from .settings import IndexSettings
from .store import IndexWriter, documents_table, exclusive, read_documents, read_manifest, stored_contents


def update_index(folder: str | Path, *, add: Iterable[Document] = (), delete: Sequence[str] = (),
                 upsert: bool = False, backbone=None, progress: Progress | None = None,
                 source: str | None = None, dense_encoder=None) -> dict[str, Any]:
    """Delete ids, then append documents; returns the new manifest. The backbone (the dense encoder) is
    needed only to add to an index with a leg that needs it (the caller checks they are the index's)."""
    folder = Path(folder)
    with exclusive(folder):
        manifest = read_manifest(folder)
        settings = IndexSettings.from_dict(manifest["settings"])
        old, new = read_documents(folder), list(add)
        removed = _rows_to_remove(old.column("id").to_pylist(), delete, new, upsert, source)
        if new and settings.needs_model and backbone is None:
            raise RetrieverError("adding documents to an index with a model leg needs its model")
        if new and settings.needs_dense_model and dense_encoder is None:
            raise RetrieverError(f"adding documents to this index needs its dense model '{settings.dense_model}'")
        keep = np.ones(old.num_rows, dtype=bool)
        keep[sorted(removed)] = False
        part, stats = _encode(new, settings, backbone, dense_encoder, progress)
        table = pa.concat_tables([old.filter(pa.array(keep)), documents_table(new)])
        with IndexWriter(folder) as writer:
            writer.add_documents(table)
            context = LegContext(settings, backbone, table.num_rows, dense_encoder=dense_encoder)
            legs: dict[str, Any] = {}
            for leg in leg_types(settings.legs):
                legs.update(leg.update(writer, folder, manifest, keep, part, table, context))
            replaced = len(removed) - len(set(delete))  # rows an upserted document took over
            writer.commit(_updated_manifest(manifest, legs, table, stats, len(new) - replaced, len(removed) - replaced,
                                            replaced, source))
    return read_manifest(folder)


def _rows_to_remove(ids: list[str], delete: Sequence[str], new: list[Document], upsert: bool,
                    source: str | None) -> set[int]:
    """Rows of the deleted ids, and of the ids new documents replace; unknown or clashing ids refuse all."""
    position = {doc_id: i for i, doc_id in enumerate(ids)}
    if missing := [i for i in delete if i not in position]:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise InputError(f"not in the index: {', '.join(repr(i) for i in missing[:5])}{more}; nothing was deleted")
    removed = {position[i] for i in delete}
    for doc in new:
        if doc.id in position:
            if not upsert:
                raise InputError(f"id '{doc.id}' is already in the index; pass --upsert to replace it "
                                 "(nothing was changed)", source, field="_id")
            removed.add(position[doc.id])
    if len(removed) == len(ids) and not new:
        raise InputError("that would delete every document; an index keeps at least one (nothing was deleted)")
    return removed


def _updated_manifest(manifest: dict[str, Any], legs: dict[str, Any], table: pa.Table, stats: EncodeStats,
                      added: int, deleted: int, replaced: int, source: str | None) -> dict[str, Any]:
    """The old manifest with new counts and an entry in its update log (files and checksums are redone)."""
    log = {"at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "added": added, "deleted": deleted,
           "replaced": replaced,
           "source": source}
    updated = {**manifest, **legs, "documents": table.num_rows,
               "documents_empty": sum(not c.strip() for c in stored_contents(table)),
               "documents_truncated": manifest["documents_truncated"] + stats.truncated,
               "tokens_embedded": manifest["tokens_embedded"] + stats.tokens,
               "updates": [*manifest.get("updates", []), log]}
    for key in ("format_version", "files", "sha256"):
        updated.pop(key, None)
    return updated


def _encode(new: list[Document], settings: IndexSettings, backbone, dense_encoder,
            progress: Progress | None) -> tuple[TablePart | None, EncodeStats]:
    """The new documents with their forward-pass arrays (none without a model leg; the dense leg's from
    the trained encoder where it has one); None when none."""
    stats = EncodeStats()
    if not new:
        return None, stats
    part = TablePart(documents_table(new))
    if settings.needs_model:
        encoder = Encoder(backbone, settings.make_method(), settings.max_tokens)
        dense, residual = [], []
        for start in range(0, len(new), CHUNK):
            encoded = encoder.encode([d.content for d in new[start:start + CHUNK]], on_batch=progress)
            stats.add(encoded.stats)
            dense.append(encoded.dense)
            residual.append(encoded.residual)
        part.arrays = {"dense": np.concatenate(dense), "residual": np.concatenate(residual)}
    if settings.needs_dense_model:
        part.arrays["dense"] = dense_encoder.encode([d.content for d in new],
                                                    on_batch=None if settings.needs_model else progress)
    return part, stats
