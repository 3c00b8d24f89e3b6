"""BEIR evaluation: every leg alone and fused, in one run, scored by trec_eval's own measures.

    from retriever.eval.beir import evaluate_beir
    report = evaluate_beir("data/scifact", out="eval/scifact", tune=True)

Queries are encoded once per batch for every leg; each leg is then searched alone, and the fused list is
made from the same exact per-leg candidate scores the engine fuses at search time (see tuning.py), so the
reported hybrid is what `retriever search` returns.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..api import Retriever
from ..corpus.queries import read_qrels, read_queries
from ..corpus.readers import read_corpus
from ..errors import InputError
from ..index.store import MANIFEST
from ..settings import IndexSettings
from .evaluate import REPORTED, evaluate, retrieval_measures
from .tuning import Run, Scored, fused_run, tune_weights

DEPTH = 100
QUERY_BATCH = 256


@dataclass
class Split:
    name: str
    queries: dict[str, str]  # only the judged queries, as BEIR evaluates them
    qrels: dict[str, dict[str, int]]


@dataclass
class LegRuns:
    runs: dict[str, Run] = field(default_factory=dict)  # leg or "hybrid" -> run
    scored: list[Scored] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def corpus_file(folder: Path) -> Path:
    for name in ("corpus.jsonl", "corpus.jsonl.gz"):
        if (folder / name).exists():
            return folder / name
    raise InputError("not a BEIR folder: no corpus.jsonl", str(folder))


def read_split(folder: str | Path, split: str) -> Split:
    folder = Path(folder)
    qrels_path = folder / "qrels" / f"{split}.tsv"
    if not qrels_path.exists():
        found = sorted(p.stem for p in (folder / "qrels").glob("*.tsv"))
        raise InputError(f"no qrels for split '{split}' (found: {', '.join(found) or 'none'})", str(qrels_path))
    qrels = read_qrels(qrels_path)
    queries = read_queries(folder / "queries.jsonl")
    missing = [q for q in qrels if q not in queries]
    if missing:
        raise InputError(f"{len(missing)} judged queries are not in queries.jsonl (e.g. '{missing[0]}')",
                         str(qrels_path))
    return Split(split, {q: queries[q] for q in qrels}, qrels)


def open_index(folder: Path, index_dir: Path, settings: IndexSettings, model: str, dtype: str,
               rebuild: bool, progress=None, quiet: bool = True, backbone=None,
               running: dict[str, Any] | None = None) -> Retriever:
    """Reuse index_dir if it holds exactly this corpus; build it otherwise (or when rebuild is asked).
    running: device and batch_tokens, where and how the models run."""
    running = running or {}
    corpus = corpus_file(folder)
    if (index_dir / MANIFEST).exists() and not rebuild:
        retriever = Retriever.load(index_dir, backbone=backbone, quiet=quiet, device=running.get("device", "auto"))
        wanted = [d.id for d in read_corpus(corpus)]
        if retriever.searcher.document_ids != wanted:
            raise InputError(f"the index at {index_dir} was not built from this corpus "
                             f"({len(retriever.searcher.document_ids)} documents vs {len(wanted)}); "
                             "pass --rebuild or another --index", str(corpus))
        return retriever
    return Retriever.build(corpus, index_dir, model=model, backbone=backbone, dtype=dtype, settings=settings,
                           progress=progress, quiet=quiet, overwrite=rebuild, **running)


def run_split(retriever: Retriever, split: Split, depth: int = DEPTH, ignore_identical_ids: bool = False,
              on_batch: Callable[[int], None] | None = None) -> LegRuns:
    """Each leg's own top-depth run, the fused run, and every leg's exact scores for the union of their
    candidates (what tuning re-fuses): one engine call per batch of queries."""
    searcher = retriever.searcher
    out = LegRuns()
    ids, texts = list(split.queries), list(split.queries.values())
    extra = 1 if ignore_identical_ids else 0
    clock: dict[str, float] = {}
    for start in range(0, len(ids), QUERY_BATCH):
        batch_ids = ids[start:start + QUERY_BATCH]
        run = searcher.run(texts[start:start + QUERY_BATCH], k=depth + extra, depth=depth, leg_runs=True)
        for qid, query in zip(batch_ids, run.queries, strict=True):
            for leg, results in query.legs.items():
                out.runs.setdefault(leg, {})[qid] = {searcher.ids[r.row]: r.score for r in results}
            if len(run.legs) > 1:
                out.runs.setdefault("hybrid", {})[qid] = {searcher.ids[r.row]: r.score for r in query.hits}
            out.scored.append(Scored(qid, [searcher.ids[r] for r in query.candidates.tolist()], query.scores))
        for stage, seconds in run.seconds.items():
            clock[stage] = clock.get(stage, 0.0) + seconds
        if on_batch:
            on_batch(len(batch_ids))
    if ignore_identical_ids:
        out.runs = {name: _without_identical(run, depth) for name, run in out.runs.items()}
    out.seconds = clock
    return out


def _without_identical(run: Run, depth: int) -> Run:
    """BEIR's ignore_identical_ids: a document with the query's own id is not a result (ArguAna, Quora)."""
    trimmed = {}
    for qid, docs in run.items():
        kept = sorted(((d, s) for d, s in docs.items() if d != qid), key=lambda ds: -ds[1])[:depth]
        trimmed[qid] = dict(kept)
    return trimmed


def weight_sweep(scored: Sequence[Scored], qrels, weights: dict[str, float], legs: Sequence[str],
                 steps: int = 10) -> dict[str, list[tuple[float, float]]]:
    """nDCG@10 as each leg's convex weight goes 0 -> 1, the others keeping their ratio (for the plot)."""
    curves = {}
    for leg in legs:
        others = {o: weights.get(o, 0.0) for o in legs if o != leg}
        total = sum(others.values())
        shares = {o: (v / total if total else 1 / len(others)) for o, v in others.items()}
        points = []
        for i in range(steps + 1):
            w = i / steps
            run = fused_run(scored, "convex", {leg: w, **{o: (1 - w) * share for o, share in shares.items()}})
            points.append((w, evaluate(run, qrels, ["ndcg_cut_10"])["ndcg_cut_10"]))
        curves[leg] = points
    return curves


