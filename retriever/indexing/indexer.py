"""Building an index: one forward pass per batch feeds both the dense and the key-token sparse leg;
the BM25 lexical leg counts the same documents' words and needs no model.

Documents and their vectors are committed to disk chunk by chunk as they are encoded (checkpoint.py), so
memory does not grow with the corpus while the model runs and a killed build resumes. Each leg then writes
its own files of the index's first segment (segments.py) from all the chunks (leg.py), since the
key-token leg fits its first principal component on a sample of the whole corpus first. The indexer names
no leg's files.
"""

from __future__ import annotations

import copy
import platform
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import asdict, replace
from datetime import datetime, timezone
from itertools import islice
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from ..corpus.documents import Document
from ..errors import InputError, RetrieverError
from ..index.checkpoint import Checkpoint
from ..index.home import remember_last
from ..index.segments import Segment, segment_name
from ..index.store import FORMAT_VERSION, NO_MODEL, IndexWriter, check_target, exclusive, passages_table
from ..legs.base import LegContext
from ..legs.registry import leg_types
from ..models.encoders import EncodeStats, defaults_for
from ..models.loading import Models
from ..settings import IndexSettings
from ..timing import Clock
from .defaults import CHUNK
from .encode import DocumentEncoders
from .passages import Splitter, passage_record, per_document


class Stages(Clock):
    """Seconds spent per build stage, reported in the manifest: where an index's build time went."""

    def reading(self, items: Iterable[Document]) -> Iterator[Document]:
        """items, with the time spent producing them (reading and parsing the corpus) counted as 'read'."""
        iterator = iter(items)
        while True:
            with self.timing("read"):
                item = next(iterator, None)
            if item is None:
                return
            yield item


