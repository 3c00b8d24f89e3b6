"""Shared fixtures: the real default model, loaded once, and the demo corpus indexed once per run.

The tests come in three tiers, one folder each, each runnable alone (`pytest tests/unit`, or `-m unit`):
unit/ needs no model at all (fusion, sparse math, store, corpus), tiny/ builds tiny random models in the
test (seconds; the default model's tokenizer only), model/ loads the real default model. A test that
loads more than its tier allows fails (tier_guard), so a tier's promise holds.

RETRIEVER_TEST_DTYPE (auto, float32 or bfloat16) sets the dtype every model fixture loads in: the suite runs
in the dtype `--dtype auto` picks on this machine, and .ci/run runs the tiny and model tiers again in the
other one (bf16 is emulated on a CPU without it: slower, same results as native bf16 up to its rounding).
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]  # the checkout
SHARED = ROOT.parent / "shared"  # ../shared beside it: data and docs
DEMO = ROOT / "retriever" / "data" / "demo.jsonl"
TEST_DTYPE = os.environ.get("RETRIEVER_TEST_DTYPE", "auto")
TIERS = ("unit", "tiny", "model")


def _tier(item) -> str:
    """The tier of a test: the folder right under tests/ (each tier mirrors the package's rooms inside)."""
    parts = Path(str(item.fspath)).resolve().relative_to(Path(__file__).resolve().parent).parts
    return parts[0] if len(parts) > 1 else ""


def pytest_collection_modifyitems(items):
    for item in items:
        if _tier(item) in TIERS:
            item.add_marker(getattr(pytest.mark, _tier(item)))


@pytest.fixture(autouse=True)
def tier_guard(request, monkeypatch):
    """Within this process: no model at all in unit/, no preset (the real weights) in tiny/ (where a new
    index's dense leg is the tiny LLM's own: tests/tiny/conftest.py)."""
    import retriever.models.backbones as backbones
    import retriever.models.presets as presets
    import retriever.models.sentence as sentence

    tier, resolve, locate = _tier(request.node), backbones.resolve, sentence.locate

    def guarded(spec, *args, **kwargs):
        if tier == "unit" or (tier == "tiny" and spec in presets.PRESETS):
            pytest.fail(f"a {tier} test loaded the model {spec!r}: move it to the tier it needs")
        return resolve(spec, *args, **kwargs)

    def guarded_dense(spec):
        if tier == "unit" or (tier == "tiny" and spec in presets.SENTENCE_PRESETS):
            pytest.fail(f"a {tier} test loaded the dense model {spec!r}: move it to the tier it needs")
        return locate(spec)

    monkeypatch.setattr(backbones, "resolve", guarded)
    monkeypatch.setattr(sentence, "locate", guarded_dense)


@pytest.fixture
def no_model(monkeypatch):
    """Any model load fails the test (tests/helpers/models.py)."""
    from .helpers.models import forbid_models

    forbid_models(monkeypatch)


def pytest_report_header():
    return f"model dtype: {TEST_DTYPE} (RETRIEVER_TEST_DTYPE)"


@pytest.fixture(scope="session")
def backbone():
    from retriever.models.backbones import load_backbone

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
def tokenizer():
    """The default model's tokenizer alone (no weights): what the tiny random models are built with."""
    from transformers import AutoTokenizer

    from retriever.models.backbones import DEFAULT_MODEL, resolve

    return AutoTokenizer.from_pretrained(resolve(DEFAULT_MODEL, quiet=True)[2])


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, tokenizer):
    """A second, different model: a 2-layer random llama with the default model's tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         tie_word_embeddings=True)
    folder = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_backbone(tiny_model):
    from retriever.models.backbones import load_backbone

    return load_backbone(str(tiny_model), dtype=TEST_DTYPE)


PAIRS = [("A man is playing a guitar.", "A man plays the guitar.", 4.8),
         ("A dog runs in the park.", "A dog is running on grass.", 4.0),
         ("A woman slices an onion.", "Someone is cutting vegetables.", 3.1),
         ("Kids play football.", "The stock market fell sharply.", 0.2),
         ("A cat sleeps on a sofa.", "A plane takes off at night.", 0.1),
         ("He said \"hello\" twice.", "He greeted them.", 2.5)]


@pytest.fixture
def sts_file(tmp_path):
    """A small STS file with a header row, as STS-B ships."""
    path = tmp_path / "pairs.tsv"
    path.write_text("sentence1\tsentence2\tscore\n" + "".join(f"{a}\t{b}\t{s}\n" for a, b, s in PAIRS))
    return path
