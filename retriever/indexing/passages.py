"""Documents cut into passages by the tokens of the model whose window they must fit, the same way in a
build, an add and a Ray worker (the cutting itself: corpus/passages.py).

The tokens are the LLM's where the index runs it (its --max-tokens window is what truncates), else the
trained dense model's, else words (an index of BM25 alone has no window; passages there only make a long
document's best part win).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from ..corpus.documents import Document
from ..corpus.passages import Passage, PassageOptions, passages_of, word_counts, words
from ..models.encoders.forward import token_ends
from ..settings import IndexSettings
from .encode import Progress


class Splitter:
    """Cuts documents into passages; tokenizer None counts words."""

    def __init__(self, options: PassageOptions, tokenizer=None, counted_by: str = "words"):
        self.options, self.tokenizer, self.counted_by = options, tokenizer, counted_by

    @classmethod
    def for_settings(cls, settings: IndexSettings, backbone=None, dense_encoder=None) -> Splitter | None:
        """The splitter an index's settings ask for (None without passages), counting the window's tokens."""
        options = settings.passage_options
        if options is None:
            return None
        if settings.needs_model and backbone is not None:
            return cls(options, backbone.tokenizer, backbone.name)
        if settings.needs_dense_model and dense_encoder is not None:
            return cls(options, dense_encoder.tokenizer, dense_encoder.name)
        return cls(options)

    def private(self) -> Splitter:
        """A copy with its own tokenizer, for a thread that splits while another runs the model (a fast
        tokenizer's settings are shared state)."""
        return Splitter(self.options, copy.deepcopy(self.tokenizer), self.counted_by)

    def split(self, documents: Sequence[Document]) -> list[Passage]:
        """Every document's passages, in order (one tokenizer call for all of them)."""
        located = [words(d.text) for d in documents]
        if self.tokenizer is None:
            ends_of = [[e for _, e in spans] for spans in located]
        else:
            ends_of = token_ends(self.tokenizer, [d.text for d in documents])
        out: list[Passage] = []
        for doc, spans, ends in zip(documents, located, ends_of, strict=True):
            out.extend(passages_of(doc, word_counts(spans, ends), self.options, spans))
        return out


def passage_record(splitter: Splitter | None) -> dict[str, Any]:
    """The manifest's record of how documents were cut (none when they were not); its "documents" count,
    the documents those rows came from, is added where the rows are counted."""
    if splitter is None:
        return {}
    options = splitter.options
    return {"passages": {"tokens": options.tokens, "overlap": options.step_back, "counted_by": splitter.counted_by}}


def per_document(progress: Progress | None, documents: int, rows: int) -> Progress | None:
    """progress in documents where the encoders count passages (rows): each row done is its share of the
    chunk's documents, so that the line and the committed count agree when the chunk ends."""
    if progress is None or documents == rows:
        return progress
    seen = reported = 0

    def report(done: int, tokens: int) -> None:
        nonlocal seen, reported
        seen += done
        now = seen * documents // rows
        progress(now - reported, tokens)
        reported = now

    return report
