"""retriever: hybrid sparse-dense retrieval with training-free LLM embeddings.

The package's face is lazy: `import retriever` loads no torch, faiss or transformers, so the CLI's
--help and its refusals of bad input answer at once; a name is imported from its room when first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_NAMES = {  # public name -> the module that defines it
    "Hit": "api", "Retriever": "api", "delete_documents": "api", "info": "api", "verify": "api",
    "DEFAULT_MODEL": "models.presets", "PRESETS": "models.presets",
    "Document": "corpus.documents", "Fields": "corpus.documents", "read_corpus": "corpus.readers",
    "read_qrels": "corpus.queries", "read_queries": "corpus.queries",
    "BadIndexError": "errors", "IndexExistsError": "errors", "InputError": "errors", "ModelError": "errors",
    "RetrieverError": "errors", "StorageError": "errors",
    "IndexSettings": "settings", "SparseConfig": "legs.keytokens.config",
}
__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    if name not in _NAMES:
        raise AttributeError(f"module 'retriever' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_NAMES])


if TYPE_CHECKING:
    from .api import Hit, Retriever, delete_documents, info, verify
    from .corpus.documents import Document, Fields
    from .corpus.queries import read_qrels, read_queries
    from .corpus.readers import read_corpus
    from .errors import BadIndexError, IndexExistsError, InputError, ModelError, RetrieverError, StorageError
    from .legs.keytokens.config import SparseConfig
    from .models.presets import DEFAULT_MODEL, PRESETS
    from .settings import IndexSettings
