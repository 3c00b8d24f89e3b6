"""Encoding a build on Ray: Ray Data reads the corpus in blocks, a pool of encoder actors (each loads the
model once, on a GPU where it is given one) turns them into the vectors a single-process build computes,
and the driver receives them in corpus order and commits them as the build's chunks (checkpoint.py).

Why the workers return vectors rather than finished segments: the key-token leg's u_1 is fitted on a
sample of the whole corpus (sparse.sample_rows), so no document's sparse row can be written before every
block is encoded. The workers keep the residual vectors with the dense ones, and the driver projects them
after fitting u_1 on exactly the sample a single-process build fits it on, through the same assembly
(indexer._assemble). Encoding is where the time goes (a forward pass per token against one projection per
document), so that is what Ray spreads. The chunks are the files a single-process build commits, so a
killed driver resumes from them with the same command, on Ray or without it.

Needs the `ray` extra (pip install 'retriever[ray]') for everything but RayOptions and check_source.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

try:  # the `ray` extra: RayOptions and check_source work without it, so that a CLI can say what is missing
    import ray
    from ray.data import Datasource, ReadTask
    from ray.data.block import BlockMetadata
except ImportError:
    ray = None
    Datasource = object

from ..corpus.documents import Document, Fields
from ..corpus.readers import Split, reader_for, splittable
from ..errors import InputError, RetrieverError
from ..index.store import PASSAGE_SCHEMA, documents_table, passages_table, stored_contents, whole_text
from ..models.encoders import EncodeStats
from ..settings import IndexSettings
from .encode import DocumentEncoders
from .passages import Splitter

BLOCK_DOCUMENTS = 2048  # documents per block a read task hands on
STAT_FIELDS = ("tokens", "padded_tokens", "truncated", "tokenize_seconds", "forward_seconds")


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide a build runs on Ray (`retriever index --ray`).

    address: a running cluster ("auto", "HOST:PORT", "ray://HOST:10001"); None: the one RAY_ADDRESS names,
    else a new local one on this machine. threads: torch threads per worker (None: the CPUs of the smallest
    node shared among the workers). batch_size: documents per call of a worker, the work a killed worker's
    retry redoes.
    """

    address: str | None = None
    workers: int = 1
    gpus_per_worker: float = 0.0
    threads: int | None = None
    batch_size: int = 256

    def __post_init__(self):
        if self.workers < 1 or self.batch_size < 1 or (self.threads is not None and self.threads < 1):
            raise RetrieverError("Ray workers, threads and batch size must be at least 1")
        if self.gpus_per_worker < 0:
            raise RetrieverError("gpus per worker cannot be negative")

    @property
    def device(self) -> str:
        return "cuda" if self.gpus_per_worker > 0 else "cpu"


def check_source(source: str | None) -> None:
    """Ray installed, and a corpus file Ray Data can split into blocks: JSONL (.gz too) or Parquet. Checked
    before the model loads; a list of documents from the Python API is handed over as one table instead."""
    if ray is None:
        raise RetrieverError("indexing on Ray needs Ray: pip install 'retriever[ray]'")
    if source is not None and (reader := reader_for(source)).splits(Path(source)) is None:
        formats = " or ".join(r.label for r in splittable())
        raise InputError(f"--ray reads {formats}, not {reader.name}: convert the corpus, or index without --ray",
                         source)


class CorpusSource(Datasource):
    """A corpus file as Ray Data read tasks, one per split its reader declares (corpus/readers.py), parsed by
    the same code as a single-process build, so both see the same documents."""

    def __init__(self, path: str, fields: Fields):
        super().__init__()
        self.path, self.fields = Path(path), fields
        self.reader = reader_for(self.path)

    def estimate_inmemory_data_size(self) -> int | None:
        return self.path.stat().st_size

    def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None,
                       data_context: Any = None) -> list[ReadTask]:
        return [ReadTask(self._reader(split), BlockMetadata(None, None, None, input_files=[str(self.path)]))
                for split in self.reader.splits(self.path)]

    def _reader(self, split: Split):
        reader, path, fields = self.reader, self.path, self.fields
        return lambda: _blocks(reader.read_split(path, split, fields))


