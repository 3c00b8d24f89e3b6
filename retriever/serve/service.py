"""What `retriever serve` serves, without HTTP: the loaded indexes, the request limits, and the writes.

The server (server.py) only turns HTTP into calls here and ServiceErrors into status codes, so every rule
a request can break lives in one place and is testable without a socket. Indexes are opened once, their
models shared where two indexes use the same one, and their query encoding micro-batched (batching.py).
An index is named when served (`--index NAME=DIR`); a request names an index only as a key of this map,
never as a path, so no name can reach outside the served folders.
"""

from __future__ import annotations

import copy
import hmac
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .. import api
from ..corpus.documents import documents_from
from ..corpus.queries import check_queries
from ..errors import BusyError, RetrieverError
from ..index.counts import document_count
from ..index.store import read_manifest
from ..models.kinds import DENSE_MODEL, LLM
from ..models.loading import FIELD, sharing_key
from ..search.batching import MicroBatcher, query_batcher
from ..search.filters import parse_filter
from .config import ServeConfig


class ServiceError(RetrieverError):
    """A request the service refuses, with the HTTP status that says why."""

    def __init__(self, status: int, message: str):
        self.status = status
        super().__init__(message)


class Served:
    """One loaded index: its Retriever, a way to count a query's tokens, and one write at a time."""

    def __init__(self, name: str, retriever: api.Retriever, count_tokens: Callable[[str], int]):
        self.name, self.retriever, self.count_tokens = name, retriever, count_tokens
        self.write_lock = threading.Lock()

    @property
    def writing(self) -> bool:
        return self.write_lock.locked()

    def summary(self) -> dict[str, Any]:
        manifest = self.retriever.manifest
        return {"name": self.name, "path": str(self.retriever.path.resolve()), "documents": document_count(manifest),
                "legs": list(manifest["settings"]["legs"]), "modes": list(self.retriever.modes),
                "writing": self.writing}


