"""The engine's own error types.

Everything a user can cause (bad input, a missing or mismatched index, a model that is not installed)
raises a RetrieverError, so the CLI can print one clear line and exit non-zero instead of a traceback.
"""

from __future__ import annotations


class RetrieverError(Exception):
    """Base class for every error the user can cause and fix."""


class InputError(RetrieverError):
    """A problem in an input file, located by file, line and field so it can be fixed by hand."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None,
                 field: str | None = None):
        self.path, self.line, self.field = path, line, field
        where = ":".join(str(p) for p in (path, line) if p is not None)
        prefix = f"{where}: " if where else ""
        suffix = f" (field '{field}')" if field else ""
        super().__init__(f"{prefix}{message}{suffix}")


class BadIndexError(RetrieverError):
    """An index that is missing, incomplete, or was built with another model or method."""


class ModelError(RetrieverError):
    """A model that cannot be found or loaded."""


class StorageError(RetrieverError):
    """Writing or reading the engine's own files failed (a full disk, a permission): nothing half-written
    is left under an index's name."""


class BusyError(StorageError):
    """Another build or update holds the index: nothing was done; try again when it is finished."""


class IndexExistsError(RetrieverError):
    """A build was pointed at a name that already holds an index (or other files): nothing is replaced
    without overwrite=True (`--overwrite`)."""
