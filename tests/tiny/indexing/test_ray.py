"""Indexing on Ray (retriever/indexing/ray.py): on a local two-CPU cluster, started once for the module, a
build encoded by Ray workers equals the single-process build of the same corpus (same ids, same scores in
every mode, same u_1), with one worker and with two, from JSONL and from Parquet, after a worker is killed mid-job
(Ray restarts it and retries its blocks), and after the driver is killed (the same command resumes from the
committed chunks). The Parquet and killed-driver tests are marked slow (CI runs them), to keep the default
run within its ten minutes."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray

import retriever.corpus.readers as readers
import retriever.indexing.ray as distributed
from retriever import Document, Retriever
from retriever.corpus.readers import read_corpus
from retriever.index.store import documents_table
from retriever.indexing.ray import RayOptions

from ...conftest import DEMO, TEST_DTYPE

MODES = ("hybrid", "dense", "sparse", "lexical")
QUERIES = ["honey bees", "volcano eruption lava", "bicycle repair", "diabetes insulin", "the moon landing",
           "line\u2028separator"]
FILTER = {"topic": {"in": ["volcano", "bees", "moon", "coffee"]}}
CHUNK = 16


@pytest.fixture(scope="module")
def cluster():
    """A local Ray cluster of two CPUs for the module; builds in this process join it, and a CLI in a child
    process joins it by address."""
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def _corpus(n: int) -> list[Document]:
    """The demo corpus, then variants of it under new ids: titles, metadata, a document with a title only,
    and texts with characters str.splitlines() would cut a JSON line at (U+2028, U+0085)."""
    demo = list(read_corpus(DEMO))
    extra = [Document(f"v-{i}", f"Variant {i}: {d.text}" + (" line\u2028separator\x85next" if i % 7 == 0 else ""),
                      f"Title {i}" if i % 3 else "", {"topic": d.metadata.get("topic"), "n": i})
             for i, d in enumerate(demo * (n // len(demo) + 1))]
    docs = (demo + extra)[:n]
    docs[5] = Document(docs[5].id, "", "Only a title here", docs[5].metadata)
    return docs


def _jsonl(path: Path, docs: list[Document]) -> Path:
    with open(path, "w", encoding="utf-8") as fh:
        for d in docs:
            fh.write(json.dumps({"_id": d.id, "title": d.title, "text": d.text, "metadata": d.metadata},
                                ensure_ascii=False) + "\n")
    return path


def _results(r: Retriever, mode: str, filter=None) -> list[list[tuple]]:
    return [[(h.id, h.score, tuple(sorted(h.scores.items()))) for h in r.search(q, k=12, mode=mode, explain=False,
                                                                                filter=filter)]
            for q in QUERIES]


def _assert_same_index(built: Retriever, reference: Retriever) -> None:
    assert built.searcher.ids == reference.searcher.ids
    assert built.document(built.searcher.ids[5]) == reference.document(reference.searcher.ids[5])
    np.testing.assert_array_equal(built.searcher.leg("sparse").projector.u1,
                                  reference.searcher.leg("sparse").projector.u1)
    for mode in MODES:
        for filter in (None, FILTER):
            got, want = _results(built, mode, filter), _results(reference, mode, filter)
            assert [[h[0] for h in q] for q in got] == [[h[0] for h in q] for q in want], (mode, filter)
            for q_got, q_want in zip(got, want, strict=True):
                for h_got, h_want in zip(q_got, q_want, strict=True):
                    assert h_got[1] == pytest.approx(h_want[1], rel=1e-6, abs=1e-7), (mode, filter)
                    assert dict(h_got[2]) == pytest.approx(dict(h_want[2]), rel=1e-6, abs=1e-7), (mode, filter)
    for field in ("documents", "documents_empty", "documents_truncated", "tokens_embedded", "lexical_documents",
                  "lexical_words"):
        assert built.manifest[field] == reference.manifest[field], field


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return _jsonl(tmp_path_factory.mktemp("ray-corpus") / "corpus.jsonl", _corpus(90))


@pytest.fixture(scope="module")
def reference(tmp_path_factory, corpus, tiny_backbone) -> Retriever:
    """The single-process build the Ray builds must equal."""
    return Retriever.build(corpus, tmp_path_factory.mktemp("ray-ref") / "index", backbone=tiny_backbone,
                           chunk_size=CHUNK, max_tokens=48)


def _ray_build(corpus: Path, target: Path, tiny_model: Path, **options) -> Retriever:
    return Retriever.build(corpus, target, model=str(tiny_model), dtype=TEST_DTYPE, chunk_size=CHUNK,
                           max_tokens=48, ray=RayOptions(**{"batch_size": 8, **options}))


@pytest.mark.parametrize("workers", [1, 2])
def test_a_ray_build_equals_the_single_process_build(cluster, corpus, reference, tiny_model, tmp_path,
                                                     monkeypatch, workers):
    monkeypatch.setattr(readers, "SPLIT_BYTES", 4096)  # several read tasks, cut inside lines
    assert len(distributed.CorpusSource(str(corpus), distributed.Fields()).get_read_tasks(1)) > 3
    built = _ray_build(corpus, tmp_path / "index", tiny_model, workers=workers, threads=1)
    _assert_same_index(built, reference)
    assert built.manifest["resumed_documents"] == 0


@pytest.mark.slow
def test_parquet_and_documents_from_python(cluster, corpus, reference, tiny_backbone, tiny_model, tmp_path):
    docs = list(read_corpus(corpus))
    table = documents_table(docs).drop_columns(["metadata"])
    table = table.append_column("topic", pa.array([d.metadata.get("topic") for d in docs]))
    pq.write_table(table, tmp_path / "corpus.parquet", row_group_size=20)  # five row groups: five read tasks
    built = _ray_build(tmp_path / "corpus.parquet", tmp_path / "ray", tiny_model, workers=2, threads=1)
    local = Retriever.build(tmp_path / "corpus.parquet", tmp_path / "local", backbone=tiny_backbone,
                            chunk_size=CHUNK, max_tokens=48)
    _assert_same_index(built, local)
    from_python = Retriever.build(docs, tmp_path / "from-python", model=str(tiny_model), dtype=TEST_DTYPE,
                                  chunk_size=CHUNK, max_tokens=48, ray=RayOptions(workers=2, threads=1, batch_size=8))
    _assert_same_index(from_python, reference)


def _encoder_pids() -> list[int]:
    """The processes of this build's encoder actors (Ray titles an actor's process by its class)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and b"BlockEncoder" in (proc / "cmdline").read_bytes():
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def _committed(target: Path) -> int:
    partial = target.parent / f".{target.name}.partial"
    return len(list(partial.glob("chunk-*/chunk.json"))) if partial.exists() else 0


