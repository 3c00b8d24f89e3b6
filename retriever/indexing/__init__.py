"""Building and changing an index: documents -> arrays -> segments (indexer, updates, verify, Ray).

Imports legs, models, index and corpus; nothing below imports it."""
