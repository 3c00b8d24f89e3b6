"""Queries and relevance judgments: BEIR queries.jsonl, a TSV of id<TAB>text or one query a line, and BEIR
qrels (STS files share the plain TSV reader); every query checked before any model loads (check_queries)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..errors import InputError
from .documents import id_of, string_field
from .lines import decoded_lines, json_records, open_lines


def read_queries(path: str | Path) -> dict[str, str]:
    """BEIR queries.jsonl: id -> text."""
    path = Path(path)
    queries: dict[str, str] = {}
    for number, obj in json_records(path):
        if not isinstance(obj, dict):
            raise InputError("expected a JSON object", str(path), number)
        qid = id_of(obj, str(path), number)
        queries[qid] = string_field(obj, "text", str(path), number, required=True)
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
    return query_lines(decoded_lines(path), str(path))


def query_lines(lines, source: str) -> dict[str, str]:
    """One query a line (stdin, a .txt file), blank lines skipped; a query's id is its line number."""
    return {str(number): line.rstrip("\r\n") for number, line in enumerate(lines, start=1) if line.strip()}


def read_tsv(path: str | Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of a tab-separated file without quoting, as BEIR qrels and STS files ship."""
    path = Path(path)
    for number, raw in enumerate(open_lines(path), start=1):
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


MAX_QUERY_CHARS = 4000  # the API's, the CLI's and (by default) the server's: a query, not a document


def check_queries(queries: Sequence[Any], max_chars: int = MAX_QUERY_CHARS) -> None:
    """Every query a non-empty string of valid Unicode, of at most max_chars characters; the first that is
    not is named by its position."""
    for number, query in enumerate(queries, start=1):
        _check_query(query, number, max_chars)


def _check_query(query: Any, number: int, max_chars: int) -> None:
    if not isinstance(query, str):
        raise InputError("a query must be a string", "queries", number)
    if not query.strip():
        raise InputError("empty query", "queries", number)
    if len(query) > max_chars:
        raise InputError(f"the query has {len(query):,} characters; the limit is {max_chars:,}", "queries", number)
    try:
        query.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(f"invalid Unicode (a lone surrogate) at character {exc.start}", "queries", number) from None
