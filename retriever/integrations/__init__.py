"""Adapters to the frameworks users search from: LangChain (langchain.py, the `langchain` extra) and MCP
(mcp.py, `retriever mcp`, the `mcp` extra). Each imports its framework only when used, and speaks to the
engine through the public API alone."""
