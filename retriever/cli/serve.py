"""retriever serve: the HTTP server's options, checked before any model loads."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..index.home import last_built
from ..serve.config import Limits, ServeConfig, index_names, read_token
from .options import DEVICE, THREADS, use_threads


@click.command()
@click.option("--index", "indexes", multiple=True, metavar="[NAME=]DIR",
              help="An index to serve (repeatable), named after its folder or NAME (default: the last one built).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; the default answers this machine only.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--batch-wait-ms", type=click.FloatRange(min=0), default=5.0, show_default=True,
              help="How long a query waits for others to share its forward pass (0 with --max-batch 1: one at a time).")
@click.option("--max-batch", type=click.IntRange(min=1), default=64, show_default=True,
              help="Queries encoded together in one micro-batched pass.")
@click.option("--allow-writes", is_flag=True, help="Serve the add/delete endpoints (they need --token-file's token).")
@click.option("--token-file", type=click.Path(dir_okay=False, path_type=Path),
              help="A file holding the bearer token writes must send.")
@click.option("--max-k", type=click.IntRange(min=1), default=Limits.max_k, show_default=True)
@click.option("--max-query-chars", type=click.IntRange(min=1, max=Limits.max_query_chars),
              default=Limits.max_query_chars, show_default=True, help="At most the API's own limit.")
@click.option("--max-query-tokens", type=click.IntRange(min=1), default=Limits.max_query_tokens, show_default=True)
@click.option("--max-batch-queries", type=click.IntRange(min=1), default=Limits.max_batch_queries, show_default=True,
              help="Queries in one /search/batch request.")
@click.option("--max-write-documents", type=click.IntRange(min=1), default=Limits.max_write_documents,
              show_default=True, help="Documents in one write request.")
@click.option("--dtype", type=click.Choice(["auto", "float32", "bfloat16", "float16", "int8"]), default=None,
              help="The models' dtype (default: the one each index was built with).")
@DEVICE
@THREADS
@click.option("--quiet", is_flag=True, help="Warnings and errors only (no access log).")
def serve(indexes: tuple[str, ...], host: str, port: int, batch_wait_ms: float, max_batch: int, allow_writes: bool,
          token_file: Path | None, max_k: int, max_query_chars: int, max_query_tokens: int, max_batch_queries: int,
          max_write_documents: int, dtype: str | None, device: str, threads: int | None, quiet: bool) -> None:
    """Serve indexes over HTTP: POST /search, /search/batch, GET /documents/ID, /indexes, /health, a search
    page at /, OpenAPI at /docs; concurrent queries share micro-batched forward passes."""
    try:
        from ..serve.server import serve as run_server
    except ImportError as exc:
        raise click.ClickException(f"retriever serve needs FastAPI and uvicorn ({exc.name} is missing): "
                                   "pip install 'retriever[serve]'") from None
    if allow_writes != (token_file is not None):
        raise click.UsageError("--allow-writes and --token-file go together: writes need a token, "
                               "and a token is only for writes")
    token = read_token(token_file) if token_file else None
    named = index_names(indexes or (str(last_built()),))  # bad folders fail here, before binding or loading
    limits = Limits(max_k=max_k, max_query_chars=max_query_chars, max_query_tokens=max_query_tokens,
                    max_batch_queries=max_batch_queries, max_write_documents=max_write_documents)
    use_threads(threads)
    config = ServeConfig(named, limits, batch_wait_ms, max_batch, token, device, dtype, search_threads=threads or 1)
    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"warning: binding {host}: other machines can reach this server"
                   + ("; writes need the token" if token else ""), err=True)
    if not quiet:
        click.echo(f"serving {', '.join(named)} on http://{host}:{port} (loading models; GET /health says when "
                   f"ready){'; writes on' if token else ''}", err=True)
    sys.exit(run_server(config, host, port, quiet))
