"""One reader per corpus format, the only place that knows the format: its records (each with where it came
from, for errors), a cheap count for the progress bar, whether its rows are a table (other columns become
metadata), and, where the format can be cut, its splits for Ray (read tasks of their own).

A new format is one class here and one entry in READERS (or a register_reader call from outside);
`retriever index`, the API and `--ray` (when the class declares splits) all read it through read_corpus
and reader_for.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ..errors import InputError
from .documents import Document, Fields, as_record, parse_document, validate_unique
from .lines import decoded_lines, json_records, open_lines

TEXT_FILES = (".txt", ".md")
SPLIT_BYTES = 32 << 20  # a plain JSONL file is read by Ray in byte ranges of this size, one read task each

Record = tuple[Path, int, Any]  # (file, line or row, the decoded record)


@dataclass(frozen=True)
class Split:
    """One read task's share of a corpus file: a byte range, a row group."""

    start: int
    end: int | None = None


class Reader:
    """A corpus format. records() streams (file, line or row, record); the rest have workable defaults."""

    name: ClassVar[str]
    label: ClassVar[str]  # as messages name it
    table: ClassVar[bool] = False  # rows of columns: every column but id, text and title becomes metadata
    text_cells: ClassVar[bool] = False  # every cell is text (CSV): metadata numbers are read as numbers

    def records(self, path: Path) -> Iterator[Record]:
        raise NotImplementedError

    def count(self, path: Path) -> int | None:
        """Documents to expect (a progress bar's time left); None when not cheap to tell."""
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as fh:
            return sum(block.count(b"\n") for block in iter(lambda: fh.read(1 << 20), b"")) or None

    def splits(self, path: Path) -> list[Split] | None:
        """The pieces Ray may read apart, or None where the format cannot be cut (Ray refuses it)."""
        return None

    def read_split(self, path: Path, split: Split, fields: Fields) -> Iterator[Document]:
        raise NotImplementedError


class JsonLines(Reader):
    """BEIR-style JSONL (.gz too): one JSON object a line; Ray reads it in byte ranges cut at line ends."""

    name, label = "jsonl", "JSONL"

    def records(self, path: Path) -> Iterator[Record]:
        for number, obj in json_records(path):
            yield path, number, obj

    def splits(self, path: Path) -> list[Split]:
        if path.suffix == ".gz":  # a gzip stream cannot be entered midway: one task
            return [Split(0)]
        size = path.stat().st_size
        return [Split(start, min(start + SPLIT_BYTES, size)) for start in range(0, max(size, 1), SPLIT_BYTES)]

    def read_split(self, path: Path, split: Split, fields: Fields) -> Iterator[Document]:
        """The records on the lines that begin in [start, end) (to the end of the file when end is None): a
        range that starts inside a line leaves that line to the range before, which reads it whole."""
        with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as fh:
            if split.start:
                fh.seek(split.start - 1)
                fh.readline()
            while split.end is None or fh.tell() < split.end:
                first = fh.tell() == 0
                raw = fh.readline()
                if not raw:
                    return
                text = raw.decode("utf-8-sig" if first else "utf-8")
                if not text.strip():
                    continue
                try:
                    record = json.loads(text.rstrip("\r\n"))
                except ValueError as exc:  # the driver read this file through first: it changed since
                    raise InputError(f"malformed JSON in the line at byte {fh.tell() - len(raw)} ({exc}); did "
                                     "the corpus change during the build?", str(path)) from None
                yield parse_document(as_record(record, fields, False), str(path))


class JsonArray(Reader):
    """A JSON file holding one array of records (record n reported as row n); a .json of JSON lines is JSONL."""

    name, label = "json", "a JSON array"

    def records(self, path: Path) -> Iterator[Record]:
        raw = b"".join(open_lines(path))
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InputError(f"invalid UTF-8 at byte {exc.start}", str(path)) from None
        if not text.lstrip().startswith("["):
            yield from JsonLines().records(path)
            return
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"malformed JSON: {exc.msg} at column {exc.colno}", str(path), exc.lineno) from None
        except RecursionError:
            raise InputError("JSON nested too deeply", str(path)) from None
        for number, obj in enumerate(data, start=1):
            yield path, number, obj


