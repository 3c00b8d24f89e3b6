"""A LangChain retriever over an index: `HybridRetriever.from_index(DIR)` is a `BaseRetriever`, so it
works wherever LangChain takes one (chains, agents' tools, `invoke`, `batch`, async), with the engine's
hybrid search, filters and scores behind it. Needs the `langchain` extra (langchain-core)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

try:
    from langchain_core.callbacks import CallbackManagerForRetrieverRun
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever
    from pydantic import ConfigDict
except ImportError as exc:  # named for the user, not a bare ModuleNotFoundError
    raise ImportError("retriever.integrations.langchain needs langchain-core: "
                      "pip install 'retriever[langchain]'") from exc

from ..api import Hit, Retriever
from ..search.filters import parse_filter


class HybridRetriever(BaseRetriever):
    """Top-k documents of an index for a query. Each is a LangChain Document: the stored text as
    page_content, the index's id as id, and in metadata the document's own metadata plus `score` (the
    fused or the mode's score), `scores` (each leg's), `rank` and `title` (these four win over metadata
    keys of the same name). In an index of passages, page_content is the passage that scored the document
    (what fits a prompt) and metadata's `passage` says where it is in the document's text."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    index: Retriever
    k: int = 4
    mode: str = "hybrid"
    filter: dict[str, Any] | None = None

    @classmethod
    def from_index(cls, path: str | Path, k: int = 4, mode: str = "hybrid", filter: dict[str, Any] | None = None,
                   **load: Any) -> HybridRetriever:
        """Open the index at path (load: Retriever.load's options: device, dtype, ...); a one-leg mode loads
        only what that leg needs (mode="lexical" loads no model). A bad k, mode or filter fails here."""
        if k < 1:
            raise ValueError(f"k must be at least 1, not {k}")
        parse_filter(filter)
        index = Retriever.load(path, mode=None if mode == "hybrid" else mode, **load)
        if mode not in index.modes:
            raise ValueError(f"{path} has no mode {mode!r} (modes: {', '.join(index.modes)})")
        return cls(index=index, k=k, mode=mode, filter=filter)

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        hits = self.index.search(query, k=self.k, mode=self.mode, filter=self.filter, explain=False)
        return [self._document(hit) for hit in hits]

    def _document(self, hit: Hit) -> Document:
        stored = self.index.document(hit.id) or {"text": hit.snippet, "metadata": hit.metadata}
        metadata = {**stored["metadata"], "score": hit.score, "scores": hit.scores, "rank": hit.rank,
                    "title": hit.title}
        text = stored["text"]
        if hit.passage is not None:
            metadata["passage"] = hit.passage
            text = text[hit.passage["start"]:hit.passage["end"]]
        return Document(page_content=text, id=hit.id, metadata=metadata)
