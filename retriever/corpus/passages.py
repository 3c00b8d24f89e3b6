"""Long documents as passages: where a document is cut, at word and (where it can) sentence boundaries.

A model reads a window of tokens and drops the rest, so a 5,000-token document indexed whole is its first
window. Split into windows that overlap, every part of it is indexed, and a search scores the document by
its best passage (MaxP, search/passages.py). The windows follow BERT-MaxP (Dai and Callan, SIGIR 2019:
fixed windows with a stride of half a window, the title with every passage) and Pyserini's segmented MS
MARCO documents (windows that end at sentences). Token counts come from the model whose window the
passages must fit (indexing/passages.py); here they arrive as a count per word, so this module needs no
model.

A document short enough for one passage is one passage of its whole text, embedded exactly as in an index
without passages.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import RetrieverError
from .documents import Document

WORD = re.compile(r"\S+")
SENTENCE_END = re.compile(r"[.!?\u3002\uff01\uff1f][\"'\u201d\u2019)\]]*$")  # a word that ends a sentence


@dataclass(frozen=True)
class PassageOptions:
    """tokens: the most tokens of a passage's text (its title comes on top); overlap: tokens the next
    passage repeats (None: half a window, as BERT-MaxP strides)."""

    tokens: int
    overlap: int | None = None

    def __post_init__(self):
        if isinstance(self.tokens, bool) or not isinstance(self.tokens, int) or self.tokens < 8:
            raise RetrieverError(f"passage_tokens must be an integer of at least 8, not {self.tokens!r}")
        overlap = self.step_back
        if isinstance(overlap, bool) or not isinstance(overlap, int) or not 0 <= overlap < self.tokens:
            raise RetrieverError(f"passage_overlap must be an integer from 0 to passage_tokens - 1 "
                                 f"({self.tokens - 1}), not {self.overlap!r}")

    @property
    def step_back(self) -> int:
        return self.tokens // 2 if self.overlap is None else self.overlap


@dataclass(frozen=True)
class Passage:
    """One passage of a document: its characters [start, end) of the document's text."""

    document: Document
    number: int
    start: int
    end: int

    @property
    def text(self) -> str:
        return self.document.text[self.start:self.end]

    @property
    def row(self) -> Document:
        """The passage as the legs index it: the document's id, title and metadata, the passage's text."""
        d = self.document
        return d if self.whole else Document(d.id, self.text, d.title, d.metadata)

    @property
    def whole(self) -> bool:
        return self.start == 0 and self.end == len(self.document.text)


def words(text: str) -> list[tuple[int, int]]:
    """Each word's [start, end) in text (a word: a run of characters that are not space)."""
    return [m.span() for m in WORD.finditer(text)]


def word_counts(spans: Sequence[tuple[int, int]], token_ends: Sequence[int]) -> np.ndarray:
    """Tokens per word: a token belongs to the word its last character falls in (a leading space goes with
    the word after it, a run of newlines with the word before), so that a run of words counts exactly the
    tokens that cover it."""
    starts = [s for s, _ in spans]
    counts = np.zeros(len(spans), np.int64)
    for end in token_ends:
        counts[max(bisect.bisect_right(starts, end - 1) - 1, 0)] += 1
    return counts


def spans(text: str, counts: np.ndarray, options: PassageOptions,
          located: Sequence[tuple[int, int]] | None = None) -> list[tuple[int, int]]:
    """Where text is cut: [start, end) character spans of at most options.tokens tokens each (a word longer
    than that is a passage of its own), each next one starting options.step_back tokens before the last
    one ended. A window ends at a sentence end when one falls in its second half, and the next one starts
    at a sentence start when one falls in the overlap. counts: tokens per word (word_counts)."""
    located = words(text) if located is None else located
    if len(located) == 0 or int(counts.sum()) <= options.tokens:
        return [(0, len(text))]
    prefix = np.concatenate([[0], np.cumsum(counts)])
    ends = [bool(SENTENCE_END.search(text[s:e])) for s, e in located]
    out, first, n = [], 0, len(located)
    while True:
        last = max(int(np.searchsorted(prefix, prefix[first] + options.tokens, side="right")) - 2, first)
        if last >= n - 1:
            out.append((located[first][0], located[-1][1]))
            return out
        last = _sentence_end(ends, prefix, first, last, options.tokens)
        out.append((located[first][0], located[last][1]))
        first = _next_start(ends, prefix, first, last, options.step_back)


def _sentence_end(ends: list[bool], prefix: np.ndarray, first: int, last: int, size: int) -> int:
    """The last word of the window: the last sentence end in its second half, else its last word."""
    for j in range(last, first - 1, -1):
        if prefix[j + 1] - prefix[first] < size / 2:
            break
        if ends[j]:
            return j
    return last


def _next_start(ends: list[bool], prefix: np.ndarray, first: int, last: int, overlap: int) -> int:
    """The first word of the next window: the earliest word that keeps the overlap within its tokens,
    moved to the first sentence start after it when one falls before the window's end; always past first."""
    start = int(np.searchsorted(prefix, prefix[last + 1] - overlap, side="left"))
    start = min(max(start, first + 1), last + 1)
    for j in range(start, last + 1):
        if ends[j - 1]:
            return j
    return start


def passages_of(document: Document, counts: np.ndarray, options: PassageOptions,
                located: Sequence[tuple[int, int]] | None = None) -> list[Passage]:
    return [Passage(document, i, start, end)
            for i, (start, end) in enumerate(spans(document.text, counts, options, located))]
