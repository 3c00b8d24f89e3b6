"""Answering queries against a built index: encode once, search each leg, rescore, fuse.

Candidates are the union of the legs' top lists. A document one leg missed is rescored exactly by that
leg (its stored vector, its stored sparse row or postings) rather than given a guessed floor, so fusion
always compares real scores. The searcher only combines its legs through their interface (leg.py), as
Pyserini's HybridSearcher combines searchers: it opens no file of theirs. `run` is the one call that
searches; the API, `eval beir` and the scripts all go through it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..corpus.queries import check_queries
from ..errors import BadIndexError, RetrieverError
from ..fusion import fuse
from ..index.segments import live_documents, segments_of
from ..legs.base import Leg, LegContext, Scorer
from ..legs.registry import leg_names, leg_type
from ..models.encoders import Encoder
from ..models.kinds import LLM, TOKENIZER
from ..models.loading import Models
from ..settings import IndexSettings
from ..timing import Clock
from .batching import MicroBatcher
from .filters import mask, parse_filter
from .passages import Passages


@dataclass
class Result:
    row: int  # internal document id
    score: float
    leg_scores: dict[str, float]


@dataclass
class QueryRun:
    """One query's results: the top-k of its mode (fused, or the one leg's), each leg's own top-k when
    asked, and the fusion's candidates with every leg's exact score for each (what tuning re-fuses)."""

    hits: list[Result]
    candidates: np.ndarray
    scores: dict[str, np.ndarray]
    legs: dict[str, list[Result]] = field(default_factory=dict)
    short: bool = False  # fewer than k documents, and a leg's list was cut at its depth: deeper finds more


@dataclass
class SearchRun:
    """A batch of queries searched: per query a QueryRun, the queries as each leg encoded them (for
    explain), and the seconds spent encoding, in each leg and fusing."""

    legs: tuple[str, ...]
    queries: list[QueryRun]
    encoded: dict[str, Any]
    seconds: dict[str, float]
    texts: list[str] = field(default_factory=list)


class Searcher:
    def __init__(self, folder: str | Path, manifest: dict[str, Any], models: Models | None = None,
                 batcher: MicroBatcher | None = None):
        """models: those loaded; only the legs whose query models are among them are opened (a lexical-only
        search loads none). batcher: encode the queries of concurrent searches together (batching.py); each
        call encodes its own when None."""
        folder, models = Path(folder), models or Models()
        try:
            self.settings = IndexSettings.from_dict(manifest["settings"])
        except (TypeError, ValueError, RetrieverError) as exc:
            raise BadIndexError(f"{folder}: the manifest's settings are damaged ({exc})") from None
        self.legs = self.settings.ordered_legs
        self.backbone, self._folder, self.batcher = models.backbone, folder, batcher
        self._encoder = None  # without the model, only the legs that need none are opened (lexical)
        if LLM in self.settings.query_models() and models.backbone is not None:
            self._encoder = Encoder(models.backbone, self.settings.make_method(),
                                    self.settings.max_tokens)
        segments = segments_of(folder, manifest)
        self.documents = live_documents(segments)  # the live rows of every segment, numbered as the legs number them
        self.ids: list[str] = self.documents.column("id").to_pylist()  # per row: a passage's is its document's
        self.passages = Passages.of(self.documents)
        self._metadata: list[dict] | None = None
        self._rows: dict[str, int] | None = None
        if len(self.ids) != manifest["documents"]:
            raise BadIndexError(f"{folder}: manifest says {manifest['documents']} documents, found {len(self.ids)}")
        context = LegContext(self.settings, models, len(self.ids), manifest=manifest)
        self._legs: dict[str, Leg] = {name: leg_type(name).open(segments, context) for name in self.legs
                                      if self.settings.query_models((name,)) <= models.kinds()}

    def metadata(self) -> list[dict]:
        """Every document's metadata, parsed once, the first time a filter needs it."""
        if self._metadata is None:
            self._metadata = [json.loads(m) if m else {} for m in self.documents.column("metadata").to_pylist()]
        return self._metadata

    def row(self, doc_id: str) -> int | None:
        """The internal row of a document id, None when the index lacks it (the map is built on first use)."""
        if self._rows is None:
            self._rows = {self.ids[row]: row for row in reversed(range(len(self.ids)))}  # its first passage
        return self._rows.get(doc_id)

    @property
    def document_ids(self) -> list[str]:
        """Every live document's id once, in index order (ids has one per passage)."""
        return self.ids if self.passages is None else [self.ids[r] for r in self.passages.firsts.tolist()]

    def leg(self, name: str) -> Leg:
        """An opened leg of this index (its own search structures: for scripts and tests that look inside)."""
        return self._legs[name]

    def with_leg(self, name: str, leg: Leg) -> Searcher:
        """This searcher with one of its legs replaced (scripts that measure a variant of a leg)."""
        if name not in self._legs:
            raise RetrieverError(f"this index has no {name} leg (legs: {', '.join(self.legs)})")
        other = copy.copy(self)
        other._legs = {**self._legs, name: leg}
        return other

    @property
    def encoder(self) -> Encoder | None:
        return self._encoder

    def legs_for(self, mode: str) -> tuple[str, ...]:
        if mode != "hybrid" and mode not in leg_names():
            raise RetrieverError(f"mode must be one of {('hybrid', *leg_names())}, not {mode!r}")
        if mode == "hybrid":
            return self._opened(self.legs)
        if mode not in self.legs:
            raise RetrieverError(f"this index was built without the {mode} leg (legs: {', '.join(self.legs)})")
        return self._opened((mode,))

    def _opened(self, legs: tuple[str, ...]) -> tuple[str, ...]:
        if closed := [leg for leg in legs if leg not in self._legs]:
            raise RetrieverError(f"{self._folder} was opened without its model, which the {' and '.join(closed)} "
                                 "leg needs; load it with its model (or search --mode lexical)")
        return legs

    def run(self, queries: Sequence[str], k: int = 10, mode: str = "hybrid", depth: int = 100,
            leg_runs: bool = False, encoded: dict[str, Any] | None = None,
            filter: Mapping[str, Any] | str | None = None) -> SearchRun:
        """Search a batch of queries: top-k per query by the mode (fusing the legs for hybrid), and with
        leg_runs each leg's own top-k too, cut from its fusion list (the leg alone at k when depth <= k;
        deeper lists may keep the other of two documents tied at the cut). depth: how deep each leg's
        list goes before fusion.
        encoded: the queries already as each leg encodes them (scripts that try a variant of a leg).
        filter: which documents may be returned (filters.py), applied inside every leg before its top-k."""
        for name, value in (("k", k), ("depth", depth)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise RetrieverError(f"{name} must be a positive integer, not {value!r}")
        if isinstance(queries, str):
            raise RetrieverError("queries must be a list of strings, not one string (search() takes one)")
        legs = self.legs_for(mode)
        tests = parse_filter(filter)
        if len(queries) == 0:
            return SearchRun(legs, [], {leg: None for leg in legs}, {})
        clock = Clock()
        with clock.timing("encode"):
            encoded = self.encode(queries, legs) if encoded is None else {leg: encoded[leg] for leg in legs}
        with clock.timing("filter"):
            keep = None if tests is None else mask(tests, self.ids, self.metadata)
        depth = (max(depth, k) if len(legs) > 1 else k) * (1 if self.passages is None else self.passages.per_document)
        streams = {leg: self._legs[leg].hits(encoded[leg], depth, keep) for leg in legs}
        runs = [self._query(streams, k, depth, leg_runs, clock) for _ in range(len(queries))]
        for qi, query in enumerate(runs):
            deeper = depth
            while query.short and deeper < len(self.ids):  # a document's passages crowded others out
                deeper *= 4
                one = {leg: self._legs[leg].hits(encoded[leg][qi:qi + 1], deeper, keep) for leg in legs}
                runs[qi] = query = self._query(one, k, deeper, leg_runs, clock)
        return SearchRun(legs, runs, encoded, dict(clock.seconds), list(queries))

    def encode(self, queries: Sequence[str], legs: Sequence[str]) -> dict[str, Any]:
        """Queries as each leg sees them; the models' part through the batcher when there is one."""
        check_queries(queries)
        encoded: dict[str, Any] = {}
        model_legs = tuple(leg for leg in legs if self.settings.query_models((leg,)) - {TOKENIZER})
        if model_legs and self.batcher is None:
            encoded = self.encode_models(queries, model_legs)
        elif model_legs:  # a pass shared with other threads' queries for the same legs of this version
            encoded = self.batcher((self, model_legs), queries)
        return {leg: encoded[leg] if leg in encoded else self._legs[leg].encode(queries, None) for leg in legs}

    def encode_models(self, queries: Sequence[str], legs: Sequence[str]) -> dict[str, Any]:
        """Queries as the given legs that need a model see them: the LLM runs once for all of its legs.
        One row per query (leg.Leg.encode), so a micro-batch's result is cut by rows."""
        vectors = None
        if any(LLM in self.settings.query_models((leg,)) for leg in legs):
            vectors = self._encoder.encode(list(queries))
        return {leg: self._legs[leg].encode(queries, vectors) for leg in legs}

    def _query(self, streams: dict[str, Iterator[tuple[np.ndarray, Scorer]]], k: int, depth: int, leg_runs: bool,
               clock: Clock) -> QueryRun:
        """The next query of every leg's stream: the union of their lists, rescored by every leg, fused;
        in an index of passages, each document by its best passage (MaxP)."""
        tops, scorers = {}, {}
        for leg, stream in streams.items():
            with clock.timing(leg):
                tops[leg], scorers[leg] = next(stream)
        candidates = np.array(list(dict.fromkeys(np.concatenate(list(tops.values())).tolist())), dtype=np.int64)
        scores = {}
        for leg, scorer in scorers.items():
            with clock.timing(leg):
                scores[leg] = scorer(candidates)
        with clock.timing("fuse"):
            hits = self._fused(candidates, scores, k)
        own = depth if self.passages is not None else k  # a leg's own list: its top k (documents, in passages)
        per_leg = {leg: self._leg_run(leg, tops[leg][:own], scorers[leg], k) for leg in streams} if leg_runs else {}
        cut = any(len(top) >= depth for top in tops.values())
        short = self.passages is not None and cut and any(len(r) < k for r in [hits, *per_leg.values()])
        return QueryRun(hits, candidates, scores, per_leg, short)

    def _top(self, rows: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
        """Positions of the top k by score, best first (ties in the order given); in an index of passages,
        of the top k documents, each by its best row."""
        order = np.argsort(-scores, kind="stable")
        if self.passages is None:
            return order[:k]
        _, first = np.unique(self.passages.document[rows[order]], return_index=True)
        return order[np.sort(first)[:k]]

    def _fused(self, candidates: np.ndarray, scores: dict[str, np.ndarray], k: int) -> list[Result]:
        """The top k candidates by their fused score."""
        if len(candidates) == 0:  # a filter that no document (with a match) passes
            return []
        s = self.settings
        fused = fuse(scores, s.fusion, s.weights, s.fusion_params) if len(scores) > 1 else next(iter(scores.values()))
        return [Result(int(candidates[i]), float(fused[i]), {leg: float(v[i]) for leg, v in scores.items()})
                for i in self._top(candidates, fused, k)]

    def _leg_run(self, leg: str, rows: np.ndarray, scorer: Scorer, k: int) -> list[Result]:
        """A leg's own top k, ordered by its exact scores (FAISS's order can differ in the last bits)."""
        scores = scorer(rows)
        return [Result(int(rows[i]), float(scores[i]), {leg: float(scores[i])}) for i in self._top(rows, scores, k)]

    def explain(self, run: SearchRun, qi: int, row: int, document: str = "", limit: int = 8) -> list[dict]:
        """Why a document matched: the words it shares with query qi, by contribution, from every leg of
        the run that can say (the key-token and lexical legs); document: its text, so that a leg names
        only what is in it.

        Words that read the same are merged: the pieces of one query word, " bees" and "bees", a stem and
        the words it came from. The user sees words, not token ids or stems. A weight is the word's
        contribution to the leg's score in a one-leg mode; in a fused one, where the legs' scales differ,
        its share of each leg's match, averaged over the legs that explain ("legs" says which matched it).
        """
        legs = [leg for leg in run.legs if self._legs[leg].explains]
        merged: dict[str, float] = {}
        found: dict[str, list[str]] = {}
        for leg in legs:
            shared = self._legs[leg].explain(run.encoded[leg], qi, row, run.texts[qi], document)
            scale = 1.0
            if len(legs) > 1:
                total = sum(weight for _, weight in shared)
                scale = 1.0 / (total * len(legs)) if total > 0 else 0.0
            for text, weight in shared:
                merged[text] = merged.get(text, 0.0) + weight * scale
                found.setdefault(text, [])
                if leg not in found[text]:
                    found[text].append(leg)
        top = sorted(merged.items(), key=lambda tw: -tw[1])[:limit]
        if len(legs) <= 1:
            return [{"token": text, "weight": round(weight, 4)} for text, weight in top]
        return [{"token": text, "weight": round(weight, 4), "legs": found[text]} for text, weight in top]
