"""Single-leg knob sweeps on a BEIR split, for docs/quality.md (nDCG@10 and friends, one JSON line each).

    python scripts/sweep_knobs.py bm25 [--data DIR] [--split train] [--work /tmp/sweep]
        BM25 k1 x b: a lexical-only index per pair (seconds each, no model run).
    python scripts/sweep_knobs.py query-m --index INDEX [--data DIR] [--split train]
        The key-token leg's query expansion M (query-side only: queries are encoded once, the index reused).
    python scripts/sweep_knobs.py sparse --index INDEX [--data DIR]
        Key-token variants (K, alpha, log1p, M, document own tokens + K expansion, pre-norm) rebuilt from a
        last-token index's stored vectors without rerunning the model over the corpus; each variant's
        sparse leg alone on train and test, and the hybrid with weights tuned on train, reported on test.
    python scripts/sweep_knobs.py key-tokens --index INDEX [--data DIR] [--variants A,B] [--out FILE]
        The key-token leg's own-token recipe (content words as PromptReps keeps them, spelled with or
        without a leading space), an idf factor, K / M / alpha, and the paper's scoring, over the stored
        vectors of an index built with the default key-token leg (before this change).
    python scripts/sweep_knobs.py query-prompt --index INDEX [--data DIR]
        Separate query prompts against a PromptEOL document index (queries re-encoded, documents reused),
        with the default key-token leg.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
from pathlib import Path

from common import SCIFACT  # isort: skip (first: the offline environment)

import numpy as np
from key_token_variants import KEY_TOKEN_BASE, KEY_TOKEN_VARIANTS, key_token_leg, recover_lexical

from retriever.api import Retriever
from retriever.corpus.readers import read_corpus
from retriever.eval.beir import corpus_file, read_split, run_split
from retriever.eval.evaluate import retrieval_measures
from retriever.eval.tuning import Scored, fused_run, tune_weights
from retriever.legs.inverted import SparseIndex
from retriever.legs.keytokens.config import SparseConfig
from retriever.legs.keytokens.leg import KeyTokenLeg
from retriever.legs.keytokens.own_tokens import own_token_ids
from retriever.legs.keytokens.projector import first_component
from retriever.models.backbones import load_backbone
from retriever.models.encoders import Encoder
from retriever.models.encoders.pooling import HiddenStatePooling


def sweep_bm25(data: Path, split: str, work: Path) -> None:
    backbone = load_backbone("smollm2-135m")  # only to satisfy the index's model record; never run
    judged = read_split(data, split)
    for k1, b in itertools.product([0.9, 1.2, 1.5, 2.0], [0.5, 0.75, 0.9]):
        index = Retriever.build(corpus_file(data), work / f"bm25-{k1}-{b}", backbone=backbone, overwrite=True,
                                legs=("lexical",), lexical={"k1": k1, "b": b})
        runs = run_split(index, judged)
        print(json.dumps({"k1": k1, "b": b, "split": split,
                          **retrieval_measures(runs.runs["lexical"], judged.qrels)}), flush=True)


def sweep_query_m(data: Path, split: str, index_dir: Path) -> None:
    searcher = Retriever.load(index_dir).searcher
    sparse = searcher.leg("sparse")
    judged = read_split(data, split)
    ids, texts = list(judged.queries), list(judged.queries.values())
    lexical = sparse.projector.lexical(searcher.encoder.encode(texts).residual)
    own = own_token_ids(searcher.backbone.tokenizer, texts)
    base = sparse.projector.config
    for m in (0, 4, 8, 16, 32, 64):
        sparse.projector.config = dataclasses.replace(base, query_top_m=m)
        scores = sparse.index.score_all(sparse.projector.queries(lexical, own))
        run = {}
        for qi, qid in enumerate(ids):
            top = np.argsort(-scores[qi])[:100]
            run[qid] = {searcher.ids[d]: float(scores[qi, d]) for d in top if scores[qi, d] > 0}
        print(json.dumps({"M": m, "split": split, **retrieval_measures(run, judged.qrels)}), flush=True)
    sparse.projector.config = base


SPARSE_VARIANTS = {  # name -> (changes to the index's stored SparseConfig, pre-norm direction)
    "top-128, alpha 1, relu (the index's)": ({}, False),
    "K32": ({"top_k": 32}, False),
    "K64": ({"top_k": 64}, False),
    "K256": ({"top_k": 256}, False),
    "K512": ({"top_k": 512}, False),
    "alpha 0": ({"alpha": 0.0}, False),
    "alpha 0.5": ({"alpha": 0.5}, False),
    "log1p": ({"weighting": "log1p"}, False),
    "M0": ({"query_top_m": 0}, False),
    "pre-norm direction": ({"final_norm": False}, True),
    "own tokens + 0": ({"own_tokens": True, "top_k": 0}, False),
    "own tokens + 16": ({"own_tokens": True, "top_k": 16}, False),
    "own tokens + 64": ({"own_tokens": True, "top_k": 64}, False),
    "own tokens + 128": ({"own_tokens": True, "top_k": 128}, False),
    "alpha 0.5 log1p": ({"alpha": 0.5, "weighting": "log1p"}, False),
    "alpha 0.5 log1p K256": ({"alpha": 0.5, "weighting": "log1p", "top_k": 256}, False),
    "alpha 0.75 log1p": ({"alpha": 0.75, "weighting": "log1p"}, False),
    "own tokens + 16 log1p": ({"own_tokens": True, "top_k": 16, "weighting": "log1p"}, False),
    "own tokens + 16 alpha 0.5 log1p (default)": (
        {"own_tokens": True, "top_k": 16, "alpha": 0.5, "weighting": "log1p"}, False),
    "own tokens + 64 alpha 0.5 log1p": ({"own_tokens": True, "top_k": 64, "alpha": 0.5, "weighting": "log1p"}, False),
}


def variant_rows(searcher, lexical_docs, doc_tokens, queries, change, pre_norm):
    """(document rows, query rows per split) for one variant, made by the engine's own projector."""
    projector = searcher.leg("sparse").projector
    base_config, base_u1 = projector.config, projector.u1
    scale = searcher.backbone.final_norm.weight.detach().numpy()

    def to_vocab(x: np.ndarray) -> np.ndarray:  # pre-norm: the residual's direction, x = norm(x) / w
        return x / scale / np.linalg.norm(x / scale, axis=1, keepdims=True) if pre_norm else x

    projector.config = dataclasses.replace(base_config, **change)
    docs = to_vocab(lexical_docs)
    if pre_norm:
        projector.u1 = first_component(docs)
    doc_rows = projector.documents(docs, doc_tokens)
    query_rows = {split: projector.queries(to_vocab(lexical), own) for split, (lexical, own) in queries.items()}
    projector.config, projector.u1 = base_config, base_u1
    return doc_rows, query_rows


