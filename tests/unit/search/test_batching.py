"""The micro-batcher (batching.py): concurrent callers share passes, get their own rows, never another key's."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import scipy.sparse as sp

from retriever.search.batching import MicroBatcher, split_rows


class Recorder:
    """A 'model' that doubles each text's number and remembers every pass it ran."""

    def __init__(self, delay: float = 0.0, fail_on: str | None = None):
        self.passes: list[tuple] = []
        self.delay, self.fail_on = delay, fail_on
        self.lock = threading.Lock()

    def __call__(self, key, texts):
        with self.lock:
            self.passes.append((key, list(texts)))
        time.sleep(self.delay)
        if self.fail_on in texts:
            raise ValueError(f"bad text {self.fail_on}")
        return {"x": np.array([[2 * int(t)] for t in texts])}


def test_concurrent_callers_share_passes_and_get_their_own_rows():
    model = Recorder(delay=0.02)
    batcher = MicroBatcher(model, split_rows, wait_ms=30, max_texts=64)
    try:
        with ThreadPoolExecutor(16) as pool:
            got = list(pool.map(lambda i: batcher("k", [str(i), str(100 + i)]), range(16)))
    finally:
        batcher.close()
    for i, result in enumerate(got):
        assert result["x"].ravel().tolist() == [2 * i, 2 * (100 + i)]
    assert len(model.passes) < 16  # some callers shared a pass
    assert sum(len(texts) for _, texts in model.passes) == 32
    assert batcher.stats()["mean_batch"] > 2


def test_a_pass_never_exceeds_max_texts_unless_one_request_is_larger():
    model = Recorder(delay=0.02)
    batcher = MicroBatcher(model, split_rows, wait_ms=20, max_texts=5)
    try:
        with ThreadPoolExecutor(12) as pool:
            list(pool.map(lambda i: batcher("k", [str(i), str(i)]), range(12)))
        assert batcher("k", [str(i) for i in range(9)])["x"].shape == (9, 1)  # alone, whole
    finally:
        batcher.close()
    sizes = [len(texts) for _, texts in model.passes]
    assert all(s <= 5 for s in sizes[:-1]) and sizes[-1] == 9


def test_requests_with_different_keys_never_share_a_pass():
    model = Recorder(delay=0.01)
    batcher = MicroBatcher(model, split_rows, wait_ms=20, max_texts=64)
    try:
        with ThreadPoolExecutor(12) as pool:
            got = list(pool.map(lambda i: (i % 3, batcher(i % 3, [str(i)])), range(24)))
    finally:
        batcher.close()
    assert all(r["x"][0, 0] % 2 == 0 for _, r in got)
    for key, texts in model.passes:
        assert all(int(t) % 3 == key for t in texts)


def test_a_failed_pass_fails_its_callers_and_the_worker_carries_on():
    model = Recorder(fail_on="7")
    batcher = MicroBatcher(model, split_rows, wait_ms=0, max_texts=64)
    try:
        with pytest.raises(ValueError, match="bad text 7"):
            batcher("k", ["7"])
        assert batcher("k", ["3"])["x"].tolist() == [[6]]
    finally:
        batcher.close()


def test_a_closed_batcher_refuses_new_work_and_finishes_queued_work():
    batcher = MicroBatcher(Recorder(delay=0.05), split_rows, wait_ms=0, max_texts=1)
    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(batcher, "k", [str(i)]) for i in range(3)]
        time.sleep(0.02)
        batcher.close()
        assert [f.result()["x"][0, 0] for f in futures] == [0, 2, 4]
    with pytest.raises(RuntimeError, match="closed"):
        batcher("k", ["1"])


def test_split_rows_cuts_arrays_and_csr_matrices_alike():
    dense = np.arange(12, dtype=np.float32).reshape(6, 2)
    rows = sp.csr_matrix(np.eye(6, dtype=np.float32))
    parts = split_rows({"dense": dense, "sparse": rows}, [1, 3, 2])
    assert [p["dense"].shape[0] for p in parts] == [1, 3, 2]
    assert np.array_equal(np.vstack([p["dense"] for p in parts]), dense)
    assert (sp.vstack([p["sparse"] for p in parts]) != rows).nnz == 0
    assert parts[1]["sparse"][0].indices.tolist() == [1]
