"""The key-token sparse index: embeddings projected through the LLM's own unembedding onto its vocabulary.

W_U e ranks a text's key tokens highest once the first principal component u_1 of the embedding space
is adjusted (that direction mostly drives "the", "and" and punctuation). A document keeps its own tokens
plus its top-K (own_tokens), or only its top-K; a word's case, space and (with stem) Snowball variants
are folded into one canonical token first, so K expansions are K distinct words. A query is, by default,
its own tokens weighted by their idf: the doc-only recipe, in which the LLM runs at index time only and a
query needs the tokenizer alone (query_side "own"); or the LLM's projection of it plus its top-M (query_side
"model", every index built before). Scoring is a sparse dot product over an inverted index, or BM25 with
the model's weights as term frequencies (the bm25 scorings). u_1 and every parameter are stored with the
index and applied to queries exactly as to documents.

Its rooms: config.py (the options), projector.py (the maths), own_tokens.py (a text's own tokens and the
canonical fold), leg.py (its files); the inverted index it searches is the sparse legs' shared one
(legs/inverted.py). The projector holds tensors, not a model: the leg hands it the backbone's.

Defaults measured on SciFact train (docs/quality.md): a document's own tokens plus 16 expansion tokens,
half of u_1 removed and log-saturated weights make the leg 3.6x better than top-128 alone; own-token
queries fuse as well as the LLM's (issue 27).
"""
