"""The key-token leg's options (SparseConfig): what a user chooses, stored in the manifest. No torch here:
the CLI reads the defaults and choices without loading a model."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..options import option

WEIGHTINGS = ("relu", "log1p")
OWN_WORDS = ("content", "all")  # a text's own tokens: its content words' pieces, or every token it has
SPELLINGS = ("space", "bare")  # a word's pieces as mid-sentence (" word") or bare ("word", PromptReps)
IDF = ("none", "documents", "both")  # where the corpus idf multiplies the weights
# "weighted": sum of w_q w_d; "paper": the sum of w_d over the query's token set (documents top-K only);
# "bm25": BM25 with a token's model weight as its term frequency and a row's weight mass as its length;
# "bm25-count": the same with the weight times the token's count in the text (issue 27, docs/quality.md)
SCORINGS = ("weighted", "paper", "bm25", "bm25-count")
BM25_SCORINGS = ("bm25", "bm25-count")
QUERY_SIDES = ("model", "own")  # a query's row: the LLM's projection of it, or its own tokens (no LLM)
FOLDS = ("none", "max", "sum")  # how a word's case and space variants' weights become one canonical token's
OWN_SPANS = ("budget", "text")  # own tokens from the text within the LLM's token budget, or the whole text


@dataclass(frozen=True)
class SparseConfig:
    top_k: int = field(default=16, metadata=option(  # aligned tokens per document (added to its own tokens)
        "--top-k", "Aligned vocabulary tokens per document (added to its own tokens with --own-tokens).", minimum=0))
    query_top_m: int = field(default=0, metadata=option(  # aligned tokens added to a query's (query_side model)
        "--query-top-m", "Aligned tokens added to a query's own tokens.", minimum=0))
    alpha: float = field(default=0.5, metadata=option(  # how much of u_1 to remove: e' = e - alpha (e . u_1) u_1
        "--pc-alpha", "How much of the first principal component to remove before the vocabulary projection.",
        minimum=0, maximum=1))
    final_norm: bool = field(default=True, metadata=option(
        "--final-norm", "Apply the model's final norm before projecting onto the vocabulary."))
    weighting: str = field(default="log1p", metadata=option(  # relu(s) or log(1 + relu(s))
        "--weighting", "relu(s) or log(1 + relu(s)) of the projection's scores.", WEIGHTINGS))
    own_tokens: bool = field(default=True, metadata=option(  # documents keep the tokens they contain
        "--own-tokens", "Documents keep the tokens they contain, as queries do, plus their top-K."))
    own_words: str = field(default="content", metadata=option(  # OWN_WORDS: no stopwords, punctuation
        "--own-words", "A text's own tokens: its content words' pieces (no stopwords, punctuation, single "
                       "characters, as PromptReps), or every token.", OWN_WORDS))
    spelling: str = field(default="space", metadata=option(  # SPELLINGS
        "--spelling", "Content words' pieces spelled mid-sentence (' word') or bare ('word').", SPELLINGS))
    idf: str = field(default="both", metadata=option(  # IDF; with own-token queries, BM25's idf
        "--idf", "Multiply key-token weights by the corpus idf: on documents, or on documents and queries.", IDF))
    scoring: str = field(default="weighted", metadata=option(  # SCORINGS
        "--key-tokens", "weighted: sum of query x document weights. paper: documents keep their top-K aligned "
                        "tokens only, a query is a set of its own tokens plus its top-M, scored by the sum of the "
                        "document's weights over it. bm25: BM25 with a token's model weight as its term "
                        "frequency; bm25-count: the weight times the token's count in the text.", SCORINGS))
    query_side: str = field(default="own", metadata=option(  # QUERY_SIDES: "own" needs the tokenizer only
        "--query-side", "A query's key tokens: its own tokens (no LLM at query time) or the LLM's projection "
                        "of it.", QUERY_SIDES))
    fold: str = field(default="max", metadata=option(  # FOLDS, before top-K, on documents and queries alike
        "--fold", "Fold a word's case and space variants into one token (their max or sum), so K expansions "
                  "are K distinct words.", FOLDS))
    stem: bool = field(default=True, metadata=option(  # a word's Snowball stem's variants too
        "--stem", "Fold words of one Snowball stem too (with --fold max or sum)."))
    own_span: str = field(default="text", metadata=option(  # OWN_SPANS
        "--own-span", "Own tokens from the whole text, or only from what fits the LLM's --max-tokens.", OWN_SPANS))
    k1: float = 1.2  # BM25's saturation and length normalisation under the bm25 scorings (Robertson's values)
    b: float = 0.75

    @classmethod
    def from_options(cls, values: dict) -> SparseConfig:
        """The paper's documents keep their top-K only: --key-tokens paper turns own tokens off."""
        return cls(**{**values, "own_tokens": values.get("own_tokens", True) and values.get("scoring") != "paper"})

    @classmethod
    def from_dict(cls, data: dict) -> SparseConfig:
        """Indexes written before a field existed behave as they were built: own_tokens off before it
        existed, every token a text contains before own_words, no idf, weighted scoring, the LLM's query
        side, no fold, own tokens within the LLM's budget."""
        return cls(**{"own_tokens": False, "own_words": "all", "query_top_m": 16, "idf": "none",
                      "query_side": "model", "fold": "none", "stem": False, "own_span": "budget", **data})

    def __post_init__(self):
        for name, allowed in (("weighting", WEIGHTINGS), ("own_words", OWN_WORDS), ("spelling", SPELLINGS),
                              ("idf", IDF), ("scoring", SCORINGS), ("query_side", QUERY_SIDES), ("fold", FOLDS),
                              ("own_span", OWN_SPANS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, not {getattr(self, name)!r}")
        if self.scoring == "paper" and self.own_tokens:
            raise ValueError("paper scoring keeps a document's top-K aligned tokens only (own_tokens off)")
        if self.top_k < (0 if self.own_tokens else 1) or self.query_top_m < 0:
            raise ValueError("top_k must be >= 1 (>= 0 with own_tokens) and query_top_m >= 0")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError("alpha must lie in [0, 1]")
        if self.query_side == "own" and self.query_top_m:
            raise ValueError("query_top_m adds the LLM's tokens to a query: it needs query_side 'model'")
        if self.stem and self.fold == "none":
            raise ValueError("stem folds a word's variants into one token: choose a fold (max or sum)")
        if self.k1 < 0 or not 0.0 <= self.b <= 1.0:
            raise ValueError("k1 must be >= 0 and b in [0, 1]")

    def to_dict(self) -> dict:
        return asdict(self)
