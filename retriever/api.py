"""The Python API: build, load and search an index in a few lines.

    from retriever import Retriever
    r = Retriever.build([{"_id": "1", "text": "..."}], "indexes/mine")
    r = Retriever.load("indexes/mine")
    hits = r.search("what is ...", k=10)              # list[Hit]
    many = r.search_batch(["q1", "q2"], k=100, mode="dense")
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .corpus.documents import Document, Fields, documents_from
from .corpus.readers import read_corpus
from .errors import BadIndexError, RetrieverError
from .index.home import home, last_built
from .index.store import (
    PASSAGE_COLUMNS,
    check_target,
    disk_size,
    exclusive,
    read_manifest,
    rewrite_manifest,
    whole_text,
)
from .indexing.defaults import CHUNK
from .indexing.indexer import Progress, build_index
from .indexing.updates import check_additions, optimize_index, update_index
from .indexing.verify import verify_index
from .legs.registry import check_documents
from .models.backbones import (
    DEFAULT_MODEL,
    PRESETS,
    Backbone,
    fingerprint,
)
from .models.kinds import DENSE_MODEL, LLM, TOKENIZER
from .models.loading import Models, mismatch, specs
from .models.sentence import SentenceEncoder
from .search.batching import MicroBatcher
from .search.searcher import Result, Searcher
from .search.snippets import snippet
from .settings import IndexSettings

if TYPE_CHECKING:
    from .indexing.ray import RayOptions


@dataclass
class Hit:
    """One search result; to_dict() is exactly the CLI's JSON for a hit."""

    id: str
    rank: int
    score: float
    scores: dict[str, float]
    title: str
    snippet: str
    tokens: list[dict] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    # in an index of passages, the passage that scored the document: its number and characters [start, end)
    # of the document's text; None where documents were indexed whole
    passage: dict[str, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def result(query_id: str, query: str, mode: str, hits: list[Hit]) -> dict[str, Any]:
    """One query's results: the one schema of `search --json`, `--jsonl` and the server (README)."""
    return {"query_id": query_id, "query": query, "mode": mode, "hits": [h.to_dict() for h in hits]}


def _hit(doc_id: str, rank: int, found: Result, stored: dict[str, Any], tokens: list[dict]) -> Hit:
    """A hit, its snippet cut where the tokens it shares with the query are (snippets.py)."""
    return Hit(id=doc_id, rank=rank, score=found.score, scores=found.leg_scores, title=stored["title"],
               snippet=snippet(stored["text"], [t["token"] for t in tokens]), tokens=tokens,
               metadata=stored["metadata"], passage=stored.get("passage"))


def _stored(searcher: Searcher, rows: list[int]) -> dict[int, dict[str, Any]]:
    """title, text and parsed metadata of the given rows of an index's documents; in an index of passages,
    the row's passage (its text as text) and its document's whole text."""
    if not rows:
        return {}
    docs = searcher.documents
    names = ("title", "text", "metadata", *(PASSAGE_COLUMNS if searcher.passages is not None else ()))
    columns = {name: docs.column(name).take(rows).to_pylist() for name in names}
    out = {}
    for i, row in enumerate(rows):
        meta = columns["metadata"][i]
        out[row] = {"title": columns["title"][i], "text": columns["text"][i],
                    "metadata": json.loads(meta) if meta else {}}
        if searcher.passages is not None:
            out[row]["passage"] = {"number": columns["passage"][i], "start": columns["start"][i],
                                   "end": columns["end"][i]}
            out[row]["whole"] = whole_text(columns["text"][i], columns["document"][i])
    return out


def _content(stored: dict[str, Any]) -> str:
    return Document("", stored["text"], stored["title"]).content


def _check_models(manifest: dict, models: Models, folder: Path) -> None:
    """The models in hand against those the index's documents were encoded with."""
    differs = mismatch(manifest, models, _models(manifest, query=False))
    if differs:
        raise BadIndexError(f"{folder} {differs}; search it with the model it was built with, or rebuild it")


def _check_model_spec(manifest: dict, spec: str, folder: Path) -> None:
    """A model named by the user against the manifest, without converting or loading it: a preset by name,
    anything else by its fingerprint (a GGUF file's hash, a folder's)."""
    built = manifest["model"]
    if (spec in PRESETS and spec != built["name"]) or fingerprint(spec)[1] != built["fingerprint"]:
        raise BadIndexError(f"{folder} was built with model '{built['name']}', not '{spec}'; "
                            "search it with the model it was built with")


def _models(manifest: dict, mode: str | None = None, query: bool = True) -> frozenset[str]:
    """The models searching in mode (every mode when None) needs (leg.LLM, leg.DENSE_MODEL, leg.TOKENIZER):
    none for a lexical-only index or a model-free mode; with query False, what its documents needed.
    Damaged settings say the LLM, and Searcher names the damage."""
    try:
        settings = IndexSettings.from_dict(manifest["settings"])
    except (TypeError, ValueError, RetrieverError):
        return frozenset({LLM})
    models = settings.query_models if query else settings.models
    if mode is None or mode == "hybrid" or mode not in settings.legs:
        return models()
    return models((mode,))


def _ray_checks(options: RayOptions, source: str | None, backbone: Backbone | None, model: str,
                dtype: str) -> tuple[str, str]:
    """What a build on Ray needs, checked before any model loads; returns the dtype and device for this
    process, which then only projects the key tokens (on its CPU) while the workers encode: GPUs run bf16."""
    from .indexing import ray as distributed

    distributed.check_source(source)
    if backbone is not None and backbone.fingerprint != fingerprint(model)[1]:
        raise RetrieverError(f"on Ray the workers load the model by name: pass model= the one backbone "
                             f"'{backbone.name}' was loaded from")
    return ("bfloat16" if dtype == "auto" and options.gpus_per_worker else dtype), "cpu"


def _cluster(options: RayOptions | None, model: str, dtype: str, fields: Fields | None):
    """The cluster a build encodes on, connected for the build: nothing where options is None."""
    if options is None:
        return nullcontext()
    from .indexing.ray import RayBuild

    return RayBuild(options, model, dtype, fields)


class Retriever:
    """A loaded index plus the model that encodes its queries (none for a lexical-only index)."""

    def __init__(self, folder: Path, manifest: dict[str, Any], models: Models,
                 loading: dict[str, Any] | None = None):
        """models: what queries (and adds) need, checked against the manifest; loading: how to load the
        LLM later (dtype, device), when an add needs it and the searches did not."""
        _check_models(manifest, models, folder)
        self.path, self.models = folder, models
        self._loading = loading or {}
        self.manifest, self.searcher = _open(folder, manifest, models)

    @property
    def backbone(self) -> Backbone | None:
        return self.models.backbone

    @property
    def dense_encoder(self) -> SentenceEncoder | None:
        return self.models.dense_encoder

    @property
    def tokenizer(self) -> Any:
        return self.models.tokenizer

    @classmethod
    def build(cls, documents: Iterable[Document | dict] | str | Path, path: str | Path | None = None, *,
              model: str = DEFAULT_MODEL, backbone: Backbone | None = None, dtype: str = "auto",
              device: str = "auto", settings: IndexSettings | None = None, progress: Progress | None = None,
              quiet: bool = True, restart: bool = False, chunk_size: int = CHUNK, overwrite: bool = False,
              batch_tokens: int | None = None, fields: Fields | None = None, ray: RayOptions | None = None,
              **setting_values: Any) -> Retriever:
        """Index documents (dicts with _id/text/title, Document objects, or a corpus path: JSONL, JSON, Parquet,
        CSV/TSV, a folder of .txt/.md; fields maps other field names) and load the result.

        Everything is checked before the model loads: the settings, the target (an index already at path is
        refused unless overwrite=True), and a corpus file from its first record to its last. An index without
        a model leg (legs=("lexical",)) never loads one. An interrupted build of the same path resumes from
        its last committed chunk of chunk_size documents (restart=True discards it). Keyword arguments not
        named here are IndexSettings fields (method, max_tokens, sparse, ...).

        ray: encode on a Ray cluster instead (indexing/ray.py; the `ray` extra): its workers load model by
        name, so a backbone passed here must be the one model names. The result is the index a build without
        ray gives, and an interrupted build resumes either way.
        """
        settings = settings or IndexSettings(**setting_values)
        source = str(documents) if isinstance(documents, str | Path) else None
        if ray is not None:
            dtype, device = _ray_checks(ray, source, backbone, model, dtype)
        if source is not None:
            path = path or home() / Path(documents).name.split(".")[0]
        if path is None:
            raise RetrieverError("path is required when documents are not a file")
        check_target(path, overwrite)  # the cheap refusal first, before reading a corpus through
        if source is not None:
            check_documents(settings, read_corpus(documents, fields), source)  # before minutes of model loading
            docs = read_corpus(documents, fields)
        else:
            docs = documents_from(documents)  # a list is checked whole before a model loads; an iterator
            if isinstance(documents, Sequence):  # streams, its chunks kept
                docs = list(docs)
                check_documents(settings, docs)
        wanted = {LLM: (model, dtype), DENSE_MODEL: (settings.dense_model, dtype)}  # kind -> (name, dtype)
        models = Models(backbone=backbone).only(settings.models()).load(settings.models(), wanted, device, quiet)
        with _cluster(ray, model, dtype, fields) as cluster:
            build_index(docs, path, models.backbone, settings, progress=progress, source=source, restart=restart,
                        chunk_size=chunk_size, overwrite=overwrite, batch_tokens=batch_tokens,
                        dense_encoder=models.dense_encoder, cluster=cluster)
        return cls(Path(path), read_manifest(Path(path)), models)

    @classmethod
    def load(cls, path: str | Path | None = None, *, model: str | None = None, method: str | None = None,
             backbone: Backbone | None = None, dense_encoder: SentenceEncoder | None = None,
             dtype: str | None = None, device: str = "auto", mode: str | None = None,
             quiet: bool = True) -> Retriever:
        """Open an index (the last one built when path is None) with the model it was built with.

        Passing another model (by name or loaded backbone) or another method is refused, from the manifest,
        before any model loads: queries would be encoded into another space than the documents. An index
        without a model leg never loads one; mode: the one mode this Retriever will search, so that
        mode="lexical" on a full index loads no model either. backbone, dense_encoder: models already loaded
        (indexes served together share them), checked against the manifest like any other.
        """
        folder = Path(path) if path is not None else last_built()
        manifest = read_manifest(folder)
        built_method = manifest["settings"]["method"]
        if method is not None and method != built_method:
            raise BadIndexError(f"{folder} was built with method '{built_method}', not '{method}'")
        needed = _models(manifest, mode)
        if model is not None and needed & {LLM, TOKENIZER}:
            _check_model_spec(manifest, model, folder)
        given = Models(backbone=backbone, dense_encoder=dense_encoder if DENSE_MODEL in needed else None)
        models = given.load(needed, specs(manifest, model, dtype), device, quiet)  # a backbone passed is kept
        return cls(folder, manifest, models, {"dtype": dtype, "device": device})

    def search(self, query: str, k: int = 10, mode: str = "hybrid", explain: bool = True,
               filter: dict | str | None = None) -> list[Hit]:
        """Top-k hits for one query; filter: which documents may be returned (retriever/search/filters.py)."""
        if not isinstance(query, str):
            raise RetrieverError("search() takes one query string; search_batch() takes a list")
        return self.search_batch([query], k=k, mode=mode, explain=explain, filter=filter)[0]

    def search_batch(self, queries: Sequence[str], k: int = 10, mode: str = "hybrid", explain: bool = False,
                     filter: dict | str | None = None) -> list[list[Hit]]:
        """Search many queries at once: they are encoded in length-sorted batches and scored together.
        filter: which documents may be returned, applied inside every leg before its top-k."""
        searcher = self.searcher  # one version of the index for the whole call, even if an add swaps it
        run = searcher.run(queries, k=k, mode=mode, filter=filter)
        rows = sorted({r.row for query in run.queries for r in query.hits})
        stored = _stored(searcher, rows)
        return [[_hit(searcher.ids[r.row], rank, r, stored[r.row],
                      searcher.explain(run, qi, r.row, _content(stored[r.row])) if explain else [])
                 for rank, r in enumerate(query.hits, start=1)]
                for qi, query in enumerate(run.queries)]

    def document(self, doc_id: str) -> dict[str, Any] | None:
        """A stored document as it was indexed ({id, title, text, metadata}); None when the index lacks it."""
        searcher = self.searcher
        row = searcher.row(doc_id)
        if row is None:
            return None
        stored = _stored(searcher, [row])[row]
        return {"id": doc_id, "title": stored["title"], "text": stored.get("whole", stored["text"]),
                "metadata": stored["metadata"]}

    def batch_requests(self, batcher: MicroBatcher) -> None:
        """Encode the queries of concurrent searches together (the server; batching.query_batcher): every
        later search of this Retriever, from any thread, shares its models' passes with the others waiting."""
        self.searcher.batcher = batcher  # read per call; a reloaded searcher (after add) keeps it

    def add(self, documents: Iterable[Document | dict] | str | Path, *, upsert: bool = False,
            progress: Progress | None = None, fields: Fields | None = None, source: str | None = None,
            batch_tokens: int | None = None) -> dict[str, Any]:
        """Add documents (as build takes them), scored exactly like the ones already indexed (same u_1).

        An id already in the index is refused unless upsert, which replaces that document. Every document
        is read and checked, and every id against the index, before a model loads. source: the name the
        update log records (default: the corpus file, or "documents"); batch_tokens: as build's.
        """
        docs, source = read_additions(self.path, documents, upsert, fields, source)
        manifest = update_index(self.path, add=docs, upsert=upsert, backbone=self._writing_backbone(docs),
                                progress=progress, source=source, dense_encoder=self.dense_encoder,
                                batch_tokens=batch_tokens)
        self._reload(manifest)
        return manifest

    def _writing_backbone(self, documents: Any) -> Backbone | None:
        """The LLM, loaded now if the searches did not need it (the key-token leg's own-token queries) but
        new documents do: the first add pays the load, a search never does."""
        if LLM in self.searcher.settings.models() and LLM not in self.models.kinds() and documents:
            models = self.models.load(frozenset({LLM}), specs(self.manifest, dtype=self._loading.get("dtype")),
                                      self._loading.get("device", "auto"))
            _check_models(self.manifest, models, self.path)
            self.models = models
        return self.backbone

    def delete(self, ids: Sequence[str]) -> dict[str, Any]:
        """Remove documents by id from every leg; an unknown id refuses the whole call."""
        manifest = delete_documents(self.path, ids)
        self._reload(manifest)
        return manifest

    def optimize(self) -> dict[str, Any]:
        """Merge the index's segments into one without its deleted documents (results stay the same)."""
        manifest = optimize_index(self.path)
        self._reload(manifest)
        return manifest

    def _reload(self, manifest: dict[str, Any]) -> None:
        manifest, searcher = _open(self.path, manifest, self.models, self.searcher.batcher)
        self.manifest, self.searcher = manifest, searcher  # searches in flight keep the version they took

    def set_fusion(self, fusion: str, weights: dict[str, float] | None = None,
                   record: dict[str, Any] | None = None, params: dict[str, float] | None = None) -> None:
        """Store a fusion choice (e.g. tuned on a training split) in the index, for every later search;
        params: the fusion's own (its defaults when None)."""
        with exclusive(self.path):  # the index on disk now, not as loaded: an add may have landed since
            current = read_manifest(self.path)
            previous = IndexSettings.from_dict(current["settings"])
            settings = IndexSettings.from_dict({**previous.to_dict(), "fusion": fusion, "fusion_params": params or {},
                                                "weights": weights or previous.weights})
            manifest = {**current, "settings": settings.to_dict(), **({"tuned": record} if record else {})}
            rewrite_manifest(self.path, manifest)
        self.manifest = {**self.manifest, "settings": manifest["settings"], **({"tuned": record} if record else {})}
        self.searcher.settings = settings

    @property
    def modes(self) -> tuple[str, ...]:
        return ("hybrid", *self.searcher.legs)

    def info(self) -> dict[str, Any]:
        return info(self.path)


def _open(folder: Path, manifest: dict[str, Any], models: Models, batcher: MicroBatcher | None = None,
          tries: int = 3) -> tuple[dict[str, Any], Searcher]:
    """A searcher of the index's version manifest names. A writer that publishes a new version removes
    files only the old one used: a reader that read the old manifest just before then finds them gone, and
    opens the new version instead (an unchanged manifest means real damage, reported)."""
    while True:
        try:
            return manifest, Searcher(folder, manifest, models, batcher)
        except BadIndexError:
            tries -= 1
            current = read_manifest(folder)
            if tries == 0 or current.get("checksum") == manifest.get("checksum"):
                raise
            manifest = current


def read_additions(path: str | Path, documents: Iterable[Document | dict] | str | Path, upsert: bool = False,
                   fields: Fields | None = None, source: str | None = None) -> tuple[list[Document], str]:
    """An add's documents read and checked (every record, and every id against the index at path) without
    a model; returns them with the name the update log records."""
    if isinstance(documents, str | Path):
        docs, source = list(read_corpus(documents, fields)), source or str(documents)
    else:
        docs, source = list(documents_from(documents)), source or "documents"
    check_additions(path, docs, upsert, source)
    return docs, source


def optimize(path: str | Path) -> dict[str, Any]:
    """Merge an index's segments into one and drop its deleted documents, without loading a model."""
    return optimize_index(path)


def delete_documents(path: str | Path, ids: Sequence[str]) -> dict[str, Any]:
    """Remove documents by id without loading the model; returns the new manifest."""
    return update_index(path, delete=list(ids))


def verify(path: str | Path | None = None) -> dict[str, Any]:
    """Check every file's checksum and the index's internal consistency: a report, never an exception for
    a damaged index; a path that holds no index at all is a BadIndexError, not a damaged index."""
    folder = Path(path) if path is not None else last_built()
    if not folder.exists():
        raise BadIndexError(f"no index at {folder}")
    return verify_index(folder)


def info(path: str | Path | None = None) -> dict[str, Any]:
    """What an index holds, from its manifest alone (no model is loaded)."""
    folder = Path(path) if path is not None else last_built()
    manifest = read_manifest(folder)
    return {"path": str(folder.resolve()), "size_bytes": disk_size(folder), **manifest}
