"""A hit's snippet: the stretch of its text where the words it shares with the query are densest.

The first 240 characters of a long abstract rarely hold the words that matched; the window with the most
of them does, and the search page (static/search.html) highlights them there by the same rule: a word of
the text is a match when it is one of the hit's explained tokens, or shares a long prefix with one (BM25
matches stems: "glossary" also marks "glossaries").
"""

from __future__ import annotations

import re
from collections.abc import Sequence

CHARS = 240
LEAD = 40  # characters of context kept before the first match
WORD = re.compile(r"\w+")


def matches(word: str, token: str) -> bool:
    """The page's rule (sharesToken): equal, or a common prefix of max(5, shorter length - 2) characters."""
    word, token = word.lower(), token.lower()
    shortest = min(len(word), len(token))
    if word == token or shortest < 5:
        return word == token
    n = max(5, shortest - 2)
    return word[:n] == token[:n]


def snippet(text: str, tokens: Sequence[str] = (), chars: int = CHARS) -> str:
    """Whitespace-normalised text, cut to about chars at word boundaries around its densest matches."""
    text = " ".join(text.split())
    if len(text) <= chars:
        return text
    found = _found(text, tokens) if tokens else []
    start = _densest(found, chars - LEAD) if found else 0
    start = 0 if start <= LEAD else _word_start(text, start - LEAD)
    end = start + chars - (1 if start == 0 else 2)
    body = text[start:end]
    if end < len(text):
        body = body.rsplit(" ", 1)[0] + "…"
    return body if start == 0 else "…" + body


def _found(text: str, tokens: Sequence[str]) -> list[int]:
    """Where the text's matching words start: one regex pass finds the words that begin like a token (a
    match shares at least its first five characters, or is the token; a head that is not all word
    characters begins no word), the rule checks those."""
    heads = sorted({h for h in (t.lower()[:5] for t in tokens) if h and WORD.fullmatch(h)}, key=len, reverse=True)
    if not heads:
        return []
    candidates = re.finditer(r"\b(?:" + "|".join(map(re.escape, heads)) + r")\w*", text, re.IGNORECASE)
    return [m.start() for m in candidates if any(matches(m.group(), t) for t in tokens)]


def _densest(starts: list[int], span: int) -> int:
    """The match that begins the span holding the most matches (the earliest of equals)."""
    best, count, j = starts[0], 0, 0
    for i, first in enumerate(starts):
        j = max(j, i)
        while j + 1 < len(starts) and starts[j + 1] < first + span:
            j += 1
        if j - i + 1 > count:
            best, count = first, j - i + 1
    return best


def _word_start(text: str, at: int) -> int:
    """The start of the first whole word at or after at."""
    space = text.find(" ", at)
    return at if at == 0 or text[at - 1] == " " or space < 0 else space + 1
