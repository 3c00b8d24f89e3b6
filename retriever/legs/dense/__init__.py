"""The dense leg: cosine similarity over FAISS, exact (flat) by default, HNSW as an option.

DenseLeg (leg.py) owns its two files per segment: the unit vectors and the FAISS structure built over
them. A segmented index is searched segment by segment (HNSW graphs stay per segment) and the top lists
are merged by exact score.

The raw normalised matrix is kept beside the FAISS structure: fusion rescores every candidate exactly,
and that needs a document's vector whatever index type found (or missed) it.
"""
