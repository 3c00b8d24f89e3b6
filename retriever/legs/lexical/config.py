"""The BM25 leg's options (LexicalConfig): what a user chooses, stored in the manifest; no model, no
scipy, so the CLI reads them at once."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field

from ...errors import RetrieverError
from ..options import option

# The Snowball stemmers PyStemmer 3.1 ships (Stemmer.algorithms(); a test holds the two equal), and "none"
LANGUAGES = ("arabic", "armenian", "basque", "catalan", "czech", "danish", "dutch", "dutch_porter", "english",
             "esperanto", "estonian", "finnish", "french", "german", "greek", "hindi", "hungarian", "indonesian",
             "irish", "italian", "lithuanian", "nepali", "norwegian", "persian", "polish", "porter", "portuguese",
             "romanian", "russian", "serbian", "sesotho", "spanish", "swedish", "tamil", "turkish", "yiddish",
             "none")
# the languages bm25s has a stopword list for (by its name for it); the others drop no stopwords
STOPWORD_LISTS = {"english": "en", "porter": "en", "danish": "da", "dutch": "nl", "dutch_porter": "nl",
                  "french": "fr", "german": "de", "italian": "it", "norwegian": "no", "portuguese": "pt",
                  "russian": "ru", "spanish": "es", "swedish": "sv", "turkish": "tr"}


LETTER = re.compile(r"[^\W\d_]")
# Han, Hiragana, Katakana, Thai, Lao, Khmer, Myanmar, Tibetan: scripts that do not separate their words
SPACELESS = re.compile("[\u4e00-\u9fff\u3400-\u4dbf\u3040-\u30ff\u0e00-\u0eff\u1780-\u17ff\u1000-\u109f"
                       "\u0f00-\u0fff\uf900-\ufaff]")


@dataclass
class LexicalConfig:
    """BM25 parameters (bm25s's defaults, Lucene's idf) and the text analysis; stored in the manifest.

    language sets the analysis: its Snowball stemmer and, where bm25s has one, its stopword list ("none":
    neither). stemmer and stopwords say what it set (None: from language), so a manifest says exactly how
    its words were made, and one written before language existed reads as English, as it was built."""

    k1: float = field(default=1.5, metadata=option("--k1", "BM25 term-frequency saturation.", minimum=0))
    b: float = field(default=0.75, metadata=option("--b", "BM25 length normalisation.", minimum=0, maximum=1))
    language: str = field(default="english", metadata=option(
        "--language", "The BM25 leg's language: its Snowball stemmer and stopword list (none: neither).",
        choices=LANGUAGES))
    stemmer: str | None = None  # a Snowball language (PyStemmer), or "" for none
    stopwords: str | None = None  # a bm25s stopword list name, or "" for none

    def __post_init__(self):
        if self.k1 < 0 or not 0 <= self.b <= 1:
            raise RetrieverError(f"BM25 needs k1 >= 0 and 0 <= b <= 1, not k1={self.k1}, b={self.b}")
        if self.language not in LANGUAGES:
            raise RetrieverError(f"unknown language {self.language!r}; one of {', '.join(LANGUAGES)}")
        if self.stemmer is None:
            self.stemmer = "" if self.language == "none" else self.language
        if self.stopwords is None:
            self.stopwords = STOPWORD_LISTS.get(self.language, "")

    def refuse(self, text: str) -> str | None:
        """Why BM25 cannot index text, or None: a script written without spaces between words (Chinese,
        Japanese, Thai) would give each run of characters as one word, and its rows would match nothing."""
        letters = len(LETTER.findall(text))
        if letters >= 8 and len(SPACELESS.findall(text)) > 0.3 * letters:
            return ("it is written in a script without spaces between words (Chinese, Japanese, Thai, ...), "
                    "which the BM25 leg cannot split into words; index it without that leg "
                    "(--legs dense,sparse), or with its words split by spaces first")
        return None

    def describe(self) -> str:
        return f"BM25 {json.dumps(asdict(self))}"
