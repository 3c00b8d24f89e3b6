"""The default model on the demo corpus: obviously relevant documents rank first in every mode."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

import numpy as np
import pytest

CASES = {
    "why does lava come out of a mountain": ("volcano", {"lava", "magma", "volcano", "volcanoes", "eruption"}),
    "how do bees make honey": ("bees", {"bees", "bee", "honey", "Honey", "Bees", "honeybees"}),
    "fix a flat tire on my bike": ("bicycle", {"tire", "bike", "bicycle", "repair", "fix"}),
    "insulin and blood sugar": ("diabetes", {"insulin", "diabetes", "Diabetes", "diabetic"}),
    "first man to walk on the moon": ("moon", {"Apollo", "moon", "Moon", "Neil", "astronauts", "lunar"}),
    "ocean tides": ("empty-text", {"tides", "tide", "tidal"}),  # no text: found by its title alone
}


@pytest.mark.parametrize("mode", ["dense", "sparse", "hybrid"])
def test_relevant_document_ranks_first(demo_index, mode):
    for query, (expected, _) in CASES.items():
        hits = demo_index.search(query, k=5, mode=mode)
        assert hits[0].id == expected, (mode, query, [h.id for h in hits])
        assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
        assert all(a.score >= b.score for a, b in itertools.pairwise(hits))


def test_explanation_tokens_are_the_documents_topic(demo_index):
    for query, (expected, topic_words) in CASES.items():
        hit = demo_index.search(query, k=1)[0]
        tokens = [t["token"] for t in hit.tokens]
        assert hit.id == expected
        assert set(tokens) & topic_words, (query, tokens)
        weights = [t["weight"] for t in hit.tokens]
        assert weights == sorted(weights, reverse=True) and all(w > 0 for w in weights)


def test_hit_carries_title_snippet_and_every_leg_score(demo_index):
    hit = demo_index.search("sourdough starter and yeast", k=1)[0]
    assert hit.id == "bread"
    assert hit.title == "Baking sourdough bread"
    assert hit.snippet.startswith("Sourdough bread rises")
    assert set(hit.scores) == {"dense", "sparse", "lexical"}
    assert json.loads(json.dumps(hit.to_dict()))["id"] == "bread"


def test_reload_in_new_process_gives_the_same_results(demo_index):
    """Same ids in the same order; scores equal to float32 round-off. Bit equality is not promised: the CPU
    BLAS may sum in another order in another process (buffer alignment), which moved a 5th decimal on CI."""
    queries = list(CASES)
    here = [[(h.id, h.score) for h in hits] for hits in demo_index.search_batch(queries, k=5)]
    code = (
        "import json, sys; from retriever import Retriever\n"
        f"r = Retriever.load({str(demo_index.path)!r})\n"
        "qs = json.loads(sys.argv[1])\n"
        "print(json.dumps([[(h.id, h.score) for h in hits] for hits in r.search_batch(qs, k=5)]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, json.dumps(queries)], capture_output=True, text=True,
                         check=True)
    there = json.loads(out.stdout.strip().splitlines()[-1])
    assert [[hit_id for hit_id, _ in hits] for hits in there] == [[hit_id for hit_id, _ in hits] for hits in here]
    for hits_there, hits_here in zip(there, here, strict=True):
        assert [score for _, score in hits_there] == pytest.approx([score for _, score in hits_here], abs=1e-4)


def test_engine_rescores_every_candidate_exactly(demo_index):
    """Each hybrid hit's leg scores equal a direct recomputation from the stored vectors and rows."""
    searcher = demo_index.searcher
    query = "volcanic ash and earthquakes"
    run = searcher.run([query], k=20, mode="hybrid")
    results, encoded = run.queries[0].hits, run.encoded
    q_dense = encoded["dense"][0] / np.linalg.norm(encoded["dense"][0])
    q_sparse = encoded["sparse"][0].toarray()[0]
    q_words = encoded["lexical"][0].toarray()[0]
    lexical_postings = searcher.leg("lexical").index.postings.toarray()
    for r in results:
        assert r.leg_scores["dense"] == pytest.approx(float(searcher.leg("dense").index.vectors[r.row] @ q_dense),
                                                      abs=1e-5)
        doc_row = searcher.leg("sparse").index.doc_rows[r.row].toarray()[0]
        assert r.leg_scores["sparse"] == pytest.approx(float(doc_row @ q_sparse), rel=1e-5, abs=1e-5)
        assert r.leg_scores["lexical"] == pytest.approx(float(q_words @ lexical_postings[:, r.row]), rel=1e-5)
    assert len(results) == 20
    assert [r.score for r in results] == sorted([r.score for r in results], reverse=True)




def test_one_engine_call_gives_leg_runs_fused_hits_and_reusable_encodings(demo_index):
    """Searcher.run: each leg's own top-k equals that leg searched alone, the fused hits equal search(), and
    queries encoded once can be searched again, or against a variant of a leg (what the sweep scripts do)."""
    from retriever.legs.inverted import SparseIndex
    from retriever.legs.keytokens.leg import KeyTokenLeg

    searcher, queries = demo_index.searcher, ["how do bees make honey", "ocean tides"]
    run = searcher.run(queries, k=5)
    legs = searcher.run(queries, k=5, depth=5, leg_runs=True)  # eval beir's call: lists as deep as k
    for qi, query in enumerate(queries):
        assert [(searcher.ids[r.row], r.score) for r in run.queries[qi].hits] == \
            [(h.id, h.score) for h in demo_index.search(query, k=5)]
        for leg in searcher.legs:
            alone = demo_index.search(query, k=5, mode=leg)
            assert [(searcher.ids[r.row], r.score) for r in legs.queries[qi].legs[leg]] == \
                [(h.id, h.score) for h in alone]
    again = searcher.run(queries, k=5, encoded=run.encoded)
    assert [[r.row for r in q.hits] for q in again.queries] == [[r.row for r in q.hits] for q in run.queries]
    sparse = searcher.leg("sparse")
    emptied = SparseIndex(sparse.index.doc_rows * 0)  # a variant whose documents share no key token
    variant = searcher.with_leg("sparse", KeyTokenLeg(sparse.projector, emptied, sparse.tokenizer))
    assert all(r.leg_scores["sparse"] == 0 for q in variant.run(queries, k=5, encoded=run.encoded).queries
               for r in q.hits)
    assert searcher.leg("sparse") is sparse  # the original searcher is untouched
