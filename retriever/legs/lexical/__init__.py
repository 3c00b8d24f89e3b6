"""The lexical leg: BM25 over stemmed words, as bm25s scores it.

The LLM legs miss exact rare terms (gene names, numbers, acronyms) that BM25 finds at once, and on small
models BM25 is the strongest leg by far, so it is indexed beside them by default. A segment stores word
counts and document lengths; the index weighs them when it opens (eager scoring, bm25s's Lucene formula:
each posting then holds its document's BM25 contribution), with the document frequencies and average
length of every live document of every segment, so a segmented index scores exactly as one built at once
and a query is one sparse product over the same kind of inverted index as the key-token leg. The words
are numbered in sorted order across segments, so the sums run in the same order however the documents
were split. Its rooms: config.py (the options), leg.py (LexicalLeg: its files, analysis and scoring).
"""
