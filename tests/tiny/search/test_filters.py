"""Filters inside every leg: k results whenever k documents match, in every mode, the same as a search of
only the matching documents."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from retriever import Document, Retriever, RetrieverError
from retriever.cli.main import main
from retriever.indexing.indexer import build_index
from retriever.settings import IndexSettings

WORDS = ["lava", "magma", "honey", "bees", "tide", "moon", "bread", "yeast", "chess", "piano", "orbit", "rain"]
CHOSEN = {3, 500, 997}
MODES = ("hybrid", "dense", "sparse", "lexical")
QUERY = "a document about honey and the moon"


def _corpus() -> list[Document]:
    rng = np.random.default_rng(0)
    return [Document(f"d{i:04d}", f"document {i}: " + " ".join(rng.choice(WORDS, 6)), "",
                     {"tag": "x" if i in CHOSEN else "y", "group": i % 10, "year": 1000 + i,
                      "day": f"2020-{1 + i % 12:02d}-{1 + i % 28:02d}"} | ({"odd": True} if i % 2 else {}))
            for i in range(1000)]


@pytest.fixture(scope="module")
def big(tmp_path_factory, tiny_backbone):
    return Retriever.build(_corpus(), tmp_path_factory.mktemp("filters") / "idx", backbone=tiny_backbone)


def test_a_filter_keeping_3_of_1000_returns_those_3_at_k_10_in_every_mode(big):
    want = {f"d{i:04d}" for i in CHOSEN}
    for mode in MODES:
        hits = big.search(QUERY, k=10, mode=mode, filter={"tag": "x"})
        assert {h.id for h in hits} == want, mode
        assert all(h.metadata["tag"] == "x" for h in hits)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_filtered_results_equal_a_search_of_only_the_matching_documents(big, tmp_path, tiny_backbone):
    docs = [d for d in _corpus() if d.metadata["tag"] == "x"]
    u1 = np.load(big.path / "seg-000001" / "u1.npy")
    build_index(docs, tmp_path / "only", tiny_backbone, IndexSettings(), u1=u1)  # u_1 held fixed
    only = Retriever.load(tmp_path / "only", backbone=tiny_backbone)
    # dense scores do not depend on the other documents
    assert [(h.id, h.score) for h in big.search(QUERY, k=10, mode="dense", filter={"tag": "x"})] == \
        [(h.id, h.score) for h in only.search(QUERY, k=10, mode="dense")]
    # BM25's statistics and the key-token idf are the whole index's: the filtered list is the unfiltered
    # one restricted (and without the idf the key-token leg scores as the index of only those documents)
    for mode in ("lexical", "sparse"):
        everything = big.search(QUERY, k=1000, mode=mode)
        restricted = [(h.id, h.score) for h in everything if h.metadata["tag"] == "x"][:10]
        assert sorted((h.id, h.score) for h in big.search(QUERY, k=10, mode=mode, filter={"tag": "x"})) == \
            sorted(restricted), mode


@pytest.mark.parametrize("spec, keep", [
    ({"group": {"in": [1, 2]}}, lambda m, i: m["group"] in (1, 2)),
    ({"year": {"gte": 1100, "lt": 1130}}, lambda m, i: 1100 <= m["year"] < 1130),
    ({"day": {"gte": "2020-03-01", "lte": "2020-04-15"}}, lambda m, i: "2020-03-01" <= m["day"] <= "2020-04-15"),
    ({"odd": {"exists": False}, "group": 4}, lambda m, i: "odd" not in m and m["group"] == 4),
    ({"_id": {"prefix": "d09"}}, lambda m, i: i.startswith("d09")),
])
def test_every_operator_inside_every_leg_equals_the_unfiltered_list_restricted(big, spec, keep):
    for mode in ("dense", "lexical", "sparse"):
        everything = big.search(QUERY, k=1000, mode=mode)
        restricted = {h.id: h.score for h in everything if keep(h.metadata, h.id)}
        got = big.search(QUERY, k=len(restricted) + 5, mode=mode, filter=spec)
        assert {h.id: h.score for h in got} == pytest.approx(restricted), (mode, spec)
    hybrid = big.search(QUERY, k=20, filter=spec)
    assert hybrid and all(keep(h.metadata, h.id) for h in hybrid)


def test_a_filter_nothing_passes_returns_nothing_and_bad_filters_are_named(big):
    assert big.search(QUERY, k=10, filter={"tag": "none"}) == []
    with pytest.raises(RetrieverError, match="unknown operator 'like'"):
        big.search(QUERY, filter={"tag": {"like": "x"}})


def test_cli_filter_and_metadata_in_every_hit(big, tmp_path):
    result = CliRunner().invoke(main, ["search", QUERY, "--index", str(big.path), "-k", "10", "--json",
                                       "--filter", '{"tag": "x"}', "--mode", "lexical"])
    assert result.exit_code == 0, result.output
    hits = json.loads(result.output)["results"][0]["hits"]
    assert len(hits) == 3 and all(h["metadata"]["tag"] == "x" for h in hits)
    queries = tmp_path / "q.tsv"
    queries.write_text("a\thoney moon\nb\tlava bread\n")
    out = tmp_path / "run.trec"
    result = CliRunner().invoke(main, ["search", "--queries", str(queries), "--index", str(big.path), "--output",
                                       str(out), "--filter", '{"group": 7}', "--quiet"])
    assert result.exit_code == 0, result.output
    assert all(int(line.split()[2][1:]) % 10 == 7 for line in out.read_text().splitlines())
    result = CliRunner().invoke(main, ["search", QUERY, "--index", str(big.path), "--filter", "{oops"])
    assert result.exit_code == 1 and "not valid JSON" in result.output and "Traceback" not in result.output
