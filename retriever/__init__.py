"""retriever: hybrid sparse-dense retrieval with training-free LLM embeddings."""

from .api import Hit, Retriever, delete_documents, info, verify
from .corpus.readers import Document, Fields, read_corpus, read_qrels, read_queries
from .errors import BadIndexError, IndexExistsError, InputError, ModelError, RetrieverError, StorageError
from .legs.keytokens import SparseConfig
from .models.backbones import DEFAULT_MODEL, PRESETS
from .settings import IndexSettings

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MODEL", "PRESETS", "BadIndexError", "Document", "Fields", "Hit", "IndexExistsError", "IndexSettings",
    "InputError", "ModelError", "Retriever", "RetrieverError", "SparseConfig", "StorageError", "delete_documents",
    "info", "read_corpus", "read_qrels", "read_queries", "verify",
]
