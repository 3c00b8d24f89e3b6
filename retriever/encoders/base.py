"""The encoder interface: what a training-free embedding method must provide.

A method is told which decoder layers run and attaches forward hooks to them; from that one pass it
returns two vectors per text: its dense embedding, and a residual-stream vector that the sparse index
projects onto the vocabulary. The indexer and query engine only ever see this interface, so a new method
is one new module registered in encoders/__init__.py.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import torch


class StopForward(Exception):
    """Raised by a hook once the last layer a method needs has run: the remaining layers are skipped."""


@dataclass
class Capture:
    """What one batch's forward pass hands back: both vectors, float32, one row per text."""

    dense: torch.Tensor
    residual: torch.Tensor


class Method(ABC):
    """A training-free embedding method."""

    name: str
    template: str | None  # prompt with one {text}, or None for the bare text

    @abstractmethod
    def parameters(self) -> dict[str, Any]:
        """Everything that changes the vectors: recorded in the index manifest and checked on load."""

    @abstractmethod
    def layers_needed(self, num_layers: int) -> int:
        """How many decoder layers must run; the forward pass stops after them."""

    @abstractmethod
    def attach(self, backbone: Any, attention_mask: torch.Tensor) -> tuple[list, Any]:
        """Register hooks for one batch; return the handles and a callable giving the batch's Capture."""
