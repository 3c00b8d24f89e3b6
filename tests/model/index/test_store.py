"""The on-disk index: model checks, interrupted builds, damaged files, missing indexes."""

from __future__ import annotations

import numpy as np
import pytest

from retriever import BadIndexError, Retriever

from ...conftest import DEMO


def test_index_refuses_another_model(tmp_path, tiny_backbone, backbone, tiny_model, demo_index):
    tiny_index = Retriever.build(DEMO, tmp_path / "tiny", backbone=tiny_backbone)
    with pytest.raises(BadIndexError, match="was built with model"):
        Retriever.load(tiny_index.path, backbone=backbone)
    with pytest.raises(BadIndexError, match="was built with model 'smollm2-135m'"):
        Retriever.load(demo_index.path, model=str(tiny_model))
    with pytest.raises(BadIndexError, match="was built with method 'prompteol', not 'mean'"):
        Retriever.load(tiny_index.path, backbone=tiny_backbone, method="mean")
    assert Retriever.load(tiny_index.path, backbone=tiny_backbone, method="prompteol").search("bees", k=1)


def test_index_files_load_without_pickle(demo_index):
    for npy in demo_index.path.rglob("*.npy"):
        np.load(npy, allow_pickle=False)
    names = {p.suffix for p in demo_index.path.rglob("*") if p.is_file()}
    assert names <= {".npy", ".json", ".parquet", ".faiss"}