def trec_line(qid: str, doc: str, rank: int, score: float, tag: str) -> str:
    """One line of a TREC run file, as trec_eval reads it."""
    return f"{qid} Q0 {doc} {rank} {score:.6f} {tag}\n"


def write_trec(run: Run, path: Path, tag: str) -> None:
    with open(path, "w") as fh:
        for qid, docs in run.items():
            for rank, (doc, score) in enumerate(sorted(docs.items(), key=lambda ds: -ds[1]), start=1):
                fh.write(trec_line(qid, doc, rank, score, tag))


def read_trec(path: Path) -> Run:
    """A TREC run file back as query -> document -> score."""
    run: Run = {}
    for line in Path(path).read_text().splitlines():
        qid, _, doc, _, score, _ = line.split()
        run.setdefault(qid, {})[doc] = float(score)
    return run


def markdown(report: dict[str, Any]) -> str:
    index = report["index"]
    llm = f"; model {index['model']}, method {index['method']}" if index["model"] != "none" else ""
    if index.get("dense_model"):
        llm += f"; dense model {index['dense_model']}"
    lines = [f"{report['dataset']} ({report['split']}, {report['queries']} queries, "
             f"{index['documents']} documents{llm})", "",
             "| run | " + " | ".join(REPORTED) + " |", "|---|" + "---|" * len(REPORTED)]
    for name, values in report["results"].items():
        lines.append(f"| {name} | " + " | ".join(f"{values[m]:.4f}" for m in REPORTED) + " |")
    fusion = report["fusion"]
    if "hybrid" in report["results"]:
        lines += ["", f"hybrid = {fusion['fusion']} fusion, weights {json.dumps(fusion['weights'])}"
                  + (f", tuned on {fusion['tuned']['split']}" if fusion.get("tuned") else "")]
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise InputError("--plot needs matplotlib: pip install 'retriever[plot]'") from None
    fig, (bars, curves) = plt.subplots(1, 2, figsize=(11, 4))
    names = list(report["results"])
    bars.bar(names, [report["results"][n]["nDCG@10"] for n in names], color="#4c72b0")
    bars.set_title(f"{report['dataset']} {report['split']}: nDCG@10")
    for name, points in report.get("weight_sweep", {}).items():
        curves.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=name)
    curves.set_xlabel("weight of the leg (the others keep their ratio)")
    curves.set_ylabel("nDCG@10")
    curves.set_title("convex fusion: nDCG@10 against one leg's weight")
    curves.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def evaluate_beir(folder: str | Path, out: str | Path, *, index_dir: str | Path, split: str = "test",
                  settings: IndexSettings | None = None, model: str = "smollm2-135m", dtype: str = "auto",
                  rebuild: bool = False, tune: bool = False, tune_split: str = "train", tune_step: float = 0.05,
                  ignore_identical_ids: bool = False, depth: int = DEPTH, make_plot: bool = False,
                  progress=None, on_queries: Callable[[int], None] | None = None,
                  backbone=None, quiet: bool = True, device: str = "auto",
                  batch_tokens: int | None = None) -> dict[str, Any]:
    """Build or reuse the index, optionally tune fusion on tune_split, then report split; writes files to out.
    device, batch_tokens: where and in what batches the models run (speed only)."""
    folder, out = Path(folder), Path(out)
    if tune and tune_split == split:
        raise InputError(f"tuning on the reported split '{split}' would report a tuned-on number; "
                         "pick another --tune-split")
    test = read_split(folder, split)
    train = read_split(folder, tune_split) if tune else None
    retriever = open_index(folder, Path(index_dir), settings or IndexSettings(), model, dtype, rebuild,
                           progress, quiet, backbone, {"device": device, "batch_tokens": batch_tokens})
    legs = retriever.searcher.legs
    tuned = None
    if train is not None and len(legs) > 1:
        train_runs = run_split(retriever, train, depth, ignore_identical_ids, on_queries)
        best, tried = tune_weights(train_runs.scored, train.qrels, legs, tune_step)
        single = {leg: retrieval_measures(train_runs.runs[leg], train.qrels)["nDCG@10"] for leg in legs}
        tuned = {"split": tune_split, "queries": len(train.queries), "measure": "nDCG@10",
                 "value": best["value"], "grid_step": tune_step, "settings_tried": len(tried),
                 "legs_alone": single, "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        retriever.set_fusion(best["fusion"], best["weights"], tuned, best["params"])
    runs = run_split(retriever, test, depth, ignore_identical_ids, on_queries)
    s = retriever.searcher.settings
    report = {
        "dataset": folder.name, "split": split, "queries": len(test.queries), "depth": depth,
        "ignore_identical_ids": ignore_identical_ids,
        "index": {"path": str(retriever.path), "documents": len(retriever.searcher.document_ids),
                  "rows": len(retriever.searcher.ids), "passages": retriever.manifest.get("passages"),
                  "model": retriever.manifest["model"]["name"], "method": s.method, "legs": list(legs),
                  "max_tokens": s.max_tokens, "dense_model": s.dense_model},
        "fusion": {"fusion": s.fusion, "weights": s.weights, "params": s.fusion_params,
                   "tuned": retriever.manifest.get("tuned")},
        "results": {name: retrieval_measures(run, test.qrels) for name, run in runs.runs.items()},
        "seconds": {k: round(v, 3) for k, v in runs.seconds.items()},
    }
    if tuned is not None:
        report["tuning"] = tuned
    if len(legs) > 1:
        report["weight_sweep"] = weight_sweep(runs.scored, test.qrels, s.weights, legs)
    _write_outputs(report, runs, out, make_plot)
    return report


def _write_outputs(report: dict[str, Any], runs: LegRuns, out: Path, make_plot: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, run in runs.runs.items():
        write_trec(run, out / f"run.{name}.trec", f"retriever-{name}")
        files[name] = str(out / f"run.{name}.trec")
    report["files"] = {"runs": files, "json": str(out / "report.json"), "markdown": str(out / "report.md")}
    if make_plot:
        plot(report, out / "report.png")
        report["files"]["plot"] = str(out / "report.png")
    (out / "report.md").write_text(markdown(report))
    (out / "report.json").write_text(json.dumps(report, indent=2))
