"""Verified indexes: checksums for every file, structure checks on load, `retriever verify` for all of it."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from retriever import BadIndexError, Retriever, verify
from retriever.index.store import file_sha256, seal

from ...conftest import DEMO

SEG = "seg-000001"  # a build writes one segment


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_backbone):
    path = tmp_path_factory.mktemp("verify") / "idx"
    Retriever.build(DEMO, path, backbone=tiny_backbone)
    return path


@pytest.fixture
def index(built, tmp_path):
    copy = tmp_path / "idx"
    shutil.copytree(built, copy)
    return copy


def _flip(path, at: float = 0.6) -> None:
    data = bytearray(path.read_bytes())
    data[int(len(data) * at)] ^= 0x40
    path.write_bytes(bytes(data))


def _failed(report) -> dict:
    return {c["check"]: c["detail"] for c in report["checks"] if not c["ok"]}


def test_a_fresh_index_verifies_and_records_every_checksum(index):
    manifest = json.loads((index / "manifest.json").read_text())
    on_disk = {str(p.relative_to(index)) for p in index.rglob("*") if p.is_file()}
    assert set(manifest["sha256"]) == set(manifest["files"]) == on_disk - {"manifest.json"}
    report = verify(index)
    assert report["ok"], _failed(report)
    assert {"documents", "dense leg", "key-token leg", "lexical leg"} <= {c["check"] for c in report["checks"]}


@pytest.mark.parametrize("name", ["dense.npy", "sparse_rows_data.npy", "documents.parquet", "lexical_vocab.json"])
def test_verify_names_an_altered_file(index, name):
    _flip(index / SEG / name)
    assert "sha256 differs" in _failed(verify(index))[f"{SEG}/{name}"]


def test_load_refuses_an_altered_faiss_file_before_faiss_reads_it(index, tiny_backbone):
    _flip(index / SEG / "dense.faiss", at=0.01)
    with pytest.raises(BadIndexError, match=r"dense\.faiss: its checksum does not match"):
        Retriever.load(index, backbone=tiny_backbone)


def test_load_refuses_out_of_range_postings(index, tiny_backbone):
    indices = np.load(index / SEG / "lexical_tf_indices.npy")
    indices[len(indices) // 2] = 10**6  # a document id far past the end, same file size
    np.save(index / SEG / "lexical_tf_indices.npy", indices)
    with pytest.raises(BadIndexError, match=r"lexical_tf_\*\.npy: column ids out of range"):
        Retriever.load(index, backbone=tiny_backbone)
    assert f"{SEG}/lexical_tf_indices.npy" in _failed(verify(index))


def test_load_refuses_a_damaged_manifest_and_verify_reports_it(index, tiny_backbone):
    manifest = json.loads((index / "manifest.json").read_text())
    manifest["settings"]["weights"]["lexical"] = 0.5  # a plausible value, but not the one written
    (index / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BadIndexError, match="checksum does not match its content"):
        Retriever.load(index, backbone=tiny_backbone)
    assert not verify(index)["ok"]
    del manifest["settings"]
    (index / "manifest.json").write_text(json.dumps(seal(manifest)))  # damaged, yet consistently sealed
    with pytest.raises(BadIndexError, match="field 'settings' is missing"):
        Retriever.load(index, backbone=tiny_backbone)
    (index / "manifest.json").write_text("{not json")
    with pytest.raises(BadIndexError, match="unreadable manifest"):
        Retriever.load(index, backbone=tiny_backbone)


def test_verify_checks_structure_when_bytes_match(index):
    """A consistent-looking but wrong index (counts shuffled): checksums agree, structure does not."""
    counts = np.load(index / SEG / "lexical_tf_data.npy")
    counts[np.argmax(counts)], counts[np.argmin(counts)] = counts.min(), counts.max()
    np.save(index / SEG / "lexical_tf_data.npy", counts)
    manifest = json.loads((index / "manifest.json").read_text())
    manifest["sha256"][f"{SEG}/lexical_tf_data.npy"] = file_sha256(index / SEG / "lexical_tf_data.npy")
    (index / "manifest.json").write_text(json.dumps(seal(manifest)))
    assert "lengths" in _failed(verify(index))["lexical leg"]
