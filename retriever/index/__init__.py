"""The on-disk format: the atomic, checksummed, pickle-free store, its segments and build checkpoints."""
