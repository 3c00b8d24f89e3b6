"""Streaming readers and validation for corpora, queries and relevance judgments (BEIR layout).

Every record is checked as it is read, and a problem is reported with its file, line and field: on a
corpus of millions of lines the user must be able to jump straight to the bad one.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
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


def _open_lines(path: Path) -> Iterator[bytes]:
    try:
        raw = gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")  # noqa: SIM115
    except FileNotFoundError:
        raise InputError("file not found", str(path)) from None
    except OSError as exc:
        raise InputError(f"cannot open: {exc.strerror or exc}", str(path)) from None
    with raw:
        try:
            yield from raw
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise InputError(f"cannot read: {exc}", str(path)) from None


def _id_of(obj: dict, source: str | None, line: int | None) -> str:
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


def _string_field(obj: dict, name: str, source: str | None, line: int | None, required: bool) -> str:
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
    title = _encodable(_string_field(obj, "title", source, line, required=False), source, line, "title")
    text_key = "text" if "text" in obj or "contents" not in obj else "contents"  # Pyserini's JSONL says contents
    if obj.get(text_key) is None and not title:
        raise InputError("missing 'text' (and no 'title' to index the document by)", source, line, "text")
    return Document(
        id=_encodable(_id_of(obj, source, line), source, line, "_id"),
        text=_encodable(_string_field(obj, text_key, source, line, required=False), source, line, text_key),
        title=title,
        metadata=metadata,
    )


def _json_records(path: Path) -> Iterator[tuple[int, Any]]:
    source = str(path)
    for number, raw in enumerate(_open_lines(path), start=1):
        try:
            text = raw.decode("utf-8-sig" if number == 1 else "utf-8")  # a UTF-8 BOM is accepted
        except UnicodeDecodeError as exc:
            raise InputError(f"invalid UTF-8 at byte {exc.start}", source, number) from None
        if not text.strip():
            continue
        try:
            yield number, json.loads(text.rstrip("\r\n"))  # with the newline, an error would point past the line
        except json.JSONDecodeError as exc:
            raise InputError(f"malformed JSON: {exc.msg} at column {exc.colno}", source, number) from None
        except RecursionError:
            raise InputError("JSON nested too deeply", source, number) from None


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


FORMATS = ("jsonl", "json", "parquet", "csv", "tsv", "folder")
TEXT_FILES = (".txt", ".md")


def corpus_format(path: Path) -> str:
    """The format of a corpus path: a folder, Parquet by its magic bytes, else by suffix (.gz ignored)."""
    if path.is_dir():
        return "folder"
    if not path.exists():
        raise InputError("file not found", str(path))
    with open(path, "rb") as fh:
        if fh.read(4) == b"PAR1":
            return "parquet"
    suffix = path.name.removesuffix(".gz").rsplit(".", 1)[-1].lower()
    if suffix in ("json", "parquet", "csv", "tsv"):
        return suffix
    return "jsonl"


def read_corpus(path: str | Path, fields: Fields | None = None) -> Iterator[Document]:
    """Stream documents, validated and de-duplicated, from JSONL (.gz too), a JSON array, Parquet (by row
    group), CSV or TSV with a header row, or a folder of .txt/.md files (id: the relative path)."""
    path = Path(path)
    fields, kind = fields or Fields(), corpus_format(path)
    records = {"jsonl": _json_records, "json": _json_array, "parquet": _parquet_records, "csv": _csv_records,
               "tsv": _csv_records, "folder": _folder_records}[kind](path)
    table = kind in ("parquet", "csv", "tsv")
    located = ((parse_document(as_record(obj, fields, table), str(where), n), str(where), n)
               for where, n, obj in _located(path, records))
    count = 0
    for doc in validate_unique(located):
        count += 1
        yield doc
    if count == 0:
        raise InputError("empty corpus: no documents", str(path))


def as_record(obj: Any, fields: Fields, table: bool) -> Any:
    """A decoded record with the id/text/title fields renamed; a table row's other columns become metadata."""
    if not isinstance(obj, dict):
        return obj
    obj = fields.apply(obj)
    return _columns(obj) if table else obj


def _located(path: Path, records: Iterator[tuple]) -> Iterator[tuple[Path, int, Any]]:
    """(file, line or row, record): a folder's records name their own file."""
    for record in records:
        yield (path, *record) if len(record) == 2 else record


def _json_array(path: Path) -> Iterator[tuple[int, Any]]:
    """A JSON file holding one array of records (record n is reported as row n); a .json file of JSON lines
    is read as JSONL."""
    raw = b"".join(_open_lines(path))
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"invalid UTF-8 at byte {exc.start}", str(path)) from None
    if not text.lstrip().startswith("["):
        yield from _json_records(path)
        return
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"malformed JSON: {exc.msg} at column {exc.colno}", str(path), exc.lineno) from None
    except RecursionError:
        raise InputError("JSON nested too deeply", str(path)) from None
    yield from enumerate(data, start=1)


def _parquet_records(path: Path) -> Iterator[tuple[int, Any]]:
    """Rows of a Parquet file, one row group at a time (memory stays bounded); row n is reported as row n."""
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise InputError(f"cannot read as Parquet ({exc})", str(path)) from None
    number = 0
    for batch in table.iter_batches():
        for row in batch.to_pylist():
            number += 1
            yield number, row


