"""Trained sentence encoders (BERT-style, sentence-transformers folders) as the source of the dense leg.

A training-free LLM embedding is weak as a dense retriever on a 135M model (docs/quality.md); a small
trained encoder is strong and cheap. It only ever feeds the dense leg: the key-token leg needs an LLM's
vocabulary and keeps coming from the LLM.

The folder's own configuration decides everything that changes the vectors, as sentence-transformers
reads it: modules.json (is there a Normalize module), the pooling module's config.json (mean, CLS, max or
mean-sqrt-len), sentence_bert_config.json (max_seq_length, do_lower_case). A plain BERT-style folder with
none of them gets mean pooling over the model's own length limit. No remote code, no hub: transformers
loads the folder with trust_remote_code=False.

Texts run left-padded through the engine's per-text attention (attention.py) with positions counted over
real tokens, padded to the row counts of invariance.py: a text's vector is the same alone and in any batch.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ModelError
from .encoders.forward import EncodeStats
from .invariance import left_padded, padded_width
from .presets import SENTENCE_PRESETS

BATCH_TOKENS, MAX_BATCH = 4096, 64  # padded tokens and texts per pass on a CPU


def preset_folder(name: str) -> Path:
    preset = SENTENCE_PRESETS[name]
    spec = importlib.util.find_spec(preset.module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"dense model preset '{name}' is not installed; run: retriever models install {name}")
    return Path(next(iter(spec.submodule_search_locations))) / preset.folder


def locate(spec: str) -> tuple[str, Path]:
    """(display name, folder) of a dense model: a preset by name, or a local folder."""
    if spec in SENTENCE_PRESETS:
        return spec, preset_folder(spec)
    path = Path(spec).expanduser()
    if not (path / "config.json").is_file():
        raise ModelError(f"unknown dense model '{spec}': not a preset ({', '.join(SENTENCE_PRESETS)}) "
                         "or a model folder with a config.json")
    return str(path.resolve()), path


def folder_fingerprint(folder: Path) -> str:
    """sha256 over the files that decide the vectors: configs, tokenizer and weights."""
    from .backbones import file_sha256

    names = ["config.json", "modules.json", "sentence_bert_config.json", "tokenizer.json", "vocab.txt"]
    files = [folder / n for n in names if (folder / n).is_file()]
    for pattern in ("*.safetensors", "*.bin", "*_Pooling/config.json"):
        files += sorted(folder.glob(pattern))
    return hashlib.sha256("|".join(f"{f.relative_to(folder)}:{file_sha256(f)}" for f in files).encode()).hexdigest()


def _read_json(path: Path) -> dict | list | None:
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: unreadable ({exc})") from None


@dataclass(frozen=True)
class SentenceConfig:
    """What the folder says about pooling, normalisation and length."""

    pooling: str = "mean"
    normalize: bool = False
    max_tokens: int = 512
    lowercase: bool = False

    @classmethod
    def read(cls, folder: Path, model_limit: int) -> SentenceConfig:
        modules = _read_json(folder / "modules.json") or []
        pooling, normalize = "mean", False
        for module in modules:
            kind = str(module.get("type", ""))
            if kind.endswith("Normalize"):
                normalize = True
            elif kind.endswith("Pooling"):
                pooling = _pooling(folder / module.get("path", "") / "config.json")
            elif not kind.endswith("Transformer"):
                raise ModelError(f"{folder / 'modules.json'}: module '{kind}' is not supported "
                                 "(Transformer, Pooling and Normalize are)")
        st = _read_json(folder / "sentence_bert_config.json") or {}
        limit = int(st.get("max_seq_length") or model_limit)
        return cls(pooling, normalize, min(limit, model_limit), bool(st.get("do_lower_case", False)))


POOLING_KEYS = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls",
                "pooling_mode_max_tokens": "max", "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len"}


def _pooling(path: Path) -> str:
    """The one pooling mode a sentence-transformers Pooling config turns on."""
    config = _read_json(path) or {}
    on = [k for k, v in config.items() if k.startswith("pooling_mode_") and v]
    if len(on) != 1 or on[0] not in POOLING_KEYS:
        raise ModelError(f"{path}: exactly one of {', '.join(POOLING_KEYS)} must be on, found {on or 'none'}")
    return POOLING_KEYS[on[0]]


class SentenceEncoder:
    """A trained encoder's forward pass and pooling: texts in, one float32 vector per text out."""

    def __init__(self, name: str, digest: str, model: torch.nn.Module, tokenizer, config: SentenceConfig,
                 device: torch.device, dtype: torch.dtype):
        self.name, self.fingerprint, self.model, self.tokenizer = name, digest, model, tokenizer
        self.config, self.device, self.dtype = config, device, dtype
        self.lock = threading.RLock()  # hooks-free, but the tokenizer's truncation state is shared
        self.dimension = int(model.config.hidden_size)
        self.pad_id = int(tokenizer.pad_token_id or 0)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "fingerprint": self.fingerprint, "dtype": str(self.dtype).removeprefix("torch."),
                "dimension": self.dimension, "pooling": self.config.pooling, "normalize": self.config.normalize,
                "max_tokens": self.config.max_tokens}

    def token_ids(self, texts: Sequence[str]) -> tuple[list[list[int]], list[bool]]:
        """[CLS] text [SEP] within the length limit, as sentence-transformers tokenizes; and whether the
        limit cut each text (the rest of a cut text comes back as overflow rows, which only say so)."""
        texts = [t.lower() if self.config.lowercase else t for t in texts]
        out = self.tokenizer(list(texts), truncation=True, max_length=self.config.max_tokens,
                             return_overflowing_tokens=True)
        samples = out.get("overflow_to_sample_mapping")
        if samples is None:  # a slow (Python) tokenizer: no overflow rows, a count of cut tokens instead
            cut = out.get("num_truncated_tokens") or [0] * len(texts)
            return out.input_ids, [n > 0 for n in cut]
        first = [i for i, sample in enumerate(samples) if i == 0 or samples[i - 1] != sample]
        overflowed = {sample for i, sample in enumerate(samples) if i and samples[i - 1] == sample}
        return [out.input_ids[i] for i in first], [i in overflowed for i in range(len(texts))]

    def encode(self, texts: Sequence[str], on_batch: Callable[[int, int], None] | None = None) -> np.ndarray:
        """Pooled (and, where the folder says so, normalised) vectors, in input order."""
        return self.encode_counted(texts, on_batch)[0]

    def encode_counted(self, texts: Sequence[str],
                       on_batch: Callable[[int, int], None] | None = None) -> tuple[np.ndarray, EncodeStats]:
        """encode, and what it ran: texts, real tokens, texts cut at max_tokens (a build reports them)."""
        with self.lock:
            ids, truncated = self.token_ids(texts)
            out = np.zeros((len(ids), self.dimension), np.float32)
            order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
            start = 0
            while start < len(order):
                width = len(ids[order[start]])
                size = max(1, min(MAX_BATCH, BATCH_TOKENS // max(width, 1)))
                group = order[start:start + size]
                out[group] = self._forward([ids[i] for i in group])
                if on_batch:
                    on_batch(len(group), sum(len(ids[i]) for i in group))
                start += size
            return out, EncodeStats(texts=len(ids), tokens=sum(map(len, ids)), truncated=sum(truncated))

    def _forward(self, inputs: list[list[int]]) -> np.ndarray:

        width = padded_width(len(inputs), max(len(x) for x in inputs))
        ids, mask, positions = left_padded(inputs, width, self.pad_id)
        with torch.inference_mode():
            states = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                                position_ids=positions.to(self.device),
                                token_type_ids=torch.zeros_like(ids).to(self.device)).last_hidden_state
        rows = [self._pool(states[r, width - len(seq):].float()) for r, seq in enumerate(inputs)]
        pooled = torch.stack(rows)
        if self.config.normalize:
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
        return pooled.cpu().numpy()

    def _pool(self, states: torch.Tensor) -> torch.Tensor:
        """One text's token states (its own positions only) pooled in fp32."""
        if self.config.pooling == "cls":
            return states[0]
        if self.config.pooling == "max":
            return states.max(0).values
        total = states.sum(0)
        return total / (len(states) ** 0.5 if self.config.pooling == "mean_sqrt_len" else len(states))


def load_sentence_encoder(spec: str, dtype: torch.dtype | None = None, device: str = "auto") -> SentenceEncoder:
    """Load a dense model by preset name or folder, in dtype (the LLM's, by default fp32)."""
    from transformers import AutoModel, AutoTokenizer

    from .attention import NAME as ROWWISE
    from .attention import register
    from .backbones import _quiet_transformers, pick_device

    _quiet_transformers()
    name, folder = locate(spec)
    digest = folder_fingerprint(folder)
    dev = pick_device(device)
    dtype = dtype or torch.float32
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=False)
        model = AutoModel.from_pretrained(folder, dtype=dtype, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load dense model '{spec}': {exc}") from None
    if getattr(model.config, "is_decoder", False) or not hasattr(model.config, "hidden_size"):
        raise ModelError(f"dense model '{spec}' is not a BERT-style encoder ({type(model).__name__})")
    model.to(dev).eval()
    model.set_attn_implementation(register())
    if model.config._attn_implementation != ROWWISE:
        raise ModelError(f"dense model '{spec}' ({type(model).__name__}) cannot run the engine's attention")
    limit = int(getattr(model.config, "max_position_embeddings", 512))
    return SentenceEncoder(name, digest, model, tokenizer, SentenceConfig.read(folder, limit), dev, dtype)