def _chunks(items: Iterable[Document], size: int) -> Iterator[list[Document]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _read_ahead(chunks: Iterator[list[Document]], prepare: Callable[[int, list[Document]], Any]
                ) -> Iterator[tuple[int, list[Document], Any]]:
    """(number, chunk, prepare(number, chunk)) per chunk; a worker thread reads and prepares the next chunk
    while the caller encodes this one, so parsing and tokenizing hide behind the forward pass (which
    releases the GIL). An error reading chunk n+1 surfaces after chunk n is committed, as before."""
    def step(number: int):
        chunk = next(chunks, None)
        return None if chunk is None else (number, chunk, prepare(number, chunk))

    with ThreadPoolExecutor(1, thread_name_prefix="retriever-read-ahead") as pool:
        pending = pool.submit(step, 0)
        while (item := pending.result()) is not None:
            pending = pool.submit(step, item[0] + 1)
            yield item


def _library_versions() -> dict[str, str]:
    import pyarrow
    import scipy
    import torch
    import transformers

    return {"python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "faiss": faiss.__version__,
            "numpy": np.__version__, "scipy": scipy.__version__, "pyarrow": pyarrow.__version__}


Progress = Callable[[int, int], None]  # (documents done in this batch, tokens in this batch)


def build_index(documents: Iterable[Document], target: str | Path, backbone, settings: IndexSettings,
                progress: Progress | None = None, source: str | None = None, *, restart: bool = False,
                chunk_size: int = CHUNK, u1: np.ndarray | None = None, overwrite: bool = False,
                batch_tokens: int | None = None, dense_encoder=None, cluster=None) -> dict[str, Any]:
    """Encode, index and write documents to target; returns the manifest.

    Work is committed chunk by chunk (checkpoint.py): run again after a crash, the build resumes from its
    last committed chunk, unless restart. The model's measured method defaults are filled in under the
    caller's parameters and stored, so queries are encoded with exactly the parameters the documents were.
    u1: a principal component to use instead of fitting one (an existing index's, to score alike).
    An index (or anything else) already at target is refused unless overwrite (store.check_target).
    backbone: None (or ignored) for an index without a model leg. batch_tokens: the forward pass's token
    budget per batch (speed only: a text's vectors do not depend on its batch).
    dense_encoder: the trained sentence encoder (sentence.py) settings.dense_model names, loaded.
    cluster: a distributed.RayBuild, entered, to encode on (its workers load the models themselves; backbone and
    dense_encoder here then only describe them and project the key tokens).
    """
    check_target(target, overwrite)
    if settings.needs_dense_model and dense_encoder is None:
        raise RetrieverError(f"the dense leg comes from '{settings.dense_model}': pass its loaded encoder")
    started = time.perf_counter()
    if not settings.needs_model:
        backbone = None  # an index without a model leg records no model, whatever the caller holds
    elif backbone is None:
        raise RetrieverError(f"the {' and '.join(settings.ordered_legs)} legs need a model")
    else:
        settings = replace(settings, method_params={**defaults_for(backbone.name, settings.method),
                                                    **settings.method_params})
    method = settings.make_method()
    encoders = DocumentEncoders.for_settings(settings, backbone, dense_encoder, batch_tokens)
    splitter = Splitter.for_settings(settings, backbone, dense_encoder)
    model = backbone.describe() if backbone is not None else dict(NO_MODEL)
    trained = encoders.dense_model.describe() if encoders.dense_model is not None else None
    with exclusive(target):
        checkpoint = Checkpoint(target, {"model": model["fingerprint"], "settings": settings.to_dict(),
                                         "dense_model": trained and trained["fingerprint"],
                                         "chunk_documents": chunk_size, "format_version": FORMAT_VERSION}, restart)
        if progress:
            progress(0, 0)  # the clock starts here: model loading is not indexing
        stages = Stages()
        try:
            if cluster is not None and encoders.any:
                resumed = _encode_on_cluster(stages.reading(documents), checkpoint, cluster, settings, model,
                                             (batch_tokens, chunk_size), progress, source, stages)
            else:
                resumed = _encode_chunks(stages.reading(documents), checkpoint, (encoders, splitter), chunk_size,
                                         progress, source, stages)
        except BaseException:
            if checkpoint.committed == 0:  # nothing worth resuming: leave no folder behind
                checkpoint.discard()
            raise
        manifest = {"model": model, **({"dense_model": trained} if trained else {}), "settings": settings.to_dict(),
                    "method_parameters": method.parameters(), "source": source, "resumed_documents": resumed,
                    "chunk_documents": chunk_size, **passage_record(splitter)}
        path = _assemble(checkpoint, target, backbone, settings, u1, manifest, started, stages)
        checkpoint.discard()
    remember_last(path)
    return manifest


def _encode_chunks(documents: Iterable[Document], checkpoint: Checkpoint,
                   encoding: tuple[DocumentEncoders, Splitter | None], chunk_size: int, progress: Progress | None,
                   source: str | None, stages: Stages) -> int:
    """Encode and commit every chunk not committed yet; returns how many documents were already committed.
    encoding: the encoders, and the splitter that cuts documents into passages (None: they are not cut)."""
    encoders, splitter = encoding
    resumed = seen = 0
    tokenizer = copy.deepcopy(encoders.llm.backbone.tokenizer) if encoders.llm is not None else None  # the reader's
    reader_splitter = splitter.private() if splitter is not None else None

    def prepare(number: int, chunk: list[Document]):
        if number < checkpoint.committed:
            return None
        passages = reader_splitter.split(chunk) if reader_splitter is not None else None
        rows = chunk if passages is None else [p.row for p in passages]
        return passages, (encoders.prepare([d.content for d in rows], tokenizer) if encoders.llm is not None else None)

    with closing(_read_ahead(_chunks(documents, chunk_size), prepare)) as ahead:
        for number, chunk, prepared in ahead:
            seen = number + 1
            if number < checkpoint.committed:
                checkpoint.check(number, chunk, source)
                resumed += len(chunk)
                if progress:
                    progress(len(chunk), 0)
                continue
            _encode_chunk(number, chunk, prepared, checkpoint, encoders, progress, stages)
    _check_length(seen, checkpoint, source)
    return resumed


def _check_length(chunks: int, checkpoint: Checkpoint, source: str | None) -> None:
    if chunks == 0:
        raise InputError("empty corpus: no documents", source)
    if chunks < checkpoint.committed:
        raise InputError(f"the corpus changed since the interrupted build: it now ends in chunk {chunks - 1}, "
                         f"but {checkpoint.committed} chunks were committed; pass --restart", source)


def _encode_on_cluster(documents: Iterable[Document], checkpoint: Checkpoint, cluster, settings: IndexSettings,
                       model: dict[str, Any], sizes: tuple[int | None, int], progress: Progress | None,
                       source: str | None, stages: Stages) -> int:
    """Encode on Ray every chunk not committed yet and commit each as it comes back, in corpus order; returns
    how many documents were already committed. This process reads the corpus once first: to check an
    interrupted build's chunks against it, and to know which ids each chunk from the cluster must hold.
    sizes: the forward pass's token budget, documents per chunk."""
    batch_tokens, chunk_size = sizes
    resumed, seen, done, expected, remaining = 0, 0, [], [], []
    for number, chunk in enumerate(_chunks(documents, chunk_size)):
        seen = number + 1
        if number < checkpoint.committed:
            checkpoint.check(number, chunk, source)
            resumed += len(chunk)
            done.extend(d.id for d in chunk)
        else:
            expected.extend(d.id for d in chunk)
            if source is None:  # documents from the Python API travel to the cluster as one table
                remaining.extend(chunk)
    _check_length(seen, checkpoint, source)
    if progress and resumed:
        progress(resumed, 0)
    number, position = checkpoint.committed, 0
    for encoded in cluster.chunks(source, remaining, done, settings, batch_tokens, chunk_size, progress):
        ids = [d.id for d in encoded.documents]
        if ids != expected[position:position + len(ids)]:
            raise RetrieverError(f"the Ray workers returned chunk {number} with other documents than the corpus "
                                 f"has there (from id '{ids[0]}'): did the corpus change during the build?")
        if encoded.dtypes - {model["dtype"]}:
            raise RetrieverError(f"the Ray workers ran the model in {', '.join(sorted(encoded.dtypes))}, this "
                                 f"process in {model['dtype']}: pass --dtype to run both alike")
        info = {"empty": sum(not d.content.strip() for d in encoded.documents), "stats": asdict(encoded.stats)}
        with stages.timing("commit"):
            checkpoint.commit(number, encoded.documents, encoded.arrays, info, encoded.table)
        number, position = number + 1, position + len(ids)
    if position != len(expected):
        raise RetrieverError(f"the Ray workers returned {position:,} documents, the corpus has {len(expected):,} "
                             "after the committed chunks: did the corpus change during the build?")
    return resumed


def _encode_chunk(number: int, chunk: list[Document], prepared, checkpoint: Checkpoint,
                  encoders: DocumentEncoders, progress: Progress | None, stages: Stages) -> None:
    """One chunk (its passages, where prepared has them) through the encode step (encode.py), committed."""
    passages, inputs = prepared
    rows = chunk if passages is None else [p.row for p in passages]
    encoded = encoders.encode([d.content for d in rows], inputs, per_document(progress, len(chunk), len(rows)),
                              stages.timing)
    info: dict[str, Any] = {"empty": sum(not d.content.strip() for d in chunk)}
    if encoded.stats is not None:
        info["stats"] = asdict(encoded.stats)
    with stages.timing("commit"):
        checkpoint.commit(number, chunk, encoded.arrays, info, None if passages is None else passages_table(passages))


def _assemble(checkpoint: Checkpoint, target: str | Path, backbone, settings: IndexSettings,
              u1: np.ndarray | None, manifest: dict[str, Any], started: float, stages: Stages) -> Path:
    """The index from the committed chunks: one segment (documents copied, each leg written), then the
    manifest, last."""
    chunks = list(checkpoint.chunks())
    stats, empty, count, documents = EncodeStats(), 0, 0, 0
    name = segment_name(1)
    with IndexWriter(target) as writer:
        segment = writer.segment(name)
        for chunk in chunks:
            with stages.timing("write"):
                segment.add_documents(chunk.documents())
            count += chunk.info.get("rows", chunk.info["documents"])
            documents += chunk.info["documents"]
            empty += chunk.info["empty"]
            stats.add(EncodeStats(**chunk.info.get("stats", {})))
        context = LegContext(settings, Models(backbone), count, u1, stages.timing)
        legs: dict[str, Any] = {}
        for leg in leg_types(settings.legs):
            legs.update(leg.write(segment, chunks, context))
        segment.close()
        written = [Segment(writer.folder / name, name, count, fields=legs)]
        for leg in leg_types(settings.legs):
            manifest.update(leg.summary(written))
        stages.seconds["tokenize"], stages.seconds["forward"] = stats.tokenize_seconds, stats.forward_seconds
        manifest.update({
            "documents": count, "documents_empty": empty, "documents_truncated": stats.truncated,
            "tokens_embedded": stats.tokens, "padded_tokens": stats.padded_tokens,
            "segments": [{"name": name, "documents": count, "deleted": 0, "tombstones": None, "legs": legs}],
            **({"passages": {**manifest["passages"], "documents": documents}} if "passages" in manifest else {}),
            "generation": 1, "next_segment": 2,
            "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "build_seconds": round(time.perf_counter() - started, 3), "stage_seconds": stages.report(),
            "versions": _library_versions()})
        return writer.commit(manifest)
