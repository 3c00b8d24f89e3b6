"""retriever: hybrid sparse-dense retrieval with training-free LLM embeddings."""

from .api import Hit, Retriever, info
from .backbones import DEFAULT_MODEL, PRESETS
from .corpus import Document, read_corpus, read_qrels, read_queries
from .errors import BadIndexError, InputError, ModelError, RetrieverError
from .indexer import IndexSettings
from .sparse import SparseConfig

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MODEL", "PRESETS", "BadIndexError", "Document", "Hit", "IndexSettings", "InputError",
    "ModelError", "Retriever", "RetrieverError", "SparseConfig", "info", "read_corpus", "read_qrels",
    "read_queries",
]
