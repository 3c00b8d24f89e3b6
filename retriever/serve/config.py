"""What `retriever serve` is asked to serve and how much a request may ask for, checked before the server
binds or a model loads: the served indexes' names, the write token, the request limits. No model and no
web framework here, so the CLI refuses a bad --index or token file at once."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..corpus.queries import MAX_QUERY_CHARS
from ..errors import RetrieverError

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MIN_TOKEN_CHARS = 16


@dataclass
class Limits:
    """What one request may ask for; beyond it, a 4xx that names the limit (README: serving)."""

    max_body_bytes: int = 1 << 20  # a search or batch request's JSON
    max_write_bytes: int = 32 << 20  # a write request's JSON
    max_query_chars: int = MAX_QUERY_CHARS
    max_query_tokens: int = 512  # by the tokenizer of the index's model (words for a model-free index)
    max_k: int = 1000
    max_batch_queries: int = 256
    max_write_documents: int = 1000


@dataclass
class ServeConfig:
    indexes: dict[str, Path]
    limits: Limits = field(default_factory=Limits)
    wait_ms: float = 5.0  # how long a query waits for others to share its forward pass
    max_batch: int = 64  # texts per micro-batched pass
    token: str | None = None  # the bearer token writes need; None: writes are off
    device: str = "auto"
    dtype: str | None = None  # None: the dtype each index was built with
    search_threads: int = 1  # FAISS's threads per search call


def index_names(specs: Sequence[str]) -> dict[str, Path]:
    """`NAME=DIR` or `DIR` (named after its folder) for each served index, checked to hold an index."""
    named: dict[str, Path] = {}
    for spec in specs:
        name, sep, folder = spec.partition("=")
        path = Path(folder if sep else spec)
        name = name if sep else path.resolve().name
        if not NAME.match(name):
            raise RetrieverError(f"index name {name!r} (from {spec!r}): use letters, digits, '.', '_' and '-' "
                                 "(at most 64), starting with a letter or digit; or --index NAME=DIR")
        if name in named:
            raise RetrieverError(f"two indexes are named {name!r}; name them apart with --index NAME=DIR")
        from ..index.store import read_manifest

        read_manifest(path)  # a missing or damaged index fails here, before the server binds or a model loads
        named[name] = path
    if not named:
        raise RetrieverError("no index to serve: give --index DIR (repeatable)")
    return named


def read_token(path: str | Path) -> str:
    """The bearer token from a file (surrounding whitespace dropped), long enough not to be guessed."""
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise RetrieverError(f"cannot read the token file {path}: {exc}") from None
    if len(token) < MIN_TOKEN_CHARS or any(c.isspace() for c in token):
        raise RetrieverError(f"{path}: the token must be one word of at least {MIN_TOKEN_CHARS} characters "
                             "(e.g. from `python -c 'import secrets; print(secrets.token_urlsafe())'`)")
    return token


