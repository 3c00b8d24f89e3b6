"""The one encode step: documents -> the arrays the legs need, the same in a build, an add or upsert, and
a Ray worker.

A leg names the models it needs by kind (models/kinds.py); here each kind that encodes documents has its
encoder: the LLM's method (its vectors: "dense", the method's embedding, and "residual", the hidden state
the key-token leg projects) and a trained dense encoder (its vectors replace "dense"). A new kind (a
SPLADE or ColBERT model) is one more field of DocumentEncoders and its arrays here; nothing else of the
build changes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..models.encoders import Encoder, EncodeStats
from ..settings import IndexSettings

Progress = Callable[[int, int], None]  # (documents done, tokens done)


@dataclass
class Encoded:
    """One run of documents as the legs take them: arrays by name, one row per document."""

    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    stats: EncodeStats | None = None  # the LLM pass's (None without the LLM)
    prepared: Any = None  # the LLM's tokenized inputs (a Ray worker shares their statistics out per row)


@dataclass
class DocumentEncoders:
    """The encoders an index's documents go through, by model kind; None where no leg needs the kind."""

    llm: Encoder | None = None
    dense_model: Any = None  # models/sentence.py SentenceEncoder

    @classmethod
    def for_settings(cls, settings: IndexSettings, backbone=None, dense_encoder=None,
                     batch_tokens: int | None = None) -> DocumentEncoders:
        """What settings need of the models given: the LLM's method encoder where a leg needs its forward
        pass, the trained dense encoder where the dense leg comes from one."""
        llm = None
        if settings.needs_model and backbone is not None:
            llm = Encoder(backbone, settings.make_method(), settings.max_tokens, batch_tokens)
        return cls(llm, dense_encoder if settings.needs_dense_model else None)

    @property
    def any(self) -> bool:
        return self.llm is not None or self.dense_model is not None

    def prepare(self, texts: Sequence[str], tokenizer=None) -> Any:
        """The LLM's inputs for texts, made ahead of encode (by a reader thread with its own tokenizer)."""
        return None if self.llm is None else self.llm.prepare(texts, tokenizer)

    def encode(self, texts: Sequence[str], prepared: Any = None, progress: Progress | None = None,
               timing: Callable[[str], AbstractContextManager] = lambda stage: nullcontext()) -> Encoded:
        """texts' arrays; progress counts each document once (by the LLM's pass, else the dense encoder's,
        else here), with the LLM's tokens."""
        encoded = Encoded()
        if self.llm is not None:
            encoded.prepared = prepared if prepared is not None else self.llm.prepare(texts)
            out = self.llm.encode(encoded.prepared, on_batch=progress)
            encoded.arrays = {"dense": out.dense, "residual": out.residual}
            encoded.stats = out.stats
        if self.dense_model is not None:
            with timing("dense-model"):
                encoded.arrays["dense"], stats = self.dense_model.encode_counted(
                    list(texts), on_batch=progress if self.llm is None else None)
            encoded.stats = encoded.stats or stats  # the LLM's where it ran: its limit is the index's
        elif self.llm is None and progress:
            progress(len(texts), 0)
        return encoded
