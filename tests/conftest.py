"""Shared fixtures: the real default model, loaded once, and the demo corpus indexed once per run.

RETRIEVER_TEST_DTYPE (auto, float32 or bfloat16) sets the dtype every model fixture loads in: the suite runs
in the dtype `--dtype auto` picks on this machine, and .ci/run runs the model tests again in the other one
(bf16 is emulated on a CPU without it: slower, same results as native bf16 up to its rounding).
Tests that load a model are marked `model` (`-m model` runs them alone).
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import json
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parents[1] / "retriever" / "data" / "demo.jsonl"
TEST_DTYPE = os.environ.get("RETRIEVER_TEST_DTYPE", "auto")
MODEL_FIXTURES = {"backbone", "demo_index", "tiny_model", "tiny_backbone"}


def pytest_collection_modifyitems(items):
    for item in items:
        if MODEL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.model)


def pytest_report_header():
    return f"model dtype: {TEST_DTYPE} (RETRIEVER_TEST_DTYPE)"


@pytest.fixture(scope="session")
def backbone():
    from retriever.backbones import load_backbone

    return load_backbone("smollm2-135m", dtype=TEST_DTYPE)


@pytest.fixture(scope="session")
def demo_index(tmp_path_factory, backbone):
    from retriever import Retriever

    path = tmp_path_factory.mktemp("indexes") / "demo"
    return Retriever.build(DEMO, path, backbone=backbone)


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    """Each test gets its own default index home, so `last built` never leaks between tests."""
    monkeypatch.setenv("RETRIEVER_HOME", str(tmp_path / "home"))


def write_jsonl(path: Path, records: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, backbone):
    """A second, different model: a 2-layer random llama with the default model's tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(backbone.tokenizer), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         tie_word_embeddings=True)
    folder = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(folder)
    backbone.tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_backbone(tiny_model):
    from retriever.backbones import load_backbone

    return load_backbone(str(tiny_model), dtype=TEST_DTYPE)
