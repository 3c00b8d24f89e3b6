"""A hit's snippet is cut where the words it shares with the query are (snippets.py)."""

from __future__ import annotations

from retriever.search.snippets import CHARS, matches, snippet

FILLER = " ".join(f"filler{i}" for i in range(60))  # ~480 characters without a match


def test_a_short_text_is_whole_and_a_long_one_without_matches_is_its_start():
    assert snippet("  Bees   make\n honey. ") == "Bees make honey."
    cut = snippet(FILLER)
    assert FILLER.startswith(cut[:-1]) and cut.endswith("…") and len(cut) <= CHARS


def test_the_window_holds_the_densest_matches():
    text = f"{FILLER} Honey bees make honey in hives, and the bees guard the honey. {FILLER} bees once more."
    cut = snippet(text, ["honey", "bees"])
    assert cut.startswith("…") and cut.endswith("…") and len(cut) <= CHARS
    assert "Honey bees make honey in hives, and the bees guard the honey." in cut
    assert not snippet(text, []).startswith("…")  # no tokens: the start, as before


def test_the_cut_falls_on_word_boundaries():
    text = f"{FILLER} the glossaries of volcanology {FILLER}"
    cut = snippet(text, ["glossary"])
    words = set(text.split())
    assert all(w in words for w in cut.strip("…").split())


def test_the_matching_rule_is_the_pages():
    assert matches("Bees", "bees") and matches("glossaries", "glossary") and matches("vaccine", "vaccines")
    assert matches("eruption", "erupted") and matches("vaccination", "vaccine")
    assert not matches("bee", "bees") and not matches("the", "them") and not matches("honest", "honey")


def test_the_fast_scan_finds_what_the_rule_finds():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from retriever.search.snippets import WORD, _found

    words = st.sampled_from(["Vitamin", "vitamins", "deficient", "deficiency", "risk", "risks", "D", "d3", "the",
                             "increase", "increases", "glossaries", "glossary", "über", "Übermut", "co-op"])

    @settings(max_examples=200, deadline=None)
    @given(st.lists(words, min_size=1, max_size=40), st.lists(words, min_size=1, max_size=5))
    def check(text_words, tokens):
        text = " ".join(text_words)
        plain = [m.start() for m in WORD.finditer(text) if any(matches(m.group(), t) for t in tokens)]
        assert _found(text, tokens) == plain

    check()
