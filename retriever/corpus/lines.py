"""A corpus or queries file as bytes and lines: gzip by suffix, a missing or unreadable file, bad UTF-8 and
malformed JSON each an InputError naming the file and the line."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import InputError


def open_lines(path: Path) -> Iterator[bytes]:
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



def json_records(path: Path) -> Iterator[tuple[int, Any]]:
    source = str(path)
    for number, raw in enumerate(open_lines(path), start=1):
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



def decoded_lines(path: Path) -> Iterator[str]:
    for number, raw in enumerate(open_lines(path), start=1):
        try:
            yield raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"invalid UTF-8 at byte {exc.start}", str(path), number) from None
