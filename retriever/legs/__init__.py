"""The legs of a hybrid index: the interface (base), the registry, and one module per leg with its
config; the inverted index the sparse legs share."""
