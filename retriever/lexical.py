"""The lexical leg: BM25 over stemmed words, as bm25s scores it.

The LLM legs miss exact rare terms (gene names, numbers, acronyms) that BM25 finds at once, and on small
models BM25 is the strongest leg by far, so it is indexed beside them by default. bm25s computes the BM25
weights (eager scoring: each posting already holds its document's BM25 contribution), so a query is one
sparse product over the same kind of inverted index as the key-token leg. LexicalLeg owns the leg's
files (leg.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pyarrow as pa
import scipy.sparse as sp

from .errors import BadIndexError, RetrieverError
from .leg import Hits, LegContext, Part, TablePart
from .sparse import SparseIndex, ragged_to_csr
from .store import load_csr, read_file, stored_contents

if TYPE_CHECKING:
    from .settings import IndexSettings
    from .store import IndexWriter

# bm25s's default splitter: words of two or more characters
WORD = re.compile(r"(?u)\b\w\w+\b")
VOCAB_FILE = "lexical_vocab.json"  # the vocabulary as a JSON list: a word's position is its id


@dataclass
class LexicalConfig:
    """BM25 parameters (bm25s's defaults, Lucene's idf) and the text analysis; stored in the manifest."""

    k1: float = 1.5
    b: float = 0.75
    stemmer: str = "english"  # a Snowball language (PyStemmer), or "" for none
    stopwords: str = "en"  # a bm25s stopword list name, or "" for none

    def __post_init__(self):
        if self.k1 < 0 or not 0 <= self.b <= 1:
            raise RetrieverError(f"BM25 needs k1 >= 0 and 0 <= b <= 1, not k1={self.k1}, b={self.b}")


class Analyzer:
    """Text to the words BM25 counts: lowercase, split, drop stopwords, stem (bm25s's order)."""

    def __init__(self, config: LexicalConfig):
        from bm25s.tokenization import Tokenizer

        try:
            self.stopwords = frozenset(Tokenizer(stopwords=config.stopwords or None).stopwords)
        except ValueError as exc:
            raise RetrieverError(f"unknown stopword list {config.stopwords!r}: {exc}") from None
        self._stem = self._make_stemmer(config.stemmer)
        self._cache: dict[str, str] = {}

    @staticmethod
    def _make_stemmer(language: str):
        if not language:
            return None
        import Stemmer

        try:
            return Stemmer.Stemmer(language).stemWord
        except KeyError:
            raise RetrieverError(f"unknown stemmer language {language!r}; "
                                 f"one of {', '.join(Stemmer.algorithms())}") from None

    def surface(self, text: str) -> dict[str, str]:
        """Each counted word of text (a stem) -> the first word of text, as written, that gave it."""
        out: dict[str, str] = {}
        for written in WORD.findall(text):
            for counted in self.words(written):
                out.setdefault(counted, written)
        return out

    def words(self, text: str) -> list[str]:
        words = [w for w in WORD.findall(text.lower()) if w not in self.stopwords]
        if self._stem is None:
            return words
        cache = self._cache
        out = []
        for w in words:
            stem = cache.get(w)
            if stem is None:
                stem = cache[w] = self._stem(w)
            out.append(stem)
        return out


class LexicalBuilder:
    """Collects documents' word ids as they stream past; BM25 weights need the whole corpus's statistics
    (document frequencies, average length), so they are computed once, at the end."""

    def __init__(self, config: LexicalConfig):
        self.config = config
        self.analyzer = Analyzer(config)
        self.vocab: dict[str, int] = {}
        self.documents: list[np.ndarray] = []  # int32 word ids: 4 bytes a word, not a Python int's 28

    def add(self, texts: Iterable[str]) -> None:
        vocab = self.vocab
        for text in texts:
            ids = [vocab.setdefault(w, len(vocab)) for w in self.analyzer.words(text)]
            self.documents.append(np.array(ids, dtype=np.int32))

    def postings(self) -> sp.csr_matrix:
        """BM25 weight of every (word, document) pair, vocabulary x documents, from bm25s."""
        import bm25s

        n, vocab_size = len(self.documents), len(self.vocab)
        if vocab_size == 0:
            return sp.csr_matrix((0, n), dtype=np.float32)
        model = bm25s.BM25(k1=self.config.k1, b=self.config.b, method="lucene")
        model.index((self.documents, dict(zip(range(vocab_size), range(vocab_size), strict=True))),
                    create_empty_token=False, show_progress=False)
        s = model.scores  # column-compressed documents x words: indptr runs over words
        return sp.csr_matrix((s["data"].astype(np.float32), s["indices"].astype(np.int32),
                              s["indptr"].astype(np.int64)), shape=(vocab_size, n))

    def vocabulary(self) -> list[str]:
        return list(self.vocab)


class LexicalQueries:
    """Queries as word-count rows over an index's vocabulary; words the corpus never saw are dropped."""

    def __init__(self, config: LexicalConfig, vocabulary: Sequence[str]):
        self.analyzer = Analyzer(config)
        self.vocabulary = list(vocabulary)
        self.ids = {w: i for i, w in enumerate(self.vocabulary)}

    def encode(self, queries: Sequence[str]) -> sp.csr_matrix:
        rows_ids, rows_w = [], []
        for query in queries:
            counts: dict[int, int] = {}
            for w in self.analyzer.words(query):
                if (i := self.ids.get(w)) is not None:
                    counts[i] = counts.get(i, 0) + 1
            rows_ids.append(np.fromiter(counts.keys(), np.int32, len(counts)))
            rows_w.append(np.fromiter(counts.values(), np.float32, len(counts)))
        return ragged_to_csr(rows_ids, rows_w, len(self.vocabulary))


def vocabulary_bytes(vocabulary: Sequence[str]) -> bytes:
    return json.dumps(list(vocabulary), ensure_ascii=False).encode("utf-8")


def parse_vocabulary(data: bytes, source: str) -> list[str]:
    try:
        vocabulary = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadIndexError(f"{source}: damaged vocabulary ({exc})") from None
    if not isinstance(vocabulary, list) or not all(isinstance(w, str) for w in vocabulary):
        raise BadIndexError(f"{source}: the vocabulary must be a JSON list of strings")
    return vocabulary


POSTINGS = "lexical_postings"  # vocabulary x documents BM25 weights, CSR as three .npy arrays


class LexicalLeg:
    """The lexical leg's files and search: the vocabulary and the BM25-weighted postings."""

    name: ClassVar[str] = "lexical"
    title: ClassVar[str] = "lexical leg"
    explains: ClassVar[bool] = True

    def __init__(self, queries: LexicalQueries, index: SparseIndex):
        self.queries, self.index = queries, index

    @classmethod
    def models(cls, settings: IndexSettings) -> frozenset[str]:
        return frozenset()

    @classmethod
    def write(cls, writer: IndexWriter, parts: Sequence[Part], ctx: LegContext) -> dict[str, Any]:
        with ctx.timing("lexical"):
            builder = LexicalBuilder(ctx.settings.lexical)
            for part in parts:
                builder.add(stored_contents(part.documents()))
            postings = builder.postings()
            writer.add_file(VOCAB_FILE, vocabulary_bytes(builder.vocabulary()))
            writer.add_csr(POSTINGS, postings)
        return {"lexical_vocab_size": postings.shape[0], "lexical_nnz": int(postings.nnz)}

    @classmethod
    def update(cls, writer: IndexWriter, folder: Path, manifest: dict[str, Any], keep: np.ndarray,
               new: Part | None, table: pa.Table, ctx: LegContext) -> dict[str, Any]:
        """Recomputed from every stored text: idf and average length are statistics of the whole corpus."""
        return cls.write(writer, [TablePart(table)], ctx)

    @classmethod
    def check(cls, folder: Path, manifest: dict[str, Any]) -> str:
        vocabulary = _read_vocabulary(folder, manifest)
        postings = load_csr(folder, POSTINGS, (len(vocabulary), manifest["documents"]))
        if not np.all(np.isfinite(postings.data)):
            raise BadIndexError(f"{POSTINGS}: non-finite weights")
        return f"{postings.nnz} postings over {len(vocabulary)} words"

    @classmethod
    def open(cls, folder: Path, manifest: dict[str, Any], ctx: LegContext) -> LexicalLeg:
        vocabulary = _read_vocabulary(folder, manifest)
        index = SparseIndex.from_postings(load_csr(folder, POSTINGS, (len(vocabulary), ctx.documents)))
        return cls(LexicalQueries(ctx.settings.lexical, vocabulary), index)

    def encode(self, texts: Sequence[str], vectors: Any) -> sp.csr_matrix:
        return self.queries.encode(texts)

    def hits(self, queries: sp.csr_matrix, depth: int, mask: np.ndarray | None = None) -> Hits:
        return self.index.hits(queries, depth, mask)

    def explain(self, queries: sp.csr_matrix, qi: int, row: int, text: str) -> list[tuple[str, float]]:
        """A matched stem reads as the query word it came from ("glossary", not "glossari")."""
        vocabulary, surface = self.queries.vocabulary, self.queries.analyzer.surface(text)
        return [(surface.get(vocabulary[token], vocabulary[token]), weight)
                for token, weight in self.index.shared_tokens(queries[qi], row)]


def _read_vocabulary(folder: Path, manifest: dict[str, Any]) -> list[str]:
    return parse_vocabulary(read_file(folder, VOCAB_FILE, manifest), str(folder / VOCAB_FILE))
