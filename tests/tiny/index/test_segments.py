"""A segmented index (segments.py): after any sequence of builds, adds, deletes, upserts and optimizes,
search equals a fresh single-segment build of the final corpus with u_1 held fixed, in every mode, with
and without a filter; an add writes only its segment and the manifest; a writer killed at any point
leaves the old index or the new one, and the next writer sweeps what it left."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from retriever import Document, Retriever
from retriever.cli.main import main
from retriever.corpus.readers import read_corpus
from retriever.indexing.indexer import build_index
from retriever.settings import IndexSettings

from ...conftest import DEMO, TEST_DTYPE

MODES = ("hybrid", "dense", "sparse", "lexical")
QUERIES = ["honey bees", "volcano eruption lava", "bicycle repair", "diabetes insulin", "the moon landing",
           "new document about tides"]
FILTER = {"topic": {"in": ["volcano", "bees", "moon", "coffee", "tides"]}}
WORKER = Path(__file__).resolve().parents[2] / "helpers" / "crash_writer.py"


def _pool() -> list[Document]:
    """The demo corpus, then documents made from it under new ids (so adds bring words of their own)."""
    demo = list(read_corpus(DEMO))
    extra = [Document(f"new-{i}", f"New document {i} about tides and {d.text.split('.')[0].lower()}.",
                      f"Note {i}", {"topic": "tides" if i % 2 else d.metadata.get("topic")})
             for i, d in enumerate(demo[:16])]
    return demo + extra


def _results(r: Retriever, mode: str, filter=None) -> list[list[tuple]]:
    return [[(h.id, h.score, tuple(sorted(h.scores.items()))) for h in r.search(q, k=12, mode=mode, explain=False,
                                                                                filter=filter)]
            for q in QUERIES]


def _assert_equal(r: Retriever, fresh: Retriever) -> None:
    assert r.searcher.ids == fresh.searcher.ids
    for mode in MODES:
        assert _results(r, mode) == _results(fresh, mode), mode
        assert _results(r, mode, FILTER) == _results(fresh, mode, FILTER), (mode, "filtered")


def _fresh(folder: Path, backbone, docs: list[Document], r: Retriever) -> Retriever:
    settings = IndexSettings.from_dict(r.manifest["settings"])
    build_index(docs, folder, backbone, settings, u1=r.searcher.leg("sparse").projector.u1, overwrite=True)
    return Retriever.load(folder, backbone=backbone)


def _step(r: Retriever, live: list[Document], waiting: list[Document], rng: random.Random, op: str | None) -> str:
    """One change (random when op is None), made to the index and to the list of documents it should hold."""
    op = op or rng.choice(["add", "add", "delete", "upsert", "optimize"][0 if waiting else 2:])
    if op == "add":
        new = [waiting.pop(0) for _ in range(min(len(waiting), rng.randint(1, 6)))]
        r.add(new)
        live.extend(new)
    elif op == "delete":
        gone = rng.sample([d.id for d in live], rng.randint(1, 4))
        r.delete(gone)
        live[:] = [d for d in live if d.id not in gone]
    elif op == "upsert":
        old = rng.choice(live)
        new = Document(old.id, f"Rewritten: honey and {old.text[:60]}", old.title, old.metadata)
        r.add([new], upsert=True)
        live[:] = [d for d in live if d.id != old.id] + [new]
    else:
        r.optimize()
        assert len(r.manifest["segments"]) == 1 and r.manifest["segments"][0]["deleted"] == 0
    return op


@pytest.mark.parametrize(("seed", "dense_kind"), [(1, "flat"), (2, "flat"), (3, "hnsw")])
def test_any_sequence_of_changes_searches_as_a_fresh_build(tmp_path, tiny_backbone, seed, dense_kind):
    rng = random.Random(seed)
    pool = _pool()
    rng.shuffle(pool)
    start = rng.randint(8, 20)
    r = Retriever.build(pool[:start], tmp_path / "idx", backbone=tiny_backbone, dense={"kind": dense_kind})
    live, waiting, done = pool[:start], pool[start:], []
    rng.shuffle(first := ["add", "delete", "upsert"])  # each kind at least once, then any
    for i in range(7):
        done.append(_step(r, live, waiting, rng, first[i] if i < len(first) else None))
        if len(done) in (3, 7):
            _assert_equal(r, _fresh(tmp_path / "fresh", tiny_backbone, live, r))
    assert r.manifest["generation"] >= 1 + len([op for op in done if op != "optimize"])
    _assert_equal(Retriever.load(r.path, backbone=tiny_backbone), _fresh(tmp_path / "fresh", tiny_backbone, live, r))
    r.optimize()
    _assert_equal(r, _fresh(tmp_path / "fresh", tiny_backbone, live, r))
    assert sorted(p.name for p in r.path.iterdir()) == ["manifest.json", r.manifest["segments"][0]["name"]]


def test_many_segments_with_deletions_in_each(tmp_path, tiny_backbone):
    """Five segments, documents deleted from each, one segment emptied entirely (it leaves the index)."""
    pool = _pool()
    r = Retriever.build(pool[:10], tmp_path / "idx", backbone=tiny_backbone)
    for start in range(10, 50, 10):
        r.add(pool[start:start + 10])
    assert len(r.manifest["segments"]) == 5
    gone = [pool[i].id for i in (0, 9, 15, 33, 47)] + [d.id for d in pool[20:30]]
    r.delete(gone)
    assert len(r.manifest["segments"]) == 4 and r.manifest["documents"] == len(pool[:50]) - len(gone)
    live = [d for d in pool[:50] if d.id not in gone]
    _assert_equal(r, _fresh(tmp_path / "fresh", tiny_backbone, live, r))
    assert r.manifest["lexical_documents"] == len(live)
    report = CliRunner().invoke(main, ["verify", "--index", str(r.path), "--json"])
    assert report.exit_code == 0 and json.loads(report.output)["ok"], report.output


def _files(folder: Path) -> dict[str, tuple[int, str]]:
    return {str(p.relative_to(folder)): (p.stat().st_ino, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in folder.rglob("*") if p.is_file()}


def test_an_add_writes_only_its_segment_and_the_manifest(tmp_path, tiny_backbone):
    pool = _pool()
    r = Retriever.build(pool[:30], tmp_path / "idx", backbone=tiny_backbone)
    before = _files(r.path)
    r.add(pool[30:40])
    after = _files(r.path)
    written = {name for name in after if after[name] != before.get(name)}
    assert {name.split("/")[0] for name in written} == {"manifest.json", "seg-000002"}
    assert set(before) <= set(after)  # nothing of the old version was rewritten or removed
    r.delete([pool[1].id])
    after_delete = _files(r.path)
    assert {n for n in after_delete if after_delete[n] != after.get(n)} == {"manifest.json",
                                                                             "seg-000001.deleted-000003.npy"}


def test_optimize_cli_and_an_index_of_format_1(tmp_path, tiny_backbone):
    """An index written before segments searches as it did; its first change rewrites it as segments."""
    fixture = Path(__file__).resolve().parents[2] / "fixtures" / "v1-lexical"
    shutil.copytree(fixture, tmp_path / "old")
    r = Retriever.load(tmp_path / "old")
    before = _results(r, "lexical")
    out = CliRunner().invoke(main, ["optimize", str(tmp_path / "old")])
    assert out.exit_code == 0, out.output
    assert "1 segment -> 1" in out.output
    r = Retriever.load(tmp_path / "old")
    assert r.manifest["format_version"] == 2 and len(r.manifest["segments"]) == 1
    for got, want in zip(_results(r, "lexical"), before, strict=True):
        assert [h[0] for h in got] == [h[0] for h in want]
        assert [h[1] for h in got] == pytest.approx([h[1] for h in want], rel=1e-5)
    assert sorted(p.name for p in r.path.iterdir()) == ["manifest.json", "seg-000001"]
    again = CliRunner().invoke(main, ["optimize", str(tmp_path / "old"), "--json"])
    assert again.exit_code == 0 and json.loads(again.output)["generation"] == r.manifest["generation"]


# --- crash safety ---------------------------------------------------------------------------------------


def _worker(op: str, index: Path, kill_at: int, tiny_model: Path, docs: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(WORKER), op, str(index), str(kill_at), str(tiny_model), TEST_DTYPE,
                           str(docs)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})


def _state(folder: Path, backbone) -> list:
    """What a version is: its generation and segments (optimize changes only those), ids and results."""
    r = Retriever.load(folder, backbone=backbone)
    return [r.manifest["generation"], [(s["name"], s["deleted"]) for s in r.manifest["segments"]], r.searcher.ids,
            *(_results(r, mode) for mode in MODES)]


def _referenced(folder: Path) -> set[str]:
    manifest = json.loads((folder / "manifest.json").read_text())
    return {name.split("/")[0] for name in manifest["files"]} | {"manifest.json"}


@pytest.fixture(scope="module")
def crash_base(tmp_path_factory, tiny_backbone):
    """A two-segment index with a deletion, and the documents the add adds."""
    root = tmp_path_factory.mktemp("crash")
    pool = _pool()
    r = Retriever.build(pool[:25], root / "base", backbone=tiny_backbone)
    r.add(pool[25:37])
    r.delete([pool[2].id])
    docs = root / "more.jsonl"
    docs.write_text("".join(json.dumps({"_id": d.id, "title": d.title, "text": d.text, "metadata": d.metadata}) + "\n"
                            for d in [*pool[37:], Document(pool[5].id, "Upserted text about honey.", "")]))
    return root, docs


SPREAD = [pytest.param(op, 2, id=f"{op}-sample") for op in ("add", "delete", "optimize")] + [
    pytest.param(op, None, id=f"{op}-every-call", marks=pytest.mark.slow) for op in ("add", "delete", "optimize")]


@pytest.mark.parametrize(("op", "sample"), SPREAD)
def test_a_writer_killed_at_any_point_leaves_the_old_or_the_new_index(crash_base, tmp_path, tiny_backbone,
                                                                      tiny_model, op, sample):
    """SIGKILL at the n-th file-system call of the change (each rename, replace, fsync, unlink, mkdir,
    rmdir, np.save and rmtree): the first, the last and two seeded others (every one of them
    in the slow run): the index opens, and it is the old version or the new one, never a mix; the same
    change run again gives the new one and leaves nothing the manifest does not name."""
    root, docs = crash_base
    old = _state(root / "base", tiny_backbone)
    shutil.copytree(root / "base", tmp_path / "whole")
    counted = _worker(op, tmp_path / "whole", 0, tiny_model, docs)
    assert counted.returncode == 0, counted.stderr
    total = json.loads(counted.stdout.splitlines()[-1])["calls"]
    new = _state(tmp_path / "whole", tiny_backbone)
    assert new != old and total > 5
    inner = range(2, total)
    points = sorted({1, total, *(inner if sample is None else random.Random(op).sample(inner, sample))})
    seen = set()
    for n in points:
        folder = tmp_path / f"killed-{n}"
        shutil.copytree(root / "base", folder)
        killed = _worker(op, folder, n, tiny_model, docs)
        assert killed.returncode == -9, (n, killed.returncode, killed.stderr[-2000:])
        state = _state(folder, tiny_backbone)
        assert state in (old, new), f"killed at call {n} of {total}: neither the old index nor the new"
        seen.add("old" if state == old else "new")
        if state == old:  # the change, run again, completes and sweeps what the killed one left
            again = _worker(op, folder, 0, tiny_model, docs)
            assert again.returncode == 0, again.stderr
            assert _state(folder, tiny_backbone) == new
            assert {p.name for p in folder.iterdir()} == _referenced(folder)
    assert seen == {"old", "new"}  # the spread reached both sides of the publishing rename


def test_storing_a_fusion_keeps_an_add_that_landed_after_loading(tmp_path, tiny_backbone):
    """set_fusion rewrites the manifest on disk as it is now (under the writer lock), not as it was loaded:
    a tune in one process must not drop the segment another process added meanwhile."""
    pool = _pool()
    tuner = Retriever.build(pool[:20], tmp_path / "idx", backbone=tiny_backbone)
    Retriever.load(tmp_path / "idx", backbone=tiny_backbone).add(pool[20:25])
    tuner.set_fusion("rrf")
    reloaded = Retriever.load(tmp_path / "idx", backbone=tiny_backbone)
    assert reloaded.manifest["documents"] == 25 and len(reloaded.manifest["segments"]) == 2
    assert reloaded.manifest["settings"]["fusion"] == "rrf" and tuner.searcher.settings.fusion == "rrf"
