"""How many documents an index holds, as a manifest says: light (no numpy), for the CLI's messages."""

from __future__ import annotations

from typing import Any


def document_count(manifest: dict[str, Any]) -> int:
    """Documents an index holds: its live rows, or in an index of passages the documents they came from
    (the manifest's "documents" counts rows, as its segments and arrays do)."""
    return manifest["passages"]["documents"] if "passages" in manifest else manifest["documents"]


def counted(manifest: dict[str, Any]) -> str:
    """'1,200 documents', or '1,200 documents (8,411 passages)' in an index of passages."""
    passages = f" ({manifest['documents']:,} passages)" if "passages" in manifest else ""
    return f"{document_count(manifest):,} documents{passages}"
