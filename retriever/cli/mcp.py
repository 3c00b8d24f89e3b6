"""retriever mcp: an index as MCP tools over stdio (integrations/mcp.py)."""

from __future__ import annotations

from pathlib import Path

import click

from .options import DEVICE, LAST_INDEX, THREADS, use_threads


@click.command("mcp")
@LAST_INDEX
@DEVICE
@THREADS
def mcp(index_dir: Path | None, device: str, threads: int | None) -> None:
    """Serve an index's search to an LLM agent as MCP tools over stdio: `search` (query, k, mode, filter)
    and `get_document` (id). Point an MCP client at `retriever mcp --index DIR`; needs retriever[mcp]."""
    try:
        from ..integrations.mcp import serve_mcp
    except ImportError as exc:
        raise click.ClickException(str(exc)) from None
    use_threads(threads)
    serve_mcp(index_dir, device=device)
