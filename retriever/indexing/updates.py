"""Adding, deleting and merging documents of a built index, with old and new documents scored alike.

An add writes one new segment (segments.py) with every leg's files for the new documents only; a delete
writes tombstone lists; `optimize` merges every segment into one without the deleted rows. New documents
are encoded with the index's stored method parameters and projected with its stored u_1, alpha and K,
and the corpus statistics (BM25's document frequencies and average length, the key-token idf) are taken
over every live row when the index opens, so the result equals a fresh build of the final corpus with
u_1 held fixed (tested), whatever sequence of adds, deletes and merges made it.

Each change is written aside and published by replacing the manifest (segments.Change): a reader sees the
old index or the new one, a crash leaves the old one, and a deleted document is gone from every leg at
once. The model only runs on new documents; optimize runs none.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ..corpus.documents import Document
from ..errors import InputError, RetrieverError
from ..index.segments import Change, Segment, is_legacy, live_documents, segments_of
from ..index.store import documents_table, exclusive, first_passages, passages_table, read_manifest, stored_contents
from ..legs.base import LegContext, TablePart
from ..legs.registry import check_documents, leg_types
from ..models.encoders import EncodeStats
from ..models.loading import Models
from ..settings import IndexSettings
from .defaults import CHUNK
from .encode import DocumentEncoders
from .indexer import Progress
from .passages import Splitter, per_document


def update_index(folder: str | Path, *, add: Iterable[Document] = (), delete: Sequence[str] = (),
                 upsert: bool = False, backbone=None, progress: Progress | None = None,
                 source: str | None = None, dense_encoder=None, batch_tokens: int | None = None) -> dict[str, Any]:
    """Delete ids, then append documents as a new segment; returns the new manifest. The backbone (the dense
    encoder) is needed only to add to an index with a leg that needs it (the caller checks they are the
    index's)."""
    folder = Path(folder)
    with exclusive(folder):
        manifest = read_manifest(folder)
        settings = IndexSettings.from_dict(manifest["settings"])
        new = list(add)
        if new and settings.needs_model and backbone is None:
            raise RetrieverError("adding documents to an index with a model leg needs its model")
        if new and settings.needs_dense_model and dense_encoder is None:
            raise RetrieverError(f"adding documents to this index needs its dense model '{settings.dense_model}'")
        segments = segments_of(folder, manifest)
        table = live_documents(segments)
        removed, replaced = _rows_to_remove(table.column("id").to_pylist(), delete, new, upsert, source)
        encoders = DocumentEncoders.for_settings(settings, backbone, dense_encoder, batch_tokens)
        part, stats = _encode(new, settings, (encoders, Splitter.for_settings(settings, backbone, dense_encoder)),
                              progress)
        if is_legacy(manifest):  # written before segments: rewritten once as one segment, then changed
            manifest = _merge(folder, manifest, settings)
            segments = segments_of(folder, manifest)
        change = Change(folder, manifest)
        _tombstone(change, segments, sorted(removed))
        if part is not None:
            _add_segment(change, part, LegContext(settings, Models(backbone, dense_encoder=dense_encoder), len(new),
                                                  manifest=manifest, segments=segments))
        fields = _updated_fields(manifest, stats, len(new) - replaced, len(set(delete)), replaced, source)
        fields["documents_empty"] = (manifest["documents_empty"] + _empty(documents_table(new))
                                     - _empty(first_passages(table.take(pa.array(sorted(removed), pa.int64())))))
        return _commit(change, settings, fields)


def check_additions(folder: str | Path, documents: Sequence[Document], upsert: bool = False,
                    source: str | None = None) -> None:
    """Refuse an add whose ids collide with the index's (unless upsert), or a document one of its legs
    cannot index, from the index's files alone (its manifest and ids): run before any model loads, so a
    wrong id costs no load (update_index checks the ids again under its lock)."""
    folder, documents = Path(folder), list(documents)
    manifest = read_manifest(folder)
    ids = live_documents(segments_of(folder, manifest), ["id"]).column("id").to_pylist()
    _rows_to_remove(ids, (), documents, upsert, source)
    check_documents(IndexSettings.from_dict(manifest["settings"]), documents, source)


def optimize_index(folder: str | Path) -> dict[str, Any]:
    """Merge every segment into one and drop the deleted rows (no model runs); returns the new manifest.
    An index of one segment without deletions is left as it is."""
    folder = Path(folder)
    with exclusive(folder):
        manifest = read_manifest(folder)
        if not is_legacy(manifest) and len(manifest["segments"]) == 1 and not manifest["segments"][0]["deleted"]:
            return manifest
        return _merge(folder, manifest, IndexSettings.from_dict(manifest["settings"]))


def _merge(folder: Path, manifest: dict[str, Any], settings: IndexSettings) -> dict[str, Any]:
    """One segment of every live row, published in place of all the others."""
    segments = segments_of(folder, manifest)
    base = manifest if not is_legacy(manifest) else _as_segmented(manifest)
    change = Change(folder, base)
    draft = change.new_segment()
    try:
        table = live_documents(segments)
        draft.writer.add_documents(table)
        context = LegContext(settings, None, table.num_rows, manifest=manifest, segments=segments)
        legs: dict[str, Any] = {}
        for leg in leg_types(settings.legs):
            legs.update(leg.merge(draft.writer, segments, context))
        draft.finish(legs, table.num_rows)
    except BaseException:
        draft.abandon()
        raise
    for segment in segments:
        if not segment.legacy:
            change.drop(segment.name)
    log = {"at": _now(), "optimized": len(segments), "dropped": sum(len(s.deleted) for s in segments)}
    return _commit(change, settings, {"updates": [*manifest.get("updates", []), log]})


def _as_segmented(manifest: dict[str, Any]) -> dict[str, Any]:
    """A format-1 manifest as the base of a segmented one: no segments and none of its flat files yet."""
    return {**manifest, "segments": [], "files": {}, "sha256": {}, "generation": 1, "next_segment": 1}


def _tombstone(change: Change, segments: Sequence[Segment], rows: Sequence[int]) -> None:
    """Tombstones for index rows, segment by segment."""
    rows = np.asarray(rows, dtype=np.int64)
    for segment in segments:
        mine = rows[(rows >= segment.offset) & (rows < segment.offset + segment.live_count)]
        if len(mine):
            change.delete(segment, segment.live_rows()[mine - segment.offset])


def _add_segment(change: Change, part: TablePart, context: LegContext) -> None:
    draft = change.new_segment()
    try:
        draft.writer.add_documents(part.documents())
        legs: dict[str, Any] = {}
        for leg in leg_types(context.settings.legs):
            legs.update(leg.write(draft.writer, [part], context))
        draft.finish(legs, part.documents().num_rows)
    except BaseException:
        draft.abandon()
        raise


def _commit(change: Change, settings: IndexSettings, fields: dict[str, Any]) -> dict[str, Any]:
    """The legs' index-level fields over the new version's segments, then the manifest published."""
    segments = change.segments()
    for leg in leg_types(settings.legs):
        fields.update(leg.summary(segments))
    if "passages" in change.base:
        documents = sum(first_passages(s.live_documents(["passage"])).num_rows for s in segments)
        fields["passages"] = {**change.base["passages"], "documents": documents}
    return change.commit(fields)


def _rows_to_remove(ids: list[str], delete: Sequence[str], new: list[Document], upsert: bool,
                    source: str | None) -> tuple[set[int], int]:
    """Rows of the deleted ids, and of the ids new documents replace (every passage of each), and how many
    documents are replaced; unknown or clashing ids refuse all."""
    rows: dict[str, list[int]] = {}
    for i, doc_id in enumerate(ids):
        rows.setdefault(doc_id, []).append(i)
    if missing := [i for i in delete if i not in rows]:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise InputError(f"not in the index: {', '.join(repr(i) for i in missing[:5])}{more}; nothing was deleted")
    removed = {row for i in delete for row in rows[i]}
    replaced = 0
    for doc in new:
        if doc.id in rows:
            if not upsert:
                raise InputError(f"id '{doc.id}' is already in the index (nothing was changed); to replace it, "
                                 'add with upsert (--upsert, upsert=True, or "upsert": true over HTTP)', source,
                                 field="_id")
            replaced += doc.id not in delete
            removed.update(rows[doc.id])
    if len(removed) == len(ids) and not new:
        raise InputError("that would delete every document; an index keeps at least one (nothing was deleted)")
    return removed, replaced


def _empty(table) -> int:
    return sum(not c.strip() for c in stored_contents(table))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _updated_fields(manifest: dict[str, Any], stats: EncodeStats, added: int, deleted: int, replaced: int,
                    source: str | None) -> dict[str, Any]:
    """New counts and an entry in the update log (the live count, files and checksums are Change's)."""
    log = {"at": _now(), "added": added, "deleted": deleted, "replaced": replaced, "source": source}
    return {"documents_truncated": manifest["documents_truncated"] + stats.truncated,
            "tokens_embedded": manifest["tokens_embedded"] + stats.tokens,
            "updates": [*manifest.get("updates", []), log]}


def _encode(new: list[Document], settings: IndexSettings, encoding: tuple[DocumentEncoders, Splitter | None],
            progress: Progress | None) -> tuple[TablePart | None, EncodeStats]:
    """The new documents (their passages, where the index cuts them) with their forward-pass arrays (none
    without a model leg; the dense leg's from the trained encoder where it has one); None when none."""
    encoders, splitter = encoding
    stats = EncodeStats()
    if not new:
        return None, stats
    passages = splitter.split(new) if splitter is not None else None
    rows = new if passages is None else [p.row for p in passages]
    part = TablePart(documents_table(new) if passages is None else passages_table(passages))
    progress = per_document(progress, len(new), len(rows))
    runs = [encoders.encode([d.content for d in rows[start:start + CHUNK]], progress=progress)
            for start in range(0, len(rows), CHUNK)]
    for run in runs:
        if run.stats is not None:
            stats.add(run.stats)
    part.arrays = {name: np.concatenate([run.arrays[name] for run in runs]) for name in runs[0].arrays}
    return part, stats
