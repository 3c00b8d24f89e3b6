"""A document as the engine holds it, and the checks every record passes however it arrived (a corpus file
of any format, the Python API, the HTTP server): its id, text, title and metadata, each error naming the
file, line and field; ids unique; the id, text and title fields renamed where the user says."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..errors import InputError


@dataclass(frozen=True)
class Document:
    id: str
    text: str
    title: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def content(self) -> str:
        """What gets embedded: the title carries much of a short document's meaning (BEIR does the same)."""
        return f"{self.title}. {self.text}".strip() if self.title and self.text else (self.title or self.text)


def id_of(obj: dict, source: str | None, line: int | None) -> str:
    key = "_id" if "_id" in obj else "id"
    if key not in obj:
        raise InputError("missing document id", source, line, "_id")
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InputError(f"id must be a string or an integer, not {type(value).__name__}", source, line, key)
    value = str(value)
    if not value.strip():
        raise InputError("empty document id", source, line, key)
    return value


def string_field(obj: dict, name: str, source: str | None, line: int | None, required: bool) -> str:
    if name not in obj or obj[name] is None:
        if required:
            raise InputError(f"missing '{name}'", source, line, name)
        return ""
    value = obj[name]
    if not isinstance(value, str):
        raise InputError(f"'{name}' must be a string, not {type(value).__name__}", source, line, name)
    return value


def _encodable(value: str, source: str | None, line: int | None, name: str) -> str:
    """JSON may spell lone surrogates (\\ud800) that no UTF-8 file or Parquet column can hold."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(f"invalid Unicode (a lone surrogate) at character {exc.start}", source, line, name) from None
    return value


def parse_document(obj: Any, source: str | None = None, line: int | None = None) -> Document:
    """Validate one corpus record (a decoded JSON object, or a dict from the Python API)."""
    if isinstance(obj, Document):
        obj = {"_id": obj.id, "text": obj.text, "title": obj.title, "metadata": obj.metadata}
    if not isinstance(obj, dict):
        raise InputError(f"expected a JSON object, got {type(obj).__name__}", source, line)
    metadata = obj.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise InputError("'metadata' must be an object", source, line, "metadata")
    try:
        _encodable(json.dumps(metadata, ensure_ascii=False), source, line, "metadata")
    except (TypeError, ValueError, RecursionError) as exc:
        raise InputError(f"metadata cannot be stored as JSON ({exc})", source, line, "metadata") from None
    title = _encodable(string_field(obj, "title", source, line, required=False), source, line, "title")
    text_key = "text" if "text" in obj or "contents" not in obj else "contents"  # Pyserini's JSONL says contents
    if obj.get(text_key) is None and not title:
        raise InputError("missing 'text' (and no 'title' to index the document by)", source, line, "text")
    doc_id = _encodable(id_of(obj, source, line), source, line, "_id")
    text = _encodable(string_field(obj, text_key, source, line, required=False), source, line, text_key)
    if not text.strip() and not title.strip():  # it would match nothing, yet rank by its empty vector
        raise InputError("empty document: no text and no title", source, line, text_key)
    return Document(id=doc_id, text=text, title=title, metadata=metadata)


def validate_unique(documents: Iterable[tuple[Document, str | None, int | None]]) -> Iterator[Document]:
    """Refuse duplicate ids: a second record with the same id would silently shadow the first."""
    seen: dict[str, int | None] = {}
    for doc, source, line in documents:
        if doc.id in seen:
            first = f" (first seen on line {seen[doc.id]})" if seen[doc.id] else ""
            raise InputError(f"duplicate id '{doc.id}'{first}", source, line, "_id")
        seen[doc.id] = line
        yield doc


@dataclass(frozen=True)
class Fields:
    """Which record fields hold the id, text and title (None: the usual names, `_id`/`id`, `text`/`contents`,
    `title`). In CSV, TSV and Parquet every other column becomes metadata."""

    id: str | None = None
    text: str | None = None
    title: str | None = None

    def apply(self, record: dict) -> dict:
        renamed = dict(record)
        for standard, chosen in (("_id", self.id), ("text", self.text), ("title", self.title)):
            if chosen is not None and chosen != standard:
                if chosen not in record:
                    continue  # parse_document names the missing field
                renamed.pop(standard, None)
                renamed[standard] = renamed.pop(chosen)
        return renamed


def as_record(obj: Any, fields: Fields, table: bool, text_cells: bool = False) -> Any:
    """A decoded record with the id/text/title fields renamed; a table row's other columns become metadata
    (typed, where the format's cells are all text: CSV and TSV)."""
    if not isinstance(obj, dict):
        return obj
    obj = fields.apply(obj)
    return _columns(obj, text_cells) if table else obj


INTEGER = re.compile(r"-?(0|[1-9][0-9]*)")
DECIMAL = re.compile(r"-?(0|[1-9][0-9]*)\.[0-9]+")


def cell_value(text: str) -> Any:
    """A CSV cell as the number it spells, so that a range filter ({"year": {"gte": 1991}}) matches it; only
    plainly written numbers: "02139", "1e5" or "nan" stay text, as a zip code or a code must."""
    if INTEGER.fullmatch(text):
        return int(text)
    if DECIMAL.fullmatch(text):
        return float(text)
    return text


def _columns(row: dict, text_cells: bool) -> dict:
    """A table row as a record: the id, text and title columns as they are, every other column metadata."""
    known = {"_id", "id", "text", "contents", "title", "metadata"}
    record = {k: v for k, v in row.items() if k in known}
    extra = {k: cell_value(v) if text_cells and isinstance(v, str) else v
             for k, v in row.items() if k not in known and v is not None and v != ""}
    if extra:
        record["metadata"] = {**(record.get("metadata") or {}), **extra}
    return record


def documents_from(items: Iterable[Any]) -> Iterator[Document]:
    """Validate documents handed over by the Python API (dicts or Document objects)."""
    located = ((parse_document(obj, "documents", i), "documents", i) for i, obj in enumerate(items, 1))
    yield from validate_unique(located)
