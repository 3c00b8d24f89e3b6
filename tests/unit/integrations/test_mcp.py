"""`retriever mcp` as an MCP client sees it: the command started as a subprocess, spoken to over stdio by
the SDK's own client, its tools listed and called; answers equal the engine's search, bad arguments come
back as tool errors, and nothing but the protocol reaches stdout."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

pytest.importorskip("mcp", reason="pip install 'retriever[mcp]'")

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from retriever import Retriever

from ...conftest import DEMO

COMMAND = shutil.which("retriever", path=str(Path(sys.executable).parent)) or "retriever"


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    return Retriever.build(DEMO, tmp_path_factory.mktemp("mcp") / "bm25", legs=("lexical",))


async def _session_calls(path: Path, calls: list[tuple[str, dict]]) -> tuple[list[str], list]:
    params = StdioServerParameters(command=COMMAND, args=["mcp", "--index", str(path)],
                                   env={**os.environ, "HF_HUB_OFFLINE": "1"})
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        tools = [tool.name for tool in (await session.list_tools()).tools]
        results = [await session.call_tool(name, arguments) for name, arguments in calls]
    return tools, results


def _run(path: Path, calls: list[tuple[str, dict]]):
    return asyncio.run(asyncio.wait_for(_session_calls(path, calls), timeout=120))


def _payload(result) -> dict:
    return result.structured_content if result.structured_content else json.loads(result.content[0].text)


def test_an_agent_lists_the_tools_and_searches(index):
    calls = [("search", {"query": "how do bees make honey", "k": 3, "mode": "lexical"}),
             ("search", {"query": "lava", "k": 5, "mode": "lexical", "filter": {"topic": "volcano"}}),
             ("get_document", {"id": "volcano"})]
    tools, (found, filtered, document) = _run(index.path, calls)
    assert set(tools) == {"search", "get_document"}
    hits = _payload(found)["hits"]
    assert [(h["id"], h["score"]) for h in hits] == \
        [(h.id, pytest.approx(h.score)) for h in index.search("how do bees make honey", k=3, mode="lexical")]
    assert hits[0]["tokens"] and not found.is_error
    assert {h["metadata"]["topic"] for h in _payload(filtered)["hits"]} == {"volcano"}
    assert _payload(document) == index.document("volcano")


def test_bad_arguments_are_tool_errors_with_a_message(index):
    calls = [("search", {"query": "bees", "mode": "dense"}), ("search", {"query": "bees", "k": 0}),
             ("search", {"query": "   "}), ("search", {"query": "bees", "filter": {"topic": {"zz": 1}}}),
             ("get_document", {"id": "nope"})]
    _, results = _run(index.path, calls)
    messages = [result.content[0].text for result in results]
    assert all(result.is_error for result in results), messages
    for message, expected in zip(messages, ("no mode 'dense'", "k must be between 1 and", "empty query",
                                            "unknown operator", "no document with id 'nope'"), strict=True):
        assert expected in message and "Traceback" not in message