def _blocks(documents: Iterator[Document]) -> Iterator[pa.Table]:
    while block := list(islice(documents, BLOCK_DOCUMENTS)):
        yield documents_table(block)


def _documents(block: pa.Table) -> list[Document]:
    return [Document(i, text, title, json.loads(metadata)) for i, title, text, metadata in
            zip(*(block.column(name).to_pylist() for name in ("id", "title", "text", "metadata")), strict=True)]


def _drop(block: pa.Table, skip: frozenset[str]) -> pa.Table:
    return block.filter(pa.array([i not in skip for i in block.column("id").to_pylist()], pa.bool_()))


class BlockEncoder:
    """One Ray worker: loads the model(s) once, then encodes the blocks Ray Data hands it."""

    job: dict[str, Any]  # set on a subclass per build (RayBuild.chunks)

    def __init__(self):
        import torch

        from ..models.backbones import load_backbone, pick_device, resolve_dtype
        from ..models.sentence import load_sentence_encoder

        job = self.job
        torch.set_num_threads(job["threads"])
        settings = IndexSettings.from_dict(job["settings"])
        backbone = dense_encoder = None
        if settings.needs_dense_model:
            dtype = resolve_dtype(job["dtype"], pick_device(job["device"]))
            dense_encoder = load_sentence_encoder(settings.dense_model, dtype, job["device"])
        if job["llm"]:
            backbone = load_backbone(job["model"], dtype=job["dtype"], device=job["device"], quiet=True)
        self.encoders = DocumentEncoders.for_settings(settings, backbone, dense_encoder, job["batch_tokens"])
        self.splitter = Splitter.for_settings(settings, backbone, dense_encoder)
        self.dtype = "" if backbone is None else backbone.describe()["dtype"]  # int8 too

    def __call__(self, block: pa.Table) -> dict[str, np.ndarray]:
        if self.splitter is not None:  # a block's documents become its passages' rows, all in this block
            block = passages_table(self.splitter.split(_documents(block)))
        contents = stored_contents(block)
        out = {name: np.array(block.column(name).to_pylist(), dtype=object) for name in block.column_names}
        out.update({f"stat_{name}": np.zeros(len(contents)) for name in STAT_FIELDS})
        encoded = self.encoders.encode(contents)
        out.update(encoded.arrays)
        if encoded.prepared is not None:  # the LLM's pass, counted per row
            out.update(_row_stats(encoded.prepared, encoded.stats))
        elif self.encoders.dense_model is not None:  # else the dense model's: its tokens and cuts per row
            ids, cut = self.encoders.dense_model.token_ids(contents)
            out["stat_tokens"] = np.array([len(x) for x in ids], np.float64)
            out["stat_truncated"] = np.array(cut, np.float64)
        out["worker_dtype"] = np.array([self.dtype] * len(contents), dtype=object)
        return out


def _row_stats(prepared, stats: EncodeStats) -> dict[str, np.ndarray]:
    """A block's encoding statistics per document, so that any run of documents sums to its own: exact for
    tokens and truncation, the block's padding and seconds shared out by tokens. A chunk the driver cuts
    across two blocks, or a resumed build that encodes a block's second half again, then counts what it
    holds, not what its blocks did."""
    tokens = np.array([sum(len(inputs[i].ids) for inputs in prepared.inputs) for i in range(prepared.texts)],
                      np.float64)
    share = tokens / max(tokens.sum(), 1.0)
    truncated = np.zeros(prepared.texts)
    truncated[prepared.cut] = 1
    shared = {name: share * getattr(stats, name) for name in ("padded_tokens", "tokenize_seconds", "forward_seconds")}
    return {"stat_tokens": tokens, "stat_truncated": truncated, **{f"stat_{k}": v for k, v in shared.items()}}


