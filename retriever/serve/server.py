"""`retriever serve`: the service (service.py) over HTTP, with FastAPI on uvicorn.

Routes turn JSON into service calls and ServiceErrors into status codes; they hold no rule of their own.
Every error a client can cause is a 4xx with one JSON body, {"error": message, "status": code}, never a
traceback; a request body is capped before it is parsed. Indexes load in a thread after the socket is
up, so /health can say "loading" (503) until every model is in memory, then "ready".
Searches run in the threadpool, where the micro-batcher gathers their queries into shared passes.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from fastapi import FastAPI, Header, Query
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr
from starlette.exceptions import HTTPException

from .. import api
from ..index.counts import counted
from .service import ServeConfig, Service, ServiceError

log = logging.getLogger("retriever.serve")
THREADS = 128  # request threads: enough for every client of the load test to wait in one batch


class SearchOptions(BaseModel):
    """What a search and a batch share; unknown fields are refused (a typo must not pass silently)."""

    model_config = ConfigDict(extra="forbid")
    k: StrictInt = Field(10, ge=1)
    mode: StrictStr = "hybrid"
    filter: dict[str, Any] | None = Field(None, description="README: filters, e.g. {\"year\": {\"gte\": 2000}}")
    index: StrictStr | None = Field(None, description="a served index's name; the first one served by default")


class SearchBody(SearchOptions):
    query: StrictStr
    explain: StrictBool = True


class BatchBody(SearchOptions):
    queries: list[StrictStr]
    explain: StrictBool = False


class WriteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    documents: list[Any] = Field(description='as `retriever index` reads them: {"_id", "text", "title", "metadata"}')
    upsert: StrictBool = False


def create_app(config: ServeConfig, *, on_failure: Callable[[], None] | None = None) -> FastAPI:
    """The app for config; its indexes load in a thread once it starts (on_failure: when they cannot)."""
    service = Service(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        import anyio.to_thread

        anyio.to_thread.current_default_thread_limiter().total_tokens = THREADS
        threading.Thread(target=_load, args=(service, on_failure), name="retriever-load", daemon=True).start()
        yield
        service.close()

    app = FastAPI(title="retriever", version=_version(), lifespan=lifespan,
                  description="Hybrid sparse-dense search over the indexes this server was started with.")
    app.state.service = service
    app.add_middleware(BodyLimit, search=config.limits.max_body_bytes, write=config.limits.max_write_bytes)
    _errors(app)
    _routes(app, service)
    return app


def _load(service: Service, on_failure: Callable[[], None] | None) -> None:
    started = time.perf_counter()
    try:
        service.load()
    except Exception as exc:
        log.error("cannot serve: %s", exc)
        if on_failure:
            on_failure()
        return
    log.info("ready in %.1f s: %s", time.perf_counter() - started,
             ", ".join(f"{s.name} ({counted(s.retriever.manifest)})" for s in service.indexes.values()))


def _routes(app: FastAPI, service: Service) -> None:
    page = resources.files("retriever.serve").joinpath("static/search.html").read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def search_page() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/health", summary="ready (200) once every index and model is loaded; loading or failed (503)")
    def health() -> JSONResponse:
        body = service.health()
        return JSONResponse(body, status_code=200 if body["status"] == "ready" else 503)

    @app.get("/indexes", summary="the served indexes")
    def indexes() -> dict:
        return {"indexes": service.summaries()}

    @app.get("/indexes/{name}", summary="what `retriever info --json` prints for an index")
    def index_info(name: str) -> dict:
        return api.info(service.index(name).retriever.path)

    @app.post("/search", summary="one query: the CLI's result object {query_id, query, mode, hits}")
    def search(body: SearchBody) -> JSONResponse:
        return _timed(lambda: service.search([body.query], index=body.index, k=body.k, mode=body.mode,
                                             filter=body.filter, explain=body.explain)[0])

    @app.post("/search/batch", summary="many queries: {results: [...]}, as `retriever search --json`")
    def search_batch(body: BatchBody) -> JSONResponse:
        return _timed(lambda: {"results": service.search(body.queries, index=body.index, k=body.k, mode=body.mode,
                                                         filter=body.filter, explain=body.explain)})

    @app.get("/documents/{doc_id:path}", summary="a stored document of an index (the first served by default)")
    def document(doc_id: str, index: str | None = Query(None)) -> dict:
        return service.document(index, doc_id)

    @app.get("/indexes/{name}/documents/{doc_id:path}", summary="a stored document")
    def index_document(name: str, doc_id: str) -> dict:
        return service.document(name, doc_id)

    @app.post("/indexes/{name}/documents", summary="add (upsert) documents: --allow-writes and the bearer token")
    def add(name: str, body: WriteBody, authorization: str | None = Header(None)) -> dict:
        service.authorize(authorization)
        return service.add(name, body.documents, body.upsert)

    @app.delete("/indexes/{name}/documents/{doc_id:path}", summary="delete a document: --allow-writes and the token")
    def delete(name: str, doc_id: str, authorization: str | None = Header(None)) -> dict:
        service.authorize(authorization)
        return service.delete(name, doc_id)


def _timed(answer: Callable[[], Any]) -> JSONResponse:
    """The answer as JSON, with the time it took in a Server-Timing header (the schema stays the CLI's)."""
    started = time.perf_counter()
    body = answer()
    return JSONResponse(body, headers={"Server-Timing": f"search;dur={(time.perf_counter() - started) * 1000:.1f}"})


def _errors(app: FastAPI) -> None:
    def error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
        return JSONResponse({"error": message, "status": status}, status_code=status, headers=headers)

    @app.exception_handler(ServiceError)
    async def service_error(request, exc: ServiceError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return error(exc.status, str(exc), headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request, exc: RequestValidationError) -> JSONResponse:
        problems = exc.errors()
        if any(p.get("type") == "json_invalid" for p in problems):
            return error(400, "the request body is not valid JSON")
        if any(p.get("type") == "missing" and tuple(p.get("loc", ())) == ("body",) for p in problems):
            return error(400, "the request body must be a JSON object; it was empty or not JSON")
        return error(422, "; ".join(_problem(p) for p in problems[:5]))

    @app.exception_handler(HTTPException)
    async def http_error(request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 400 and "parsing the body" in str(exc.detail):  # FastAPI's word for undecodable bytes
            return error(400, "the request body is not valid JSON in UTF-8")
        return error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def internal(request, exc: Exception) -> JSONResponse:  # the log has the traceback, the client not
        log.exception("internal error on %s %s", request.method, request.url.path)
        return error(500, "internal error; the server's log has the details")


def _problem(p: dict) -> str:
    where = ".".join(str(part) for part in p.get("loc", ()) if part != "body") or "body"
    return f"{where}: {p.get('msg', 'invalid')}"


class BodyLimit:
    """Refuses a request body over its cap (413) before the app reads it: by Content-Length when sent, and
    by counting when the body comes in chunks. Writes get their own, larger cap."""

    def __init__(self, app, search: int, write: int):
        self.app, self.search, self.write = app, search, write

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "DELETE", "OPTIONS"):
            return await self.app(scope, receive, send)
        cap = self.write if scope["path"].startswith("/indexes/") else self.search
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > cap):
            return await _too_large(send, cap)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > cap:
                return await _too_large(send, cap)
            if not message.get("more_body"):
                break
        body, sent = b"".join(chunks), False

        async def replay():
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        return await self.app(scope, replay, send)


async def _too_large(send, cap: int) -> None:
    body = json.dumps({"error": f"the request body is over {cap:,} bytes", "status": 413}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


def _version() -> str:
    from importlib.metadata import version

    return version("retriever")


def serve(config: ServeConfig, host: str = "127.0.0.1", port: int = 8000, quiet: bool = False,
          max_connections: int = 256, grace_seconds: float = 30.0) -> int:
    """Run the server until SIGINT/SIGTERM (in-flight requests finish first); 1 when the indexes failed to load."""
    import uvicorn

    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(levelname)s: %(message)s")
    holder: dict[str, uvicorn.Server] = {}
    app = create_app(config, on_failure=lambda: setattr(holder["server"], "should_exit", True))
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning" if quiet else "info",
                                           access_log=not quiet, limit_concurrency=max_connections,
                                           timeout_graceful_shutdown=grace_seconds, server_header=False))
    holder["server"] = server
    server.run()
    return 0 if app.state.service.state == "ready" else 1