class Service:
    """The indexes of one server; load() opens them (minutes with a model), then every call answers."""

    def __init__(self, config: ServeConfig):
        self.config = config
        self.batchers: list[MicroBatcher] = []
        self.indexes: dict[str, Served] = {}
        self.state, self.error = "loading", None

    def load(self, quiet: bool = True) -> None:
        """Open every index, sharing the models indexes have in common; state becomes ready or failed.

        FAISS then searches with search_threads per call (one unless `--threads` says otherwise): the
        server's parallelism is its concurrent requests, and an OpenMP team per call spins on the cores the
        model's pass needs (docs/benchmarks.md)."""
        import faiss

        faiss.omp_set_num_threads(self.config.search_threads)
        try:
            shared: dict[tuple, Any] = {}  # (kind, name, fingerprint) -> a model one index loaded
            counters: dict[int, Callable[[str], int]] = {}
            for name, path in self.config.indexes.items():
                r = self._open(path, shared, quiet)
                self.batchers.append(query_batcher(self.config.wait_ms, self.config.max_batch, name))
                r.batch_requests(self.batchers[-1])
                self.indexes[name] = Served(name, r, _token_counter(r, counters))
            self.state = "ready"
        except Exception as exc:  # reported by /health and the server's log; the process then stops
            self.state, self.error = "failed", str(exc)
            raise

    def _open(self, path: Path, shared: dict[tuple, Any], quiet: bool) -> api.Retriever:
        """One index, given the models of its kinds that an index opened before loaded (the same name and
        weights); what it loads itself is shared on."""
        manifest = read_manifest(path)
        given = {FIELD[kind]: shared.get(sharing_key(manifest, kind)) for kind in (LLM, DENSE_MODEL)}
        r = api.Retriever.load(path, **given, dtype=self.config.dtype, device=self.config.device, quiet=quiet)
        for kind in (LLM, DENSE_MODEL):
            if r.models.get(kind) is not None:
                shared.setdefault(sharing_key(manifest, kind), r.models.get(kind))
        return r

    def close(self) -> None:
        for batcher in self.batchers:
            batcher.close()

    # reading

    def index(self, name: str | None) -> Served:
        """A served index by name (the first one served when None); unknown names are a 404."""
        self._ready()
        if name is None:
            return next(iter(self.indexes.values()))
        if not isinstance(name, str) or name not in self.indexes:
            raise ServiceError(404, f"no index named {name!r} is served (served: {', '.join(self.indexes)})")
        return self.indexes[name]

    def summaries(self) -> list[dict[str, Any]]:
        """Each served index: name, path, documents, legs, modes, and whether a write is running."""
        self._ready()
        return [s.summary() for s in self.indexes.values()]

    def health(self) -> dict[str, Any]:
        body: dict[str, Any] = {"status": self.state}
        if self.error:
            body["error"] = self.error
        if self.state == "ready":
            body["indexes"] = list(self.indexes)
            body["batching"] = {"wait_ms": self.config.wait_ms, "max_batch": self.config.max_batch,
                                "indexes": [b.stats() for b in self.batchers]}
        return body

    def search(self, queries: list[str], *, index: str | None, k: int, mode: str, filter: Any,
               explain: bool) -> list[dict[str, Any]]:
        """The CLI's result objects for queries (ids 1, 2, ...), after every limit is checked."""
        served = self.index(index)
        self._check_search(served, queries, k, mode, filter)
        try:
            hits = served.retriever.search_batch(queries, k=k, mode=mode, explain=explain, filter=filter)
        except RetrieverError as exc:
            raise ServiceError(400, str(exc)) from None
        return [api.result(str(i), q, mode, h) for i, (q, h) in enumerate(zip(queries, hits, strict=True), 1)]

    def document(self, index: str | None, doc_id: str) -> dict[str, Any]:
        served = self.index(index)
        doc = served.retriever.document(doc_id)
        if doc is None:
            raise ServiceError(404, f"index {served.name!r} has no document {doc_id!r}")
        return doc

    def _check_search(self, served: Served, queries: list[str], k: int, mode: str, filter: Any) -> None:
        limits = self.config.limits
        if not queries:
            raise ServiceError(400, "no query: give at least one")
        if len(queries) > limits.max_batch_queries:
            raise ServiceError(400, f"{len(queries)} queries in one request; the limit is {limits.max_batch_queries}")
        if k > limits.max_k:
            raise ServiceError(400, f"k is {k}; the limit is {limits.max_k}")
        if mode not in served.retriever.modes:
            raise ServiceError(400, f"index {served.name!r} has no mode {mode!r} "
                                    f"(modes: {', '.join(served.retriever.modes)})")
        try:
            check_queries(queries)  # the API's limits, and the server's own (lower) ones below
            parse_filter(filter)
        except RetrieverError as exc:
            raise ServiceError(400, str(exc)) from None
        for number, query in enumerate(queries, start=1):
            where = f"query {number}" if len(queries) > 1 else "the query"
            if len(query) > limits.max_query_chars:
                raise ServiceError(400, f"{where} has {len(query):,} characters; "
                                        f"the limit is {limits.max_query_chars:,}")
            if (tokens := served.count_tokens(query)) > limits.max_query_tokens:
                raise ServiceError(400, f"{where} has {tokens:,} tokens; the limit is {limits.max_query_tokens:,}")

    def _ready(self) -> None:
        if self.state != "ready":
            raise ServiceError(503, f"the server is {self.state}" + (f": {self.error}" if self.error else "")
                               + ("; GET /health says when it is ready" if self.state == "loading" else ""))

    # writing

    def authorize(self, header: str | None) -> None:
        """Writes need --allow-writes and the bearer token; compared in constant time."""
        if self.config.token is None:
            raise ServiceError(403, "writes are off; start the server with --allow-writes --token-file FILE")
        scheme, _, given = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self.config.token.encode()):
            raise ServiceError(401, "a write needs the header 'Authorization: Bearer TOKEN' with the server's token")

    def add(self, index: str, documents: list[Any], upsert: bool) -> dict[str, Any]:
        """Add (or with upsert replace) documents; searches answer from the old index until it lands."""
        served = self.index(index)
        if not documents:
            raise ServiceError(400, "no documents to add")
        if len(documents) > self.config.limits.max_write_documents:
            raise ServiceError(400, f"{len(documents):,} documents in one request; the limit is "
                                    f"{self.config.limits.max_write_documents:,}")
        try:
            docs = list(documents_from(documents))  # every document checked before any work
        except RetrieverError as exc:
            raise ServiceError(400, str(exc)) from None
        with self._writing(served):
            manifest = served.retriever.add(docs, upsert=upsert)
        return {"index": served.name, "added": manifest["updates"][-1]["added"],
                "replaced": manifest["updates"][-1]["replaced"], "documents": document_count(manifest)}

    def delete(self, index: str, doc_id: str) -> dict[str, Any]:
        served = self.index(index)
        if served.retriever.searcher.row(doc_id) is None:
            raise ServiceError(404, f"index {served.name!r} has no document {doc_id!r}")
        with self._writing(served):
            manifest = served.retriever.delete([doc_id])
        return {"index": served.name, "deleted": doc_id, "documents": document_count(manifest)}

    @contextmanager
    def _writing(self, served: Served) -> Iterator[None]:
        """One write per index at a time (another gets a 409); the engine's refusals become 4xx."""
        if not served.write_lock.acquire(blocking=False):
            raise ServiceError(409, f"index {served.name!r} is being written; try again when that write is done")
        try:
            yield
        except BusyError as exc:  # a writer outside this server (`retriever add`) holds the index
            raise ServiceError(409, str(exc)) from None
        except ServiceError:
            raise
        except RetrieverError as exc:
            raise ServiceError(400, str(exc)) from None
        finally:
            served.write_lock.release()


def _token_counter(r: api.Retriever, cache: dict[int, Callable[[str], int]]) -> Callable[[str], int]:
    """Counts a query's tokens with the index's first model's tokenizer (a private copy, so counting never
    waits for a running forward pass), or its words when it has no model."""
    model = r.models.first()
    if model is None:
        return lambda text: len(text.split())
    if id(model) not in cache:
        if r.backbone is not None:
            tokenizer, lock = r.backbone.side_tokenizer()
        else:  # the LLM's tokenizer alone (own-token queries), or the dense encoder's
            tokenizer = model if model is r.tokenizer else model.tokenizer
            tokenizer, lock = copy.deepcopy(tokenizer), threading.Lock()

        def count(text: str) -> int:
            with lock:
                return len(tokenizer(text, add_special_tokens=False).input_ids)

        cache[id(model)] = count
    return cache[id(model)]