def with_rows(searcher, doc_rows):
    """The index's searcher with a key-token leg over other document rows (queries come pre-encoded)."""
    stored = searcher.leg("sparse")
    return searcher.with_leg("sparse", KeyTokenLeg(stored.projector, SparseIndex(doc_rows), stored.tokenizer,
                                                   lock=stored.lock))


def leg_run(scored: list[Scored], leg: str, depth: int = 100):
    run = {}
    for q in scored:
        s = q.scores[leg]
        top = [i for i in np.argsort(-s, kind="stable")[:depth] if s[i] > 0]
        run[q.query_id] = {q.doc_ids[i]: float(s[i]) for i in top}
    return run


def encode_queries(searcher, splits: dict, template: str | None = None):
    """Each split's queries once: (vocabulary-side vectors, own tokens) and the dense + lexical encodings."""
    encoder = searcher.encoder
    if template is not None:
        method = HiddenStatePooling("prompteol", "last", (template,))
        encoder = Encoder(searcher.backbone, method, searcher.settings.max_tokens)
    tokenizer, queries, base = searcher.backbone.tokenizer, {}, {}
    for name, split in splits.items():
        texts = list(split.queries.values())
        vectors = encoder.encode(texts)
        own = own_token_ids(tokenizer, texts)
        queries[name] = (searcher.leg("sparse").projector.lexical(vectors.residual), own)
        base[name] = {"dense": vectors.dense, "lexical": searcher.leg("lexical").encode(texts, None)}
    return queries, base