class ServerProcess:
    """`retriever serve ARGS` in a child process on a free loopback port, ready when entered, stopped with
    SIGTERM (in-flight requests finish) on exit: for scripts, notebooks and tests.

        with ServerProcess(["--index", "indexes/mine", "--quiet"]) as server:
            requests.post(server.url + "/search", json={"query": "..."})
    """

    def __init__(self, args: list[str], timeout: float = 300.0, env: dict[str, str] | None = None,
                 log: str | None = None):
        self.args, self.timeout, self.env, self.log = list(args), timeout, env, log
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self._out: Any = subprocess.DEVNULL

    def __enter__(self) -> ServerProcess:
        self.start()
        return self.wait_ready()

    def start(self) -> subprocess.Popen:
        """Start the server and return at once (it binds, then loads: /health says when it is ready)."""
        self._out = open(self.log, "ab") if self.log else subprocess.DEVNULL  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen([sys.executable, "-m", "retriever.cli", "serve", *self.args,
                                         "--port", str(self.port)], stdout=self._out, stderr=subprocess.STDOUT,
                                        env={**os.environ, **(self.env or {})})
        return self.process

    def wait_ready(self) -> ServerProcess:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"retriever serve exited with code {self.process.returncode} before it was ready"
                                   + (f" (its log: {self.log})" if self.log else ""))
            if self.health().get("status") == "ready":
                return self
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"retriever serve was not ready within {self.timeout:.0f} s")

    def __exit__(self, *exc) -> None:
        self.stop()

    def health(self) -> dict:
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=5) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return json.loads(exc.read() or b"{}")
        except (OSError, ValueError):
            return {}

    def stop(self, timeout: float = 60.0) -> int | None:
        """SIGTERM, then the exit code (SIGKILL after timeout)."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._out is not subprocess.DEVNULL:
            self._out.close()
            self._out = subprocess.DEVNULL
        return self.process.returncode


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
