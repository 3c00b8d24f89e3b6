"""LexicalLeg: the BM25 leg's files (vocabulary, word counts, lengths), its text analysis and query rows,
and how it weighs the live segments into one inverted index when it opens (the package's docstring says why).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import scipy.sparse as sp

from ...errors import BadIndexError, RetrieverError
from ...index.store import stored_contents
from ..base import Hits, LegContext, Part, Settings, TablePart
from ..inverted import SparseIndex, ragged_to_csr
from .config import LexicalConfig

if TYPE_CHECKING:
    from ...index.segments import Segment
    from ...index.store import FileWriter

# bm25s's default splitter: words of two or more characters
WORD = re.compile(r"(?u)\b\w\w+\b")
VOCAB_FILE = "lexical_vocab.json"  # the vocabulary as a JSON list: a word's position is its id


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
    """Collects documents' word ids as they stream past, for one segment's word counts (counts) or, in
    tests and scripts, a corpus's finished BM25 weights (postings)."""

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

    def counts(self) -> tuple[sp.csr_matrix, np.ndarray]:
        """Word counts (vocabulary x documents) and each document's length in counted words."""
        lengths = np.array([len(d) for d in self.documents], dtype=np.int32)
        words = np.concatenate(self.documents) if self.documents else np.zeros(0, np.int32)
        columns = np.repeat(np.arange(len(self.documents), dtype=np.int32), lengths)
        tf = sp.csr_matrix((np.ones(len(words), np.float32), (words, columns)),
                           shape=(len(self.vocab), len(self.documents)))
        tf.sum_duplicates()
        return tf, lengths

    def postings(self) -> sp.csr_matrix:
        """BM25 weight of every (word, document) pair, vocabulary x documents."""
        return bm25_weights(*self.counts(), self.config)

    def vocabulary(self) -> list[str]:
        return list(self.vocab)


def bm25_weights(tf: sp.csr_matrix, lengths: np.ndarray, config: LexicalConfig) -> sp.csr_matrix:
    """BM25 (Lucene's idf, bm25s's "lucene" method) of every posting of tf (words x documents), from the
    statistics of exactly these documents: idf log(1 + (N - df + 0.5) / (df + 0.5)) times
    tf / (tf + k1 (1 - b + b dl / avgdl)), in float64 and stored in float32."""
    n = tf.shape[1]
    if n == 0 or tf.nnz == 0:
        return sp.csr_matrix(tf.shape, dtype=np.float32)
    df = np.diff(tf.indptr)
    idf = np.log1p((n - df + 0.5) / (df + 0.5))
    lengths = np.asarray(lengths, dtype=np.float64)
    dl = lengths[tf.indices] / (lengths.sum() / n)
    counts = tf.data.astype(np.float64)
    weights = counts / (counts + config.k1 * (1 - config.b + config.b * dl)) * np.repeat(idf, df)
    return sp.csr_matrix((weights.astype(np.float32), tf.indices, tf.indptr), shape=tf.shape)


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


COUNTS = "lexical_tf"  # a segment's vocabulary x documents word counts, CSR as three .npy arrays
LENGTHS = "lexical_lengths"  # each of its documents' length in counted words (BM25's dl)
LEGACY_POSTINGS = "lexical_postings"  # a format-1 index's finished BM25 weights


