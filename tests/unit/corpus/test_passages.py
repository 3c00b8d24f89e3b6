"""Cutting long documents into passages (retriever/corpus/passages.py), against what the cut promises: every
word in some passage, no passage over its tokens, the overlap as asked, cuts at sentence ends where one is
near, a short document whole; token counts per word checked against a per-word count by brute force."""

from __future__ import annotations

import random

import numpy as np
import pytest

from retriever import Document
from retriever.corpus.passages import PassageOptions, passages_of, spans, word_counts, words
from retriever.errors import RetrieverError


def _text(seed: int, sentences: int = 30) -> str:
    rng = random.Random(seed)
    vocabulary = ["the", "cell", "membrane", "protein", "binds", "calcium", "ions", "rapidly", "under", "stress",
                  "signals", "in", "neurons"]
    out = []
    for _ in range(sentences):
        sentence = " ".join(rng.choice(vocabulary) for _ in range(rng.randint(3, 18)))
        out.append(sentence.capitalize() + rng.choice([".", ".", "?", "!"]))
    return rng.choice(["", "  "]) + (rng.choice([" ", "\n\n", "  "])).join(out) + rng.choice(["", "\n"])


def _tokens(spans_: list[tuple[int, int]], counts: np.ndarray, text: str, span: tuple[int, int]) -> int:
    """Tokens of the words inside span, counted one word at a time (the slow way)."""
    return sum(int(c) for (s, e), c in zip(spans_, counts, strict=True) if s >= span[0] and e <= span[1])


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize(("size", "overlap"), [(16, 0), (16, 8), (40, 10), (9, 8)])
def test_passages_cover_every_word_within_their_tokens_with_the_overlap_asked(seed, size, overlap):
    text = _text(seed)
    located = words(text)
    counts = np.array([1 + len(text[s:e]) // 4 for s, e in located])  # a word of n characters: 1 + n/4 tokens
    cut = spans(text, counts, PassageOptions(size, overlap), located)
    assert len(cut) > 1
    covered = set()
    for i, (start, end) in enumerate(cut):
        inside = [j for j, (s, e) in enumerate(located) if s >= start and e <= end]
        assert inside, "a passage without a word"
        assert located[inside[0]][0] == start and located[inside[-1]][1] == end  # cut at word boundaries
        assert _tokens(located, counts, text, (start, end)) <= size or len(inside) == 1
        covered.update(inside)
        if i:
            assert start > cut[i - 1][0]
            repeated = _tokens(located, counts, text, (start, cut[i - 1][1]))
            assert repeated <= overlap  # never more than asked, and exactly none when none is asked
            if overlap == 0:
                assert start > cut[i - 1][1]
    assert covered == set(range(len(located)))


def test_a_window_ends_at_a_sentence_end_in_its_second_half():
    text = "One two three four five six seven. Eight nine ten eleven twelve thirteen fourteen fifteen sixteen."
    located = words(text)
    cut = spans(text, np.ones(len(located), np.int64), PassageOptions(10, 0), located)
    assert text[cut[0][0]:cut[0][1]] == "One two three four five six seven."  # 7 of 10 words, not cut at 10
    assert text[cut[1][0]:cut[1][1]].startswith("Eight")


def test_the_next_window_starts_at_a_sentence_start_inside_the_overlap():
    text = "A b c. D e f g h i j k l m n o p q r s t."
    located = words(text)
    cut = spans(text, np.ones(len(located), np.int64), PassageOptions(10, 8), located)
    assert text[cut[0][0]:cut[0][1]] == "A b c. D e f g h i j"  # its sentence end is in its first half
    assert text[cut[1][0]:].startswith("D e")  # 8 words back is "c."; the sentence starts one later


def test_a_short_document_is_one_passage_of_its_whole_text():
    doc = Document("a", "  Short text, with spaces kept.  ", "A title")
    passages = passages_of(doc, word_counts(words(doc.text), [3, 8, 13, 20, 25, 31]), PassageOptions(8))
    assert len(passages) == 1 and passages[0].whole and passages[0].row is doc
    empty = Document("b", "", "Only a title")
    assert [p.whole for p in passages_of(empty, np.zeros(0, np.int64), PassageOptions(8))] == [True]


def test_passage_rows_carry_the_document_and_a_word_longer_than_a_window_is_its_own_passage():
    doc = Document("d", "tiny " + "x" * 400 + " tail words here", "T", {"year": 2001})
    located = words(doc.text)
    counts = np.array([1, 100, 1, 1, 1])
    passages = passages_of(doc, counts, PassageOptions(10, 0), located)
    assert [p.text for p in passages] == ["tiny", "x" * 400, "tail words here"]
    assert all(p.row.id == "d" and p.row.title == "T" and p.row.metadata == {"year": 2001} for p in passages)
    assert [p.number for p in passages] == [0, 1, 2]
    assert all(doc.text[p.start:p.end] == p.text == p.row.text for p in passages)


def test_a_token_belongs_to_the_word_its_last_character_is_in():
    text = "Hello world\n\nnew line"
    located = words(text)  # Hello 0-5, world 6-11, new 13-16, line 17-21
    # tokens: "Hel" "lo" " world" "\n\n" "new" " line": ends 3, 5, 11, 13, 16, 21
    assert word_counts(located, [3, 5, 11, 13, 16, 21]).tolist() == [2, 2, 1, 1]


@pytest.mark.parametrize(("tokens", "overlap"), [(4, None), (16, 16), (16, -1), (16, 1.5), (True, None)])
def test_impossible_options_are_refused(tokens, overlap):
    with pytest.raises(RetrieverError, match="passage_"):
        PassageOptions(tokens, overlap)


def test_the_default_overlap_is_half_a_window():
    assert PassageOptions(128).step_back == 64
