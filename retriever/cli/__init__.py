"""The `retriever` command: options, progress and rendering over the API; holds no retrieval rules."""

from .main import main

__all__ = ["main"]