class LexicalLeg:
    """The lexical leg's files and search: per segment its vocabulary, word counts and document lengths."""

    name: ClassVar[str] = "lexical"
    config: ClassVar[type] = LexicalConfig  # its options (legs/options.py)
    title: ClassVar[str] = "lexical leg"
    explains: ClassVar[bool] = True

    def __init__(self, queries: LexicalQueries, index: SparseIndex):
        self.queries, self.index = queries, index

    @classmethod
    def models(cls, settings: Settings) -> frozenset[str]:
        return frozenset()

    @classmethod
    def write(cls, writer: FileWriter, parts: Sequence[Part], ctx: LegContext) -> dict[str, Any]:
        with ctx.timing("lexical"):
            builder = LexicalBuilder(ctx.settings.lexical)
            for part in parts:
                builder.add(stored_contents(part.documents()))
            tf, lengths = builder.counts()
            writer.add_file(VOCAB_FILE, vocabulary_bytes(builder.vocabulary()))
            writer.add_csr(COUNTS, tf)
            writer.add_array(LENGTHS, lengths)
        return {"lexical_vocab_size": tf.shape[0], "lexical_nnz": int(tf.nnz), "lexical_words": int(lengths.sum())}

    @classmethod
    def merge(cls, writer: FileWriter, segments: Sequence[Segment], ctx: LegContext) -> dict[str, Any]:
        """Counted again from the live documents' stored texts: word counting is the cheap part of an index."""
        from ...index.segments import live_documents

        return cls.write(writer, [TablePart(live_documents(segments))], ctx)

    @classmethod
    def summary(cls, segments: Sequence[Segment]) -> dict[str, Any]:
        """BM25's corpus statistics over the live documents: their count and their total length."""
        words = sum(int(np.asarray(_lengths(s))[s.live_rows()].sum()) for s in segments)
        return {"lexical_documents": sum(s.live_count for s in segments), "lexical_words": words}

    @classmethod
    def check(cls, segment: Segment, manifest: dict[str, Any]) -> str:
        vocabulary = _read_vocabulary(segment)
        if segment.legacy:
            weights = segment.csr(LEGACY_POSTINGS, (len(vocabulary), segment.rows))
            if not np.all(np.isfinite(weights.data)):
                raise BadIndexError(f"{LEGACY_POSTINGS}: non-finite weights")
            return f"{weights.nnz} postings over {len(vocabulary)} words"
        tf, lengths = _counts(segment, vocabulary), _lengths(segment)
        if not np.all(tf.data >= 1) or not np.all(tf.data == np.round(tf.data)):
            raise BadIndexError(f"{COUNTS}: word counts must be positive whole numbers")
        if not np.array_equal(np.bincount(tf.indices, weights=tf.data, minlength=segment.rows), lengths):
            raise BadIndexError(f"{LENGTHS}: the document lengths are not the sums of the word counts")
        return f"{tf.nnz} postings over {len(vocabulary)} words; lengths match the counts"

    @classmethod
    def open(cls, segments: Sequence[Segment], ctx: LegContext) -> LexicalLeg:
        config = ctx.settings.lexical
        if segments[0].legacy:
            vocabulary = _read_vocabulary(segments[0])
            postings = segments[0].csr(LEGACY_POSTINGS, (len(vocabulary), ctx.documents))
            return cls(LexicalQueries(config, vocabulary), SparseIndex.from_postings(postings))
        vocabulary, tf, lengths = _live_counts(segments, ctx.documents)
        expected = {k: ctx.manifest[k] for k in ("lexical_documents", "lexical_words") if k in ctx.manifest}
        found = {"lexical_documents": tf.shape[1], "lexical_words": int(lengths.sum())}
        if any(found[k] != v for k, v in expected.items()):
            raise BadIndexError(f"the lexical leg's live documents hold {found}, the manifest says {expected}; "
                                "the index is damaged")
        return cls(LexicalQueries(config, vocabulary), SparseIndex.from_postings(bm25_weights(tf, lengths, config)))

    def encode(self, texts: Sequence[str], vectors: Any) -> sp.csr_matrix:
        return self.queries.encode(texts)

    def hits(self, queries: sp.csr_matrix, depth: int, mask: np.ndarray | None = None) -> Hits:
        return self.index.hits(queries, depth, mask)

    def explain(self, queries: sp.csr_matrix, qi: int, row: int, text: str,
                document: str = "") -> list[tuple[str, float]]:
        """A matched stem reads as the query word it came from ("glossary", not "glossari")."""
        vocabulary, surface = self.queries.vocabulary, self.queries.analyzer.surface(text)
        return [(surface.get(vocabulary[token], vocabulary[token]), weight)
                for token, weight in self.index.shared_tokens(queries[qi], row)]


def _live_counts(segments: Sequence[Segment], documents: int) -> tuple[list[str], sp.csr_matrix, np.ndarray]:
    """Every segment's live word counts in one matrix (words in sorted order x index rows), the words no
    live document has left out, and the live documents' lengths."""
    vocabularies = [_read_vocabulary(s) for s in segments]
    words = sorted(set().union(*vocabularies))
    number = {w: i for i, w in enumerate(words)}
    rows, columns, data, lengths = [], [], [], []
    for segment, vocabulary in zip(segments, vocabularies, strict=True):
        tf = _counts(segment, vocabulary).tocoo()
        index_rows = segment.index_rows[tf.col]
        live = index_rows >= 0
        rows.append(np.array([number[w] for w in vocabulary], dtype=np.int64)[tf.row[live]])
        columns.append(index_rows[live])
        data.append(tf.data[live])
        lengths.append(np.asarray(_lengths(segment))[segment.live_rows()])
    tf = sp.csr_matrix((np.concatenate(data), (np.concatenate(rows), np.concatenate(columns))),
                       shape=(len(words), documents))
    tf.sort_indices()
    used = np.diff(tf.indptr) > 0
    return [w for w, u in zip(words, used, strict=True) if u], tf[used], np.concatenate(lengths)


def _counts(segment: Segment, vocabulary: list[str]) -> sp.csr_matrix:
    return segment.csr(COUNTS, (len(vocabulary), segment.rows))


def _lengths(segment: Segment) -> np.ndarray:
    lengths = segment.array(LENGTHS)
    if lengths.shape != (segment.rows,) or (len(lengths) and lengths.min() < 0):
        raise BadIndexError(f"{segment.folder / LENGTHS}.npy: not {segment.rows} document lengths")
    return lengths


def _read_vocabulary(segment: Segment) -> list[str]:
    return parse_vocabulary(segment.read_file(VOCAB_FILE), str(segment.folder / VOCAB_FILE))
