"""A text's own tokens: its content words' pieces (no stopwords, punctuation or noise tokens), the
canonical token each vocabulary entry folds into (case, space, Snowball stem), and a query's row
built from them alone (the doc-only query side: the tokenizer, never the LLM)."""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from bm25s.stopwords import STOPWORDS_EN_PLUS

from ..inverted import ragged_to_csr
from .config import SparseConfig

WORD = re.compile(r"\w+")


STOPWORDS = frozenset(STOPWORDS_EN_PLUS)  # NLTK's English list, as PromptReps removes


class OwnTokens:
    """The tokens a text contains, as its key-token row and its query keep them.

    own_words "all": every token of the text spelled as mid-sentence words (a leading space, as W_U ranks
    them). "content", PromptReps' recipe: the lowercased text's words without stopwords and punctuation,
    each word tokenized alone and all its pieces kept, except pieces the vocabulary mask drops (single
    characters, punctuation, stopwords). Words are tokenized once and remembered. canon (canonical_ids):
    every token as its word's canonical token, where the index folds variants.
    """

    CACHE = 200_000  # words remembered; cleared when full (a server's queries must not grow it forever)

    def __init__(self, tokenizer, config: SparseConfig, canon: np.ndarray | None = None):
        self.tokenizer, self.config, self.canon = tokenizer, config, canon
        self._pieces: dict[str, list[int]] = {}

    def __call__(self, texts: Sequence[str], max_tokens: int | None = None) -> list[list[int]]:
        if self.config.own_words == "all":
            spaced = [" " + t.strip() for t in texts]
            cut = {} if max_tokens is None else {"truncation": True, "max_length": max_tokens}
            ids = self.tokenizer(spaced, add_special_tokens=False, **cut).input_ids if spaced else []
        else:
            words = [WORD.findall(t.lower()) for t in texts]
            self._learn({w for ws in words for w in ws})
            ids = [self._text_ids(ws, max_tokens) for ws in words]
        return ids if self.canon is None else [self.canon[np.asarray(row, np.int64)].tolist() for row in ids]

    def _learn(self, words: set[str]) -> None:
        new = sorted(w for w in words if w not in self._pieces)
        if not new:
            return
        if len(self._pieces) + len(new) > self.CACHE:
            self._pieces.clear()
        prefix = " " if self.config.spelling == "space" else ""
        ids = self.tokenizer([prefix + w for w in new], add_special_tokens=False).input_ids
        self._pieces.update(zip(new, ids, strict=True))

    def words(self, text: str) -> dict[int, str]:
        """Each own token of a text -> the word of the text (as written) it is a piece of."""
        written = [w for w in WORD.findall(text) if w.lower() not in STOPWORDS]
        self._learn({w.lower() for w in written})
        pieces: dict[int, str] = {}
        for word in written:
            for token in self._pieces[word.lower()]:
                pieces.setdefault(token if self.canon is None else int(self.canon[token]), word)
        return pieces

    def _text_ids(self, words: list[str], max_tokens: int | None) -> list[int]:
        """Content words' pieces within the text's token budget (every word's pieces count towards it)."""
        kept, used = [], 0
        for word in words:
            pieces = self._pieces[word]
            used += len(pieces)
            if max_tokens is not None and used > max_tokens:
                break
            if word not in STOPWORDS:
                kept.extend(pieces)
        return kept


def noise_token_ids(tokenizer) -> list[int]:
    """Vocabulary tokens that carry no topic: punctuation-only, single characters, stopwords (as decoded,
    stripped and lowercased). With own_words "content" they are neither own tokens nor expansions."""
    return [i for i, text in enumerate(_vocabulary(tokenizer)) if _is_noise(text.strip().lower())]


@functools.lru_cache(maxsize=4)
def _vocabulary(tokenizer) -> tuple[str, ...]:
    """Every token of the tokenizer decoded alone (0.5 s for 49k tokens: once per tokenizer)."""
    return tuple(tokenizer.batch_decode([[i] for i in range(len(tokenizer))]))


