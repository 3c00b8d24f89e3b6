"""Answering queries: the searcher (every leg, exact rescoring, fusion), filters, snippets and the
micro-batcher."""