class Parquet(Reader):
    """Parquet, one row group at a time (memory stays bounded); Ray reads a row group per task."""

    name, label, table = "parquet", "Parquet", True

    def records(self, path: Path) -> Iterator[Record]:
        number = 0
        for batch in _parquet(path).iter_batches():
            for row in batch.to_pylist():
                number += 1
                yield path, number, row

    def count(self, path: Path) -> int | None:
        return _parquet(path).metadata.num_rows

    def splits(self, path: Path) -> list[Split]:
        return [Split(group) for group in range(_parquet(path).metadata.num_row_groups)]

    def read_split(self, path: Path, split: Split, fields: Fields) -> Iterator[Document]:
        for row in _parquet(path).read_row_group(split.start).to_pylist():
            yield parse_document(as_record(row, fields, True), str(path))


class Delimited(Reader):
    """CSV or TSV with a header row (quoting as the csv module reads it); reported by line."""

    table = True
    text_cells = True  # a number column reads as numbers in metadata

    def __init__(self, name: str, delimiter: str):
        self.name, self.label, self.delimiter = name, name.upper(), delimiter

    def records(self, path: Path) -> Iterator[Record]:
        import csv

        reader = csv.DictReader(decoded_lines(path), delimiter=self.delimiter)
        try:
            for row in reader:
                if None in row or any(v is None for v in row.values()):
                    raise InputError(f"expected {len(reader.fieldnames)} columns as in the header", str(path),
                                     reader.line_num)
                yield path, reader.line_num, row
        except csv.Error as exc:
            raise InputError(f"malformed {self.label}: {exc}", str(path), reader.line_num) from None


class Folder(Reader):
    """Every .txt and .md file under a folder, in sorted order: id its relative path, text its content."""

    name, label = "folder", "a folder of text files"

    def records(self, path: Path) -> Iterator[Record]:
        files = _text_files(path)
        if not files:
            raise InputError(f"no {' or '.join(TEXT_FILES)} files in this folder", str(path))
        for file in files:
            try:
                text = file.read_bytes().decode("utf-8-sig")
            except UnicodeDecodeError as exc:
                raise InputError(f"invalid UTF-8 at byte {exc.start}", str(file)) from None
            yield file, 1, {"_id": file.relative_to(path).as_posix(), "text": text}

    def count(self, path: Path) -> int | None:
        return len(_text_files(path)) or None


READERS: dict[str, Reader] = {r.name: r for r in (JsonLines(), JsonArray(), Parquet(), Delimited("csv", ","),
                                                   Delimited("tsv", "\t"), Folder())}


def register_reader(reader: Reader) -> Reader:
    """Make a format known by its name, which is also the file suffix that selects it."""
    READERS[reader.name] = reader
    return reader


def unregister_reader(name: str) -> None:
    READERS.pop(name, None)


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
    return suffix if suffix in READERS and suffix != "folder" else "jsonl"


def reader_for(path: str | Path) -> Reader:
    return READERS[corpus_format(Path(path))]


def splittable() -> list[Reader]:
    """The formats Ray can read in pieces: those whose reader declares splits."""
    return [r for r in READERS.values() if type(r).splits is not Reader.splits]


def read_corpus(path: str | Path, fields: Fields | None = None) -> Iterator[Document]:
    """Stream documents, validated and de-duplicated, from any format READERS knows."""
    path, fields = Path(path), fields or Fields()
    reader = reader_for(path)
    located = ((parse_document(as_record(obj, fields, reader.table, reader.text_cells), str(where), n), str(where), n)
               for where, n, obj in reader.records(path))
    count = 0
    for doc in validate_unique(located):
        count += 1
        yield doc
    if count == 0:
        raise InputError("empty corpus: no documents", str(path))


def count_documents(path: str | Path) -> int | None:
    """Documents to expect, for a progress bar's time left; None when not cheap to tell."""
    try:
        return reader_for(path).count(Path(path))
    except Exception:  # only an estimate: never the reason a build fails
        return None


def _parquet(path: Path):
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise InputError(f"cannot read as Parquet ({exc})", str(path)) from None


def _text_files(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_FILES)