def measure_variant(searcher, splits: dict, base: dict, query_rows: dict) -> dict:
    """Every leg's exact scores per split, fusion tuned on train, and nDCG@10 of each leg and the hybrid.
    searcher: the index's, with the variant's key-token leg in place of its own."""
    scored = {}
    for name, split in splits.items():
        run = searcher.run(list(split.queries.values()), k=100, depth=100,
                           encoded={**base[name], "sparse": query_rows[name]})
        scored[name] = [Scored(qid, [searcher.ids[r] for r in q.candidates.tolist()], q.scores)
                        for qid, q in zip(split.queries, run.queries, strict=True)]
    best, _ = tune_weights(scored["train"], splits["train"].qrels, searcher.legs)
    line = {"fusion": best}
    for name, split in splits.items():
        for leg in ("dense", "sparse"):
            line[f"{leg}_{name}"] = retrieval_measures(leg_run(scored[name], leg), split.qrels)["nDCG@10"]
    test_fused = fused_run(scored["test"], best["fusion"], best["weights"], best["params"], 100)
    line["hybrid_test"] = retrieval_measures(test_fused, splits["test"].qrels)["nDCG@10"]
    line["sparse_over_dense_test"] = round(line["sparse_test"] / line["dense_test"], 3)
    return line


def markdown(lines: list[dict], key: str) -> str:
    """The docs table of a sparse or query-prompt sweep (nDCG@10), from its JSON lines."""
    out = [f"| {key} | sparse train | sparse test | sparse / dense test | hybrid train (tuned) | hybrid test "
           "| weights dense / sparse / lexical |", "|---|---|---|---|---|---|---|"]
    for d in lines:
        w = d["fusion"]["weights"] or {}
        weights = "RRF" if d["fusion"]["fusion"] == "rrf" else " / ".join(f"{w[leg]:.2f}" for leg in
                                                                            ("dense", "sparse", "lexical"))
        out.append(f"| {d[key]} | {d['sparse_train']:.4f} | {d['sparse_test']:.4f} | "
                   f"{d['sparse_over_dense_test']:.0%} | {d['fusion']['value']:.4f} | {d['hybrid_test']:.4f} "
                   f"| {weights} |")
    return "\n".join(out)


def sweep_sparse(data: Path, index_dir: Path, variants: list[str]) -> None:
    searcher = Retriever.load(index_dir).searcher
    lexical_docs = recover_lexical(searcher, index_dir)
    contents = [d.content for d in read_corpus(corpus_file(data))]
    doc_tokens = own_token_ids(searcher.backbone.tokenizer, contents, searcher.settings.max_tokens)
    splits = {name: read_split(data, name) for name in ("train", "test")}
    queries, base = encode_queries(searcher, splits)
    lines = []
    for variant in variants:
        change, pre_norm = SPARSE_VARIANTS[variant]
        doc_rows, query_rows = variant_rows(searcher, lexical_docs, doc_tokens, queries, change, pre_norm)
        line = {"variant": variant, "nnz_per_doc": round(doc_rows.nnz / doc_rows.shape[0], 1),
                **measure_variant(with_rows(searcher, doc_rows), splits, base, query_rows)}
        lines.append(line)
        print(json.dumps(line), flush=True)
    print(markdown(lines, "variant"))


# The key-token sweep's base: the engine's key-token leg before this sweep, with content words' pieces