def test_a_worker_killed_mid_job_is_restarted_and_its_blocks_retried(cluster, corpus, reference, tiny_model,
                                                                     tmp_path, monkeypatch):
    """SIGKILL one encoder actor once the first chunk is committed and before the last: Ray restarts the
    actor and retries the block it held; the index is still the single-process one."""
    killed: list[tuple[int, int]] = []
    target = tmp_path / "index"

    class Paced(distributed.BlockEncoder):  # defined here, so Ray ships it to the workers by value
        def __call__(self, block):  # a call takes a while, so that the kill lands inside the job
            time.sleep(0.2)
            return distributed.BlockEncoder.__call__(self, block)

    monkeypatch.setattr(distributed, "BlockEncoder", Paced)
    monkeypatch.setattr(readers, "SPLIT_BYTES", 2048)  # many blocks: chunks arrive one by one, not at the end

    def killer():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            pids = _encoder_pids()
            if pids and _committed(target) >= 1:
                killed.append((pids[0], _committed(target)))
                os.kill(pids[0], signal.SIGKILL)
            time.sleep(0.02)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    built = _ray_build(corpus, target, tiny_model, workers=2, threads=1, batch_size=4)
    thread.join()
    assert killed, "no encoder actor was found to kill"
    assert killed[0][1] < -(-90 // CHUNK), "the kill came after the last chunk: nothing was left to retry"
    _assert_same_index(built, reference)


# The CLI with each worker call paced as in the test above (the class is defined in __main__, so Ray ships it).
PACED_CLI = """
import sys, time
import retriever.indexing.ray as distributed
class Paced(distributed.BlockEncoder):
    def __call__(self, block):
        time.sleep(0.2)
        return distributed.BlockEncoder.__call__(self, block)
distributed.BlockEncoder = Paced
import retriever.corpus.readers as readers
readers.SPLIT_BYTES = 2048  # many read blocks, so chunks reach the driver one by one, not all at the end
from retriever.cli.main import main
sys.argv[0] = "retriever"
main()
"""


@pytest.mark.slow
def test_a_killed_driver_resumes_from_its_committed_chunks(cluster, corpus, reference, tiny_model, tmp_path):
    """`retriever index --ray-address` in a child process, SIGKILLed once two chunks are committed; the same
    command again encodes only the rest and gives the single-process index."""
    target = tmp_path / "index"
    command = [sys.executable, "-c", PACED_CLI, "index", str(corpus), "--index", str(target), "--model",
               str(tiny_model), "--dtype", TEST_DTYPE, "--dense-model", "none", "--chunk-size", str(CHUNK),
               "--max-tokens", "48", "--ray-address", cluster, "--workers", "1", "--threads", "1", "--quiet",
               "--json"]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300  # Ray's start and the model's load first: minutes on a busy 2-core machine
    while _committed(target) < 2 and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert child.poll() is None, child.communicate()[1].decode()[-2000:]
    assert _committed(target) >= 2, "no two chunks were committed within the deadline"
    child.kill()
    child.wait()
    killed_stderr = child.stderr.read().decode()[-2000:]
    assert not target.exists() and 2 <= _committed(target) < -(-90 // CHUNK), (_committed(target), killed_stderr)
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    manifest = json.loads(done.stdout)
    assert manifest["resumed_documents"] >= 2 * CHUNK
    _assert_same_index(Retriever.load(target, backbone=reference.backbone), reference)


def test_a_ray_build_of_passages_equals_the_single_process_build(cluster, corpus, tiny_backbone, tiny_model, tmp_path,
                                                                 monkeypatch):
    """Workers cut their blocks' documents into passages with the LLM's tokenizer; the driver cuts chunks at
    document boundaries, so chunks, resumes and the index are those of a build without Ray."""
    monkeypatch.setattr(readers, "SPLIT_BYTES", 4096)
    options = {"passage_tokens": 12, "passage_overlap": 4}
    reference = Retriever.build(corpus, tmp_path / "ref", backbone=tiny_backbone, chunk_size=CHUNK, max_tokens=48,
                                **options)
    built = Retriever.build(corpus, tmp_path / "index", model=str(tiny_model), dtype=TEST_DTYPE, chunk_size=CHUNK,
                            max_tokens=48, ray=RayOptions(batch_size=8, threads=1), **options)
    assert built.manifest["passages"] == reference.manifest["passages"]
    assert built.manifest["documents"] > built.manifest["passages"]["documents"] == 90
    assert built.searcher.documents.equals(reference.searcher.documents)
    _assert_same_index(built, reference)
    for query in QUERIES:
        got = [(h.id, h.passage) for h in built.search(query, k=8)]
        assert got == [(h.id, h.passage) for h in reference.search(query, k=8)]
