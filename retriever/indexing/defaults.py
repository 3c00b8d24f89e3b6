"""The build's defaults that the CLI shows, kept apart from the indexer so --help loads none of it."""

CHUNK = 1024  # documents read, encoded and written together; bounds the Python-side working set
