"""retriever: hybrid sparse-dense retrieval with training-free LLM embeddings."""

from .api import Hit, Retriever, delete_documents, info, verify
from .backbones import DEFAULT_MODEL, PRESETS
from .corpus import Document, Fields, read_corpus, read_qrels, read_queries
from .errors import BadIndexError, IndexExistsError, InputError, ModelError, RetrieverError, StorageError
from .settings import IndexSettings
from .sparse import SparseConfig

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MODEL", "PRESETS", "BadIndexError", "Document", "Fields", "Hit", "IndexExistsError", "IndexSettings",
    "InputError", "ModelError", "Retriever", "RetrieverError", "SparseConfig", "StorageError", "delete_documents",
    "info", "read_corpus", "read_qrels", "read_queries", "verify",
]