def sweep_key_tokens(data: Path, index_dir: Path, variants: list[str], out: Path | None) -> None:
    """The key-token leg's own-token recipe, idf and the paper's scoring, over one index's stored vectors."""
    searcher = Retriever.load(index_dir).searcher
    contents = [d.content for d in read_corpus(corpus_file(data))]
    lexical_docs = recover_lexical(searcher, index_dir, contents)
    splits = {name: read_split(data, name) for name in ("train", "test")}
    queries, base = encode_queries(searcher, splits)
    queries = {name: (queries[name][0], list(split.queries.values())) for name, split in splits.items()}
    lines = []
    for variant in variants:
        config = dataclasses.replace(KEY_TOKEN_BASE, **KEY_TOKEN_VARIANTS[variant])
        leg, query_rows = key_token_leg(searcher, lexical_docs, contents, queries, config)
        line = {"variant": variant, "nnz_per_doc": round(leg.index.doc_rows.nnz / len(leg.index), 1),
                **measure_variant(searcher.with_leg("sparse", leg), splits, base, query_rows)}
        lines.append(line)
        print(json.dumps(line), flush=True)
        if out:
            out.write_text("".join(json.dumps(x) + "\n" for x in lines))
    print(markdown(lines, "variant"))


QUERY_PROMPTS = (  # documents keep the PromptEOL prompt the index was built with
    'This sentence : "{text}" means in one word:"',
    'This query : "{text}" means in one word:"',
    'This question : "{text}" is answered by a text about, in one word:"',
    'A scientific claim : "{text}" is about, in one word:"',
)


def sweep_query_prompt(data: Path, index_dir: Path) -> None:
    """Query templates against the index's documents, with the engine's default key-token leg."""
    searcher = Retriever.load(index_dir).searcher
    lexical_docs = recover_lexical(searcher, index_dir)
    contents = [d.content for d in read_corpus(corpus_file(data))]
    doc_tokens = own_token_ids(searcher.backbone.tokenizer, contents, searcher.settings.max_tokens)
    splits = {name: read_split(data, name) for name in ("train", "test")}
    default, lines = SparseConfig().to_dict(), []
    for template in QUERY_PROMPTS:
        queries, base = encode_queries(searcher, splits, template)
        doc_rows, query_rows = variant_rows(searcher, lexical_docs, doc_tokens, queries, default, False)
        lines.append({"query_prompt": template,
                      **measure_variant(with_rows(searcher, doc_rows), splits, base, query_rows)})
        print(json.dumps(lines[-1]), flush=True)
    print(markdown(lines, "query_prompt"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("knob", choices=["bm25", "query-m", "sparse", "query-prompt", "key-tokens"])
    parser.add_argument("--out", type=Path, help="for key-tokens: write the JSON lines here as they come")
    parser.add_argument("--data", type=Path, default=SCIFACT)
    parser.add_argument("--split", default="train")
    parser.add_argument("--work", type=Path, default=Path("/tmp/sweep"))
    parser.add_argument("--index", type=Path, help="for query-m, sparse, query-prompt: an index with the sparse leg")
    parser.add_argument("--variants", help=f"for sparse: a comma-separated subset of {', '.join(SPARSE_VARIANTS)}")
    args = parser.parse_args()
    if args.knob == "bm25":
        sweep_bm25(args.data, args.split, args.work)
    elif args.index is None:
        parser.error(f"{args.knob} needs --index")
    elif args.knob == "sparse":
        sweep_sparse(args.data, args.index, args.variants.split(",") if args.variants else list(SPARSE_VARIANTS))
    elif args.knob == "key-tokens":
        names = args.variants.split(",") if args.variants else list(KEY_TOKEN_VARIANTS)
        sweep_key_tokens(args.data, args.index, names, args.out)
    elif args.knob == "query-prompt":
        sweep_query_prompt(args.data, args.index)
    else:
        sweep_query_m(args.data, args.split, args.index)


if __name__ == "__main__":
    main()
