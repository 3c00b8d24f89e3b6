"""retriever eval: STS Spearman of the methods, and BEIR retrieval quality with fusion tuning."""

from __future__ import annotations

import signal
from pathlib import Path

import click

from ..index.home import home
from ..models.encoders import DEFAULT_METHOD, method_names
from ..models.presets import DEFAULT_MODEL
from .options import (
    BATCH_TOKENS,
    DEVICE,
    DTYPES,
    THREADS,
    WithLegOptions,
    index_options,
    index_settings,
    print_json,
    use_threads,
)
from .progress import Progress, raise_interrupt


@click.group("eval")
def eval_group() -> None:
    """Offline evaluation."""


@eval_group.command("sts")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--model", default=DEFAULT_MODEL, show_default=True)
@click.option("--method", "methods", default=DEFAULT_METHOD, show_default=True,
              help=f"Comma-separated methods: {', '.join(method_names())}.")
@click.option("--dtype", type=click.Choice(DTYPES), default="auto")
@BATCH_TOKENS
@DEVICE
@THREADS
@click.option("--json", "as_json", is_flag=True)
def eval_sts(files: tuple[Path, ...], model: str, methods: str, dtype: str, batch_tokens: int | None, device: str,
             threads: int | None, as_json: bool) -> None:
    """Spearman x100 between cosine similarity and gold scores.

    Each FILE is a TSV with a header row `sentence1<TAB>sentence2<TAB>score` (as STS-B ships), then one pair a
    line. Fewer than two distinct scores or similarities make Spearman undefined: it is reported as null.
    """
    from ..eval.sts import evaluate_sts

    names = [m.strip() for m in methods.split(",") if m.strip()]
    use_threads(threads)
    rows = evaluate_sts(files, names, model=model, dtype=dtype, device=device, batch_tokens=batch_tokens)
    if as_json:
        print_json(rows)
        return
    base = {r["file"]: r["seconds_per_1000"] for r in rows if r["method"] == names[0]}
    click.echo(f"{'method':<16} {'file':<40} {'spearman':>9} {'s/1k sent':>10} {'cost vs ' + names[0]:>14}")
    for r in rows:
        ratio = r["seconds_per_1000"] / base[r["file"]] if base.get(r["file"]) else float("nan")
        spearman = "n/a" if r["spearman"] is None else f"{r['spearman']:.2f}"
        click.echo(f"{r['method']:<16} {r['file'][-40:]:<40} {spearman:>9} {r['seconds_per_1000']:>10.2f} "
                   f"{ratio:>13.2f}x")


@eval_group.command("beir", cls=WithLegOptions)
@click.argument("dataset", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.option("--split", default="test", show_default=True, help="The qrels split to report.")
@click.option("--index", "index_dir", type=click.Path(path_type=Path),
              help="Index to reuse if it holds this corpus, else to build (default: indexes/beir-<dataset>).")
@click.option("--rebuild", is_flag=True, help="Build the index even if --index already holds one.")
@click.option("--out", type=click.Path(path_type=Path),
              help="Folder for run files and reports (default: <index>-eval/<split>).")
@click.option("--tune", is_flag=True, help="Fit the fusion on --tune-split and store it in the index first.")
@click.option("--tune-split", default="train", show_default=True)
@click.option("--tune-step", type=click.FloatRange(0.01, 0.5), default=0.05, show_default=True,
              help="Grid step of the fusion weights.")
@click.option("--ignore-identical-ids", is_flag=True,
              help="Drop a hit whose id is the query's id (BEIR's rule for ArguAna and Quora).")
@click.option("--depth", type=click.IntRange(min=10), default=100, show_default=True)
@click.option("--plot", "make_plot", is_flag=True, help="Also write report.png (needs matplotlib).")
@index_options
@BATCH_TOKENS
@DEVICE
@THREADS
@click.option("--quiet", is_flag=True, help="No progress output.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def eval_beir(dataset: Path, split: str, index_dir: Path | None, rebuild: bool, out: Path | None, tune: bool,
              tune_split: str, tune_step: float, ignore_identical_ids: bool, depth: int, make_plot: bool,
              batch_tokens: int | None, device: str, threads: int | None, quiet: bool, as_json: bool,
              **opts) -> None:
    """nDCG@10, Recall@100, MRR@10 and MAP of each leg and the fusion on a BEIR folder, in one run.

    Index options apply when the index is built; a reused index keeps its own.
    """
    from ..eval.beir import evaluate_beir

    settings, opts = index_settings(opts)
    index_dir = index_dir or home() / f"beir-{dataset.resolve().name}"
    out = out or index_dir.parent / f"{index_dir.name}-eval" / split
    signal.signal(signal.SIGTERM, raise_interrupt)
    use_threads(threads)
    progress = None if quiet else Progress(None)
    queries_bar = None if quiet else Progress(None, unit="query", desc="searching")
    try:
        report = evaluate_beir(dataset, out, index_dir=index_dir, split=split, settings=settings,
                               model=opts["model"], dtype=opts["dtype"], rebuild=rebuild, tune=tune,
                               tune_split=tune_split, tune_step=tune_step,
                               ignore_identical_ids=ignore_identical_ids, depth=depth, make_plot=make_plot,
                               progress=progress, on_queries=queries_bar, quiet=quiet, device=device,
                               batch_tokens=batch_tokens)
    finally:
        for bar in (progress, queries_bar):
            if bar:
                bar.close()
    if as_json:
        print_json(report)
        return
    from ..eval.beir import markdown

    click.echo(markdown(report))
    click.echo(f"run files, report.json{', report.md and report.png' if make_plot else ' and report.md'} in {out}",
               err=True)
