"""`retriever mcp`: an index's search as MCP tools over stdio, for LLM agents (Claude Desktop, IDEs, any
MCP client): `search` (hybrid or one leg, with filters) and `get_document`. Needs the `mcp` extra.

stdout is the protocol's channel, so nothing else may write there: the index loads quietly, and an error a
tool raises (ToolError) reaches the client as a tool error, its message only. Requests are capped
as the HTTP server caps them (serve/config.py Limits)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

try:
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
except ImportError as exc:
    raise ImportError("retriever mcp needs the MCP SDK (2.x): pip install 'retriever[mcp]'") from exc

from ..api import Retriever, result
from ..corpus.queries import check_queries
from ..errors import RetrieverError
from ..index.counts import counted
from ..search.filters import parse_filter
from ..serve.config import Limits

INSTRUCTIONS = ("Search a document collection indexed by retriever. `search` returns the best documents for a "
                "query (id, title, a snippet, scores, the words that matched, metadata); `get_document` "
                "returns one document's whole text by id.")


def mcp_server(index: Retriever, limits: Limits | None = None, name: str = "retriever") -> MCPServer:
    """An MCP server with the search tools over an opened index."""
    limits = limits or Limits()
    server = MCPServer(name=name, instructions=INSTRUCTIONS)

    @server.tool(description=f"Search the index ({index.path.name}, {counted(index.manifest)}). "
                             f"mode: {', '.join(index.modes)} (hybrid fuses every leg). filter: metadata "
                             'conditions, e.g. {"year": {"gte": 2000}} or {"topic": {"in": ["a", "b"]}}.')
    def search(query: str, k: int = 5, mode: str = "hybrid", filter: dict[str, Any] | None = None) -> dict[str, Any]:
        _check(index, limits, query, k, mode, filter)
        return result("1", query, mode, index.search(query, k=k, mode=mode, filter=filter))

    @server.tool(description="One document of the index by its id: its title, whole text and metadata.")
    def get_document(id: str) -> dict[str, Any]:
        document = index.document(id)
        if document is None:
            raise ToolError(f"no document with id {id!r} in the index")
        return document

    return server


def _check(index: Retriever, limits: Limits, query: str, k: int, mode: str, filter: Any) -> None:
    if not 1 <= k <= limits.max_k:
        raise ToolError(f"k must be between 1 and {limits.max_k}, not {k}")
    if mode not in index.modes:
        raise ToolError(f"no mode {mode!r}; modes: {', '.join(index.modes)}")
    try:
        check_queries([query], limits.max_query_chars)
        parse_filter(filter)
    except RetrieverError as exc:
        raise ToolError(str(exc)) from None


def serve_mcp(path: str | Path | None, device: str = "auto", dtype: str | None = None) -> None:
    """Open the index (before speaking any protocol: a bad path fails at once) and serve over stdio."""
    index = Retriever.load(path, device=device, dtype=dtype, quiet=True)
    mcp_server(index).run("stdio")