def canonical_ids(tokenizer, vocab_size: int, excluded: Sequence[int], stem: bool = False) -> np.ndarray:
    """Each vocabulary id -> its word's canonical token: the tokens that read the same once stripped and
    lowercased (" Target", "target", "TARGET"), and with stem the same Snowball stem (" targets",
    " targeted"), are one word; its token is the lowercase spaced form where the vocabulary has one (what a
    query's own pieces are), else the shortest. Excluded tokens stay themselves."""
    texts = _vocabulary(tokenizer)
    keys = [text.strip().lower() for text in texts]
    if stem:
        import Stemmer

        keys = Stemmer.Stemmer("english").stemWords(keys)
    skip, groups = set(excluded), {}
    for i, key in enumerate(keys):
        if key and i not in skip:
            groups.setdefault(key, []).append(i)
    canon = np.arange(vocab_size, dtype=np.int64)
    for members in groups.values():
        if len(members) > 1:
            canon[members] = min(members, key=lambda i: (not _spaced_lower(texts[i]), len(texts[i]), i))
    return canon


def _spaced_lower(text: str) -> bool:
    return text.startswith(" ") and text[1:] == text[1:].lower() and text[1:].strip() == text[1:]


def own_query_rows(own_tokens: Sequence[Sequence[int]], vocab_size: int, excluded: set[int],
                   idf: np.ndarray | None = None) -> sp.csr_matrix:
    """Query rows without the LLM: each of a query's own tokens once, weighted 1, or its idf where given
    (the doc-only recipe: the documents' rows carry the model's weights, the query is a set of its words)."""
    ids = [np.array(sorted({t for t in row if t not in excluded and 0 <= t < vocab_size}), np.int32)
           for row in own_tokens]
    weights = [np.ones(len(row), np.float32) if idf is None else idf[row].astype(np.float32) for row in ids]
    return ragged_to_csr(ids, weights, vocab_size)


def _is_noise(text: str) -> bool:
    return len(text) < 2 or not any(c.isalnum() for c in text) or text in STOPWORDS


def own_token_ids(tokenizer, texts: Sequence[str], max_tokens: int | None = None,
                  config: SparseConfig | None = None) -> list[list[int]]:
    """The tokens each text contains under config's own_words and spelling (OwnTokens)."""
    return OwnTokens(tokenizer, config or SparseConfig(own_words="all"))(texts, max_tokens)


def excluded_token_ids(tokenizer) -> list[int]:
    """Control tokens carry no topic: they must never be a document's key token."""
    special = set(tokenizer.all_special_ids)
    special |= {i for i, tok in getattr(tokenizer, "added_tokens_decoder", {}).items() if tok.special}
    return sorted(special)


def vocabulary_rules(tokenizer, config: SparseConfig, vocab_size: int) -> tuple[list[int], np.ndarray | None]:
    """The tokens a row never holds (control tokens; noise too with own_words "content") and the
    canonical token of each (None when the config does not fold): what documents and queries share."""
    excluded = excluded_token_ids(tokenizer)
    if config.own_words == "content":
        excluded += _noise_ids(tokenizer)
    canon = None if config.fold == "none" else _canonical(tokenizer, vocab_size, tuple(excluded), config.stem)
    return excluded, canon


@functools.lru_cache(maxsize=4)
def _noise_ids(tokenizer) -> list[int]:
    return noise_token_ids(tokenizer)


@functools.lru_cache(maxsize=4)
def _canonical(tokenizer, vocab_size: int, excluded: tuple[int, ...], stem: bool) -> np.ndarray:
    return canonical_ids(tokenizer, vocab_size, excluded, stem)


def query_words(tokenizer, text: str) -> dict[int, str]:
    """Each of a text's own tokens (spelled as own_token_ids spells them) -> the word of the text it lies in;
    {} where the tokenizer gives no character offsets (a slow tokenizer)."""
    spaced = " " + text.strip()
    try:
        encoded = tokenizer(spaced, add_special_tokens=False, return_offsets_mapping=True)
    except NotImplementedError:
        return {}
    spans = [(m.start(), m.end(), m.group()) for m in re.finditer(r"\w+", spaced)]
    words: dict[int, str] = {}
    for token, (start, end) in zip(encoded.input_ids, encoded.offset_mapping, strict=True):
        word = next((w for s, e, w in spans if s < end and start < e), None)
        if word is not None:
            words.setdefault(token, word)
    return words