# Ray Data's actor pool hands each actor an object-store reference, so Ray's C++ core logs an error line
# about restarts on every build (ray-project/ray#53727, #57838); restarts work here all the same (a killed
# worker is restarted and its blocks retried: tests/tiny/indexing/test_ray.py), so the line only alarms.
RESTART_NOTICE = b"has constructor arguments in the object store"


@contextmanager
def without_lines(noise: bytes) -> Iterator[None]:
    """This process's stderr (file descriptor 2, where Ray's C++ core writes too) without the lines that
    contain noise: a thread forwards everything else as it comes, a progress bar's carriage returns too."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (a test's captured stream): nothing to filter
        yield
        return
    read, write = os.pipe()
    os.dup2(write, 2)
    os.close(write)
    pump = threading.Thread(target=_forward, args=(read, saved, noise), daemon=True, name="retriever-stderr")
    pump.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # the pipe's last writer here gone: the pump drains it and stops
        pump.join(timeout=5)
        os.close(saved)


def _forward(read: int, target: int, noise: bytes) -> None:
    pending = b""
    with os.fdopen(read, "rb", buffering=0) as source:
        while chunk := source.read(65536):
            *pieces, pending = re.split(rb"(?<=[\n\r])", pending + chunk)
            for piece in pieces:
                if noise not in piece:
                    _write(target, piece)
    if pending and noise not in pending:
        _write(target, pending)


def _write(target: int, data: bytes) -> None:
    with suppress(OSError):  # the build is over and its stderr closed: a late line from a Ray process is dropped
        os.write(target, data)


@dataclass
class EncodedChunk:
    """chunk_size consecutive documents of the corpus with their vectors, as one worker or several made them."""

    documents: list[Document]
    arrays: dict[str, np.ndarray]
    stats: EncodeStats
    dtypes: set[str]  # the LLM's, as each worker loaded it (none without an LLM)
    table: pa.Table | None = None  # the documents' passages as stored, where the index cuts them


class RayBuild:
    """One build's use of a cluster: connected on entry, left (and a local cluster it started stopped) on exit."""

    def __init__(self, options: RayOptions, model: str | None, dtype: str, fields: Fields | None = None):
        self.options, self.model, self.dtype, self.fields = options, model, dtype, fields or Fields()
        self.started = False

    def __enter__(self) -> RayBuild:
        self._quiet = without_lines(RESTART_NOTICE)
        self._quiet.__enter__()
        if not ray.is_initialized():
            ray.init(address=self.options.address, include_dashboard=False, logging_level=logging.ERROR,
                     log_to_driver=False)  # a worker's error still reaches this process, raised
            self.started = True
        logging.getLogger("ray.data").setLevel(logging.ERROR)
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True  # blocks come back in corpus order
        context.enable_progress_bars = False  # the build's own progress line counts documents
        context.print_on_execution_start = False
        return self

    def __exit__(self, *exc) -> None:
        try:
            if self.started:
                ray.shutdown()
        finally:
            self._quiet.__exit__(*exc)

    def threads(self) -> int:
        """Torch threads per worker: as asked, else the smallest node's CPUs shared among the workers."""
        if self.options.threads is not None:
            return self.options.threads
        cpus = [node["Resources"].get("CPU", 1) for node in ray.nodes() if node.get("Alive")]
        per_node = -(-self.options.workers // max(len(cpus), 1))
        return max(1, int(min(cpus or [1]) // per_node))

    def chunks(self, source: str | None, documents: Sequence[Document] | None, skip: Sequence[str],
               settings: IndexSettings, batch_tokens: int | None, chunk_size: int,
               progress=None) -> Iterator[EncodedChunk]:
        """The corpus's documents not in skip, encoded by the worker pool, chunk_size at a time, in order."""
        if source is not None:
            dataset = ray.data.read_datasource(CorpusSource(source, self.fields), num_cpus=0)
        else:
            table = documents_table(documents or [])  # in blocks, so that every worker gets some
            step = self.options.batch_size
            dataset = ray.data.from_arrow([table.slice(i, step) for i in range(0, max(len(table), 1), step)])
        if skip:  # an interrupted build's committed documents: the driver checked them against the corpus
            dataset = dataset.map_batches(_drop, fn_kwargs={"skip": frozenset(skip)}, batch_format="pyarrow",
                                          batch_size=None, num_cpus=0)
        threads = self.threads()
        job = {"settings": settings.to_dict(), "model": self.model, "dtype": self.dtype, "llm": settings.needs_model,
               "device": self.options.device, "threads": threads, "batch_tokens": batch_tokens}
        # The job rides on the class, not as constructor arguments, which Ray keeps in its object store and a
        # restarted actor could not get back once they are gone (ray-project/ray#53727).
        worker = type("BlockEncoder", (BlockEncoder,), {"job": job})
        encoded = dataset.map_batches(
            worker, compute=ray.data.ActorPoolStrategy(size=self.options.workers),
            batch_size=self.options.batch_size, batch_format="pyarrow",
            num_cpus=threads, num_gpus=self.options.gpus_per_worker or None)
        pending: list[dict[str, np.ndarray]] = []
        for batch in encoded.iter_batches(batch_size=None, batch_format="numpy"):
            if progress:
                progress(len(_firsts(batch)), int(batch["stat_tokens"].sum()))
            pending.append(batch)
            while sum(len(_firsts(b)) for b in pending) >= chunk_size:
                head, pending = _split(pending, chunk_size)
                yield _chunk(head)
        if pending:
            yield _chunk(_split(pending, sum(len(_firsts(b)) for b in pending))[0])


def _firsts(batch: dict[str, np.ndarray]) -> np.ndarray:
    """The rows where a document starts: every row, or in passages each document's first passage (a
    worker returns every passage of a document in the same batch)."""
    return np.arange(len(batch["id"])) if "passage" not in batch else np.flatnonzero(batch["passage"] == 0)


def _split(batches: list[dict[str, np.ndarray]], documents: int) -> tuple[dict[str, np.ndarray], list]:
    """The rows of the first documents of batches, joined, and the batches of what is left."""
    joined = {name: np.concatenate([b[name] for b in batches]) for name in batches[0]}
    firsts = _firsts(joined)
    size = int(firsts[documents]) if documents < len(firsts) else len(joined["id"])
    head = {name: column[:size] for name, column in joined.items()}
    rest = {name: column[size:] for name, column in joined.items()}
    return head, ([rest] if len(rest["id"]) else [])


def _chunk(batch: dict[str, np.ndarray]) -> EncodedChunk:
    """Documents with their rows' vectors; in passages, each document rebuilt from its first passage (the
    whole text rides on it) and the passages' rows kept as the table to store."""
    table = None
    if "passage" in batch:
        table = pa.table({name: batch[name].tolist() for name in PASSAGE_SCHEMA.names}, schema=PASSAGE_SCHEMA)
    firsts = _firsts(batch)
    texts = [batch["text"][i] if table is None else whole_text(batch["text"][i], batch["document"][i])
             for i in firsts]
    documents = [Document(str(batch["id"][i]), str(text), str(batch["title"][i]), json.loads(batch["metadata"][i]))
                 for i, text in zip(firsts, texts, strict=True)]
    sums = {name: batch[f"stat_{name}"].sum().item() for name in STAT_FIELDS}
    stats = EncodeStats(texts=len(documents), **{name: round(value) if name in ("tokens", "padded_tokens",
                                                                               "truncated") else value
                                                for name, value in sums.items()})
    arrays = {name: np.ascontiguousarray(np.stack(batch[name]) if batch[name].dtype == object else batch[name],
                                         dtype=np.float32)
              for name in ("dense", "residual") if name in batch}
    return EncodedChunk(documents, arrays, stats, set(batch["worker_dtype"].tolist()) - {""}, table)

