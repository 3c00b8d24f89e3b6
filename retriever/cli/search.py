"""retriever search: one query, many (a file, stdin), printed, as JSON or as a run file."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..corpus.queries import check_queries, query_lines, read_query_file
from .options import DEVICE, LAST_INDEX, THREADS, Registered, modes, print_json, use_threads
from .progress import Progress

if TYPE_CHECKING:
    from .. import api


def _print_hits(query: str, hits: list[api.Hit]) -> None:
    click.echo(f"query: {query}")
    if not hits:
        click.echo("  (no matches)")
    for hit in hits:
        legs = " · ".join(f"{leg} {s:.4g}" for leg, s in hit.scores.items())
        where = f"  passage {hit.passage['number'] + 1}, characters {hit.passage['start']:,}-{hit.passage['end']:,}" \
            if hit.passage else ""
        click.echo(f"{hit.rank:>3}. {hit.id}  score {hit.score:.4g}  ({legs}){where}")
        if hit.title:
            click.echo(f"     {hit.title}")
        if hit.snippet:
            click.echo(f"     {hit.snippet}")
        if hit.tokens:
            click.echo("     matched: " + ", ".join(t["token"] for t in hit.tokens))


QUERY_BATCH = 256  # queries encoded and searched together by `search --queries` (as eval beir does)


FORMATS = ("trec", "jsonl", "tsv")


def _query_set(queries: tuple[str, ...], queries_file: str | None) -> dict[str, str]:
    """id -> text: the positional queries (ids 1, 2, ...), or a queries file, or stdin ('-')."""

    if queries and queries_file:
        raise click.UsageError("give queries as arguments or --queries FILE, not both")
    if queries_file == "-":
        found = query_lines(click.get_text_stream("stdin"), "stdin")
    elif queries_file:
        found = read_query_file(queries_file)
    else:
        found = {str(i): q for i, q in enumerate(queries, start=1)}
    if not found:
        raise click.UsageError("no query: give one or more QUERIES, or --queries FILE (- for stdin)")
    return found


def _check_output(output: Path | None, fmt: str | None, as_json: bool, as_jsonl: bool) -> str:
    """The output options, checked before the model loads; returns the run file's format."""
    if as_json and as_jsonl:
        raise click.UsageError("give --json or --jsonl, not both")
    if output is None:
        if fmt is not None:
            raise click.UsageError("--format is the --output file's format: give --output FILE too")
        return "trec"
    if output.is_dir():
        raise click.BadParameter(f"{output} is a folder; give a file name", param_hint="--output")
    if not output.parent.is_dir():
        raise click.BadParameter(f"{output.parent} does not exist: create it first", param_hint="--output")
    if not os.access(output.parent, os.W_OK):
        raise click.BadParameter(f"{output.parent} is not writable here", param_hint="--output")
    if (as_json or as_jsonl):
        raise click.UsageError("--output writes a run file; --json and --jsonl print to stdout: give one")
    return fmt or "trec"


def _write_run(results: list[dict], path: Path, fmt: str, tag: str) -> None:
    """A run file: TREC (qid Q0 doc rank score tag), JSONL (one result object a line) or TSV (qid doc rank score)."""
    from ..eval.beir import trec_line

    try:
        fh = open(path, "w", encoding="utf-8")  # noqa: SIM115 (closed by the with below)
    except OSError as exc:
        raise click.FileError(str(path), hint=exc.strerror) from None
    with fh:
        for r in results:
            if fmt == "jsonl":
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")
                continue
            for h in r["hits"]:
                fh.write(trec_line(r["query_id"], h["id"], h["rank"], h["score"], tag) if fmt == "trec"
                         else f"{r['query_id']}\t{h['id']}\t{h['rank']}\t{h['score']:.6f}\n")


@click.command()
@click.argument("queries", nargs=-1)
@LAST_INDEX
@click.option("--queries", "queries_file", metavar="FILE",
              help="Search every query of FILE: BEIR queries.jsonl, a TSV of id<TAB>text, or - for stdin "
                   "(one query a line).")
@click.option("-k", "k", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--mode", type=Registered(modes, "mode"), default="hybrid", show_default=True)
@click.option("--filter", "filter_", metavar="JSON",
              help='Only documents whose metadata match, e.g. \'{"topic": "volcano"}\', \'{"year": {"gte": 2000}}\', '
                   '\'{"_id": {"prefix": "doc-"}}\' (README: filters).')
@click.option("--model", default=None, help="Refuse to search unless the index was built with this model.")
@click.option("--json", "as_json", is_flag=True,
              help='One JSON object {"results": [{"query_id", "query", "mode", "hits": [...]}, ...]}.')
@click.option("--jsonl", "as_jsonl", is_flag=True, help="The same result objects, one JSON line per query.")
@click.option("--output", type=click.Path(path_type=Path), help="Write a run file instead of printing hits.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default=None,
              help="The --output file's format (default trec).")
@click.option("--run-tag", default="retriever", show_default=True, help="The TREC run's tag column.")
@DEVICE
@THREADS
@click.option("--quiet", is_flag=True, help="No progress output.")
def search(queries: tuple[str, ...], index_dir: Path | None, queries_file: str | None, k: int, mode: str,
           filter_: str | None, model: str | None, as_json: bool, as_jsonl: bool, output: Path | None, fmt: str,
           run_tag: str, device: str, threads: int | None, quiet: bool) -> None:
    """Search an index; each hit shows every leg's score and the tokens it shares with the query.

    Many queries (a file, stdin) are encoded and searched in batches of 256, with a progress bar.
    """
    from ..search.filters import parse_filter

    fmt = _check_output(output, fmt, as_json, as_jsonl)
    wanted = _query_set(queries, queries_file)
    check_queries(list(wanted.values()))  # an empty query or a bad filter fails here, before the model loads
    parse_filter(filter_)
    from .. import api

    use_threads(threads)
    retriever = api.Retriever.load(index_dir, model=model, mode=mode, device=device)
    ids, texts = list(wanted), list(wanted.values())
    explain = output is None or fmt == "jsonl"
    progress = None if quiet or len(texts) <= QUERY_BATCH else Progress(len(texts), unit="query", desc="searching")
    results = []
    try:
        for start in range(0, len(texts), QUERY_BATCH):
            batch = texts[start:start + QUERY_BATCH]
            hits = retriever.search_batch(batch, k=k, mode=mode, explain=explain, filter=filter_)
            results += [api.result(qid, q, mode, h) for qid, q, h in zip(ids[start:], batch, hits, strict=False)]
            if progress:
                progress(len(batch))
    finally:
        if progress:
            progress.close()
    if output is not None:
        _write_run(results, output, fmt, run_tag)
        if not quiet:
            click.echo(f"{len(results):,} queries searched; {fmt} run written to {output}", err=True)
    elif as_json:
        print_json({"results": results})
    elif as_jsonl:
        for r in results:
            click.echo(json.dumps(r, ensure_ascii=False))
    else:
        for r, query in zip(results, texts, strict=True):
            _print_hits(query, [api.Hit(**h) for h in r["hits"]])
