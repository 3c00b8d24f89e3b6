"""Micro-batching: concurrent searches share one pass of each model they need.

A server answers many clients at once, each with one query. Run one at a time, every query pays a whole
pass over the model's weights for a few dozen tokens, and the key-token leg a whole product with the
vocabulary matrix; run together, sixteen queries cost far less than sixteen passes (docs/benchmarks.md).
So the model part of a search goes through a MicroBatcher: a caller's queries go to a queue, one worker
thread takes what has arrived (waiting at most `wait_ms` for more once it is free, up to `max_texts`), runs
it once for all of them and hands each caller its rows. The rest of a search (the legs' top lists,
rescoring, fusion, explanations) stays in the callers' threads, in parallel.

Only requests with the same key share a pass: the same version of an index (an add swaps in a new one
while searches of the old one are still in flight) and the same legs. The engine's encoders are
batch-invariant (invariance.py, attention.py): a text's vector is the same alone and in any batch, in any
dtype, so a micro-batched search returns exactly what a direct one does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np


@dataclass
class _Request:
    key: Hashable
    texts: list[str]
    future: Future = field(default_factory=Future)


class MicroBatcher:
    """One worker thread that runs `run(key, texts)` for the texts of every waiting request with the same
    key and `split`s the result back: split(result, sizes) -> one result per request, in order."""

    def __init__(self, run: Callable[[Hashable, list[str]], Any], split: Callable[[Any, list[int]], list[Any]],
                 wait_ms: float = 5.0, max_texts: int = 64, name: str = "queries"):
        if wait_ms < 0 or max_texts < 1:
            raise ValueError("wait_ms must be >= 0 and max_texts >= 1")
        self._run, self._split, self.wait, self.max_texts = run, split, wait_ms / 1000, max_texts
        self.name = name
        self._queue: list[_Request] = []
        self._ready = threading.Condition()
        self._closed = False
        self.batches = 0  # passes run, and texts in them: the mean batch is texts / batches
        self.texts = 0
        self._worker = threading.Thread(target=self._loop, name=f"retriever-batch-{name}", daemon=True)
        self._worker.start()

    def __call__(self, key: Hashable, texts: Sequence[str]) -> Any:
        """The result for texts, computed in one pass with whatever other requests of key wait beside them."""
        request = _Request(key, list(texts))
        with self._ready:
            if self._closed:
                raise RuntimeError("the micro-batcher is closed")
            self._queue.append(request)
            self._ready.notify()
        return request.future.result()

    def close(self) -> None:
        """Finish what is queued, then stop the worker."""
        with self._ready:
            self._closed = True
            self._ready.notify()
        self._worker.join()

    def stats(self) -> dict[str, Any]:
        return {"name": self.name, "batches": self.batches, "texts": self.texts,
                "mean_batch": round(self.texts / max(self.batches, 1), 2)}

    def _loop(self) -> None:
        while (batch := self._next_batch()) is not None:
            try:
                result = self._run(batch[0].key, [t for r in batch for t in r.texts])
                parts = self._split(result, [len(r.texts) for r in batch])
            except BaseException as exc:  # every caller of the pass gets its error; the worker carries on
                for r in batch:
                    r.future.set_exception(exc)
                continue
            self.batches += 1
            self.texts += sum(len(r.texts) for r in batch)
            for r, part in zip(batch, parts, strict=True):
                r.future.set_result(part)

    def _next_batch(self) -> list[_Request] | None:
        """The requests of the next pass: the oldest one's key, all that wait with it up to max_texts (one
        larger request runs alone), after waiting up to `wait` for others to join."""
        with self._ready:
            while not self._queue:
                if self._closed:
                    return None
                self._ready.wait()
            key, deadline = self._queue[0].key, time.monotonic() + self.wait
            while not self._closed and self._count(key) < self.max_texts:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._ready.wait(left)
            batch, total = [], 0
            for r in list(self._queue):
                if r.key == key and (not batch or total + len(r.texts) <= self.max_texts):
                    total += len(r.texts)
                    batch.append(r)
                    self._queue.remove(r)
            return batch

    def _count(self, key: Hashable) -> int:
        return sum(len(r.texts) for r in self._queue if r.key == key)


def split_rows(result: dict[str, Any], sizes: list[int]) -> list[dict[str, Any]]:
    """Encoded queries per leg (one row per query: an array or a CSR matrix) cut into consecutive blocks."""
    bounds = np.cumsum([0, *sizes])
    return [{leg: value[a:b] for leg, value in result.items()} for a, b in pairwise(bounds)]


def query_batcher(wait_ms: float = 5.0, max_texts: int = 64, name: str = "queries") -> MicroBatcher:
    """A batcher of the model legs' query encoding; its key is (searcher, legs) (searcher.Searcher)."""
    return MicroBatcher(lambda key, texts: key[0].encode_models(texts, key[1]), split_rows, wait_ms, max_texts, name)