def _csv_records(path: Path) -> Iterator[tuple[int, Any]]:
    """CSV or TSV with a header row (quoting as the csv module reads it); reported by line."""
    import csv

    reader = csv.DictReader(_decoded_lines(path), delimiter="\t" if ".tsv" in path.name else ",")
    try:
        for row in reader:
            if None in row or any(v is None for v in row.values()):
                raise InputError(f"expected {len(reader.fieldnames)} columns as in the header", str(path),
                                 reader.line_num)
            yield reader.line_num, row
    except csv.Error as exc:
        raise InputError(f"malformed {'TSV' if '.tsv' in path.name else 'CSV'}: {exc}", str(path),
                         reader.line_num) from None


def _columns(row: dict) -> dict:
    """A table row as a record: the id, text and title columns as they are, every other column metadata."""
    known = {"_id", "id", "text", "contents", "title", "metadata"}
    record = {k: v for k, v in row.items() if k in known}
    extra = {k: v for k, v in row.items() if k not in known and v is not None and v != ""}
    if extra:
        record["metadata"] = {**(record.get("metadata") or {}), **extra}
    return record


def _folder_records(path: Path) -> Iterator[tuple[Path, int, Any]]:
    """Every .txt and .md file under a folder, in sorted order: id its relative path, text its content."""
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_FILES)
    if not files:
        raise InputError(f"no {' or '.join(TEXT_FILES)} files in this folder", str(path))
    for file in files:
        try:
            text = file.read_bytes().decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InputError(f"invalid UTF-8 at byte {exc.start}", str(file)) from None
        yield file, 1, {"_id": file.relative_to(path).as_posix(), "text": text}


def count_documents(path: str | Path) -> int | None:
    """Documents to expect, for a progress bar's time left; None when not cheap to tell."""
    path = Path(path)
    try:
        kind = corpus_format(path)
        if kind == "parquet":
            import pyarrow.parquet as pq

            return pq.ParquetFile(path).metadata.num_rows
        if kind == "folder":
            return sum(1 for p in path.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_FILES) or None
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as fh:
            return sum(block.count(b"\n") for block in iter(lambda: fh.read(1 << 20), b"")) or None
    except Exception:  # only an estimate: never the reason a build fails
        return None


def documents_from(items: Iterable[Any]) -> Iterator[Document]:
    """Validate documents handed over by the Python API (dicts or Document objects)."""
    located = ((parse_document(obj, "documents", i), "documents", i) for i, obj in enumerate(items, 1))
    yield from validate_unique(located)


def read_queries(path: str | Path) -> dict[str, str]:
    """BEIR queries.jsonl: id -> text."""
    path = Path(path)
    queries: dict[str, str] = {}
    for number, obj in _json_records(path):
        if not isinstance(obj, dict):
            raise InputError("expected a JSON object", str(path), number)
        qid = _id_of(obj, str(path), number)
        queries[qid] = _string_field(obj, "text", str(path), number, required=True)
    return queries


def read_query_file(path: str | Path) -> dict[str, str]:
    """Queries to search, id -> text: BEIR queries.jsonl (.jsonl, .json, .gz), a TSV of id<TAB>text, or any
    other text file with one query a line (its id: the line number)."""
    path = Path(path)
    name = path.name.removesuffix(".gz")
    if name.endswith((".jsonl", ".json")):
        return read_queries(path)
    if name.endswith(".tsv"):
        queries = {}
        for number, fields in read_tsv(path):
            if not fields:
                continue
            if len(fields) != 2 or not fields[0].strip() or not fields[1].strip():
                raise InputError("expected id<TAB>text", str(path), number)
            queries[fields[0].strip()] = fields[1]
        return queries
    return query_lines(_decoded_lines(path), str(path))


def query_lines(lines, source: str) -> dict[str, str]:
    """One query a line (stdin, a .txt file), blank lines skipped; a query's id is its line number."""
    return {str(number): line.rstrip("\r\n") for number, line in enumerate(lines, start=1) if line.strip()}


def _decoded_lines(path: Path) -> Iterator[str]:
    for number, raw in enumerate(_open_lines(path), start=1):
        try:
            yield raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"invalid UTF-8 at byte {exc.start}", str(path), number) from None


def read_tsv(path: str | Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of a tab-separated file without quoting, as BEIR qrels and STS files ship."""
    path = Path(path)
    for number, raw in enumerate(_open_lines(path), start=1):
        try:
            line = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as exc:
            raise InputError(f"invalid UTF-8 at byte {exc.start}", str(path), number) from None
        yield number, line.split("\t") if line else []


def read_qrels(path: str | Path) -> dict[str, dict[str, int]]:
    """BEIR qrels TSV with a header: query-id, corpus-id, score."""
    qrels: dict[str, dict[str, int]] = {}
    for number, row in read_tsv(path):
        if number == 1 and row and not row[-1].lstrip("-").isdigit():
            continue  # header
        if not row:
            continue
        if len(row) < 3:
            raise InputError("expected query-id, corpus-id, score", str(path), number)
        try:
            qrels.setdefault(row[0], {})[row[1]] = int(row[-1])
        except ValueError:
            raise InputError(f"score is not an integer: {row[-1]!r}", str(path), number, "score") from None
    return qrels
