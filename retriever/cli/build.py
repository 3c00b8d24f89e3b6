"""Building and changing an index: index, add, delete, optimize, verify."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..corpus.documents import Fields
from ..corpus.readers import count_documents, reader_for
from ..index.counts import counted
from ..index.home import home
from ..indexing.defaults import CHUNK
from ..settings import IndexSettings
from .info import human_bytes
from .options import (
    BATCH_TOKENS,
    DEVICE,
    DTYPES,
    LAST_INDEX,
    THREADS,
    WithLegOptions,
    index_options,
    index_settings,
    print_json,
    use_threads,
)
from .progress import Progress, raise_interrupt

if TYPE_CHECKING:
    from .. import api


def _build(corpus: Path, target: Path, settings: IndexSettings, model: str, dtype: str, quiet: bool,
           restart: bool, chunk_size: int, overwrite: bool, device: str = "auto",
           batch_tokens: int | None = None, fields: Fields | None = None, ray=None) -> api.Retriever:
    from .. import api

    signal.signal(signal.SIGTERM, raise_interrupt)  # a terminated build stops like Ctrl-C
    progress = None if quiet else Progress(count_documents(corpus))
    try:
        return api.Retriever.build(corpus, target, model=model, dtype=dtype, settings=settings,
                                   progress=progress, quiet=quiet, restart=restart, chunk_size=chunk_size,
                                   overwrite=overwrite, device=device, batch_tokens=batch_tokens, fields=fields,
                                   ray=ray)
    except KeyboardInterrupt:
        from ..index.checkpoint import committed_documents

        click.echo(f"interrupted: {target} is unchanged; {committed_documents(target):,} documents are committed "
                   "and kept, and the same command resumes from them (--restart discards them)", err=True)
        sys.exit(130)
    finally:
        if progress:
            progress.close()


@click.command(cls=WithLegOptions)
@click.argument("corpus", type=click.Path(path_type=Path))
@click.option("--index", "index_dir", type=click.Path(path_type=Path),
              help="Index folder (default: indexes/<corpus name>).")
@index_options
@click.option("--restart", is_flag=True, help="Discard the work of an interrupted build instead of resuming it.")
@click.option("--overwrite", is_flag=True,
              help="Replace the index already at --index (atomically, once the new one is complete).")
@click.option("--chunk-size", type=click.IntRange(min=1), default=CHUNK, show_default=True,
              help="Documents per committed chunk: a crash loses at most one chunk's work.")
@click.option("--id-field", help="The field (column) that holds the id (default: _id or id).")
@click.option("--text-field", help="The field (column) that holds the text (default: text, or Pyserini's contents).")
@click.option("--title-field", help="The field (column) that holds the title (default: title).")
@BATCH_TOKENS
@DEVICE
@THREADS
@click.option("--ray", "on_ray", is_flag=True,
              help="Encode on a Ray cluster (needs retriever[ray]): a new local one unless --ray-address.")
@click.option("--ray-address", metavar="ADDR", help="A running Ray cluster (auto, HOST:PORT, ray://HOST:10001).")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Ray encoder workers, each with the model loaded once.")
@click.option("--gpus-per-worker", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="GPUs each Ray worker gets (0: workers run on CPUs; --threads is then per worker).")
@click.option("--quiet", is_flag=True, help="No progress output.")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON when done.")
def index(corpus: Path, index_dir: Path | None, restart: bool, overwrite: bool, chunk_size: int,
          id_field: str | None, text_field: str | None, title_field: str | None, batch_tokens: int | None,
          device: str, threads: int | None, on_ray: bool, ray_address: str | None, workers: int,
          gpus_per_worker: float, quiet: bool, as_json: bool, **opts) -> None:
    """Build an index from a corpus: BEIR-style JSONL (_id, text, optional title and metadata; .gz too), a JSON
    array, Parquet, CSV or TSV with a header (other columns become metadata), or a folder of .txt/.md files.

    Interrupted (Ctrl-C, a kill, a crash), the same command resumes from the last committed chunk. An index
    already at --index is refused unless --overwrite. With --ray, Ray workers encode the corpus (JSONL or
    Parquet) and this process writes the same index a build without --ray writes.
    """

    settings, opts = index_settings(opts)
    reader_for(corpus)  # a missing corpus is refused here, before the engine is imported
    if settings.passage_tokens and settings.needs_model and settings.passage_tokens > settings.max_tokens and not quiet:
        click.echo(f"warning: --passage-tokens {settings.passage_tokens} is more than --max-tokens "
                   f"{settings.max_tokens}: the LLM reads only the first {settings.max_tokens} tokens of each passage",
                   err=True)
    target = index_dir or home() / corpus.name.split(".")[0]
    ray = None
    if on_ray or ray_address:
        from ..indexing.ray import RayOptions

        ray = RayOptions(ray_address, workers, gpus_per_worker, threads)
    elif workers != 1 or gpus_per_worker:
        raise click.UsageError("--workers and --gpus-per-worker need --ray")
    use_threads(threads)
    retriever = _build(corpus, target, settings, opts["model"], opts["dtype"], quiet, restart, chunk_size,
                       overwrite, device, batch_tokens, Fields(id_field, text_field, title_field), ray)
    m = retriever.manifest
    if as_json:
        from .. import api

        print_json(api.info(target))
    elif not quiet:
        click.echo(f"indexed {counted(m)} into {target} in {m['build_seconds']:.1f}s"
                   f"{_encoding_summary(m, settings)}", err=True)
        if m.get("resumed_documents"):
            click.echo(f"resumed: {m['resumed_documents']:,} documents came from the interrupted build", err=True)
        if m["documents_empty"]:
            click.echo(f"warning: {m['documents_empty']} documents have no text and no title", err=True)


def _encoding_summary(manifest: dict, settings: IndexSettings) -> str:
    """Tokens/s and truncation of the model that counted them: the LLM's limit, else the dense model's;
    nothing for an index that ran no model."""
    if not settings.models():
        return ""
    rate = manifest["tokens_embedded"] / max(manifest["build_seconds"], 1e-9)
    limit = settings.max_tokens if settings.needs_model else (manifest.get("dense_model") or {}).get("max_tokens")
    return f" ({rate:,.0f} tokens/s); {manifest['documents_truncated']:,} truncated to {limit} tokens"


@click.command()
@click.argument("index_dir", metavar="INDEX", type=click.Path(path_type=Path))
@click.argument("corpus", type=click.Path(path_type=Path))
@click.option("--upsert", is_flag=True, help="Replace documents whose id is already in the index.")
@click.option("--dtype", type=click.Choice(DTYPES), default=None,
              help="The model's dtype (default: the one the index was built in).")
@BATCH_TOKENS
@DEVICE
@THREADS
@click.option("--quiet", is_flag=True, help="No progress output.")
@click.option("--json", "as_json", is_flag=True, help="Print the new manifest as JSON.")
def add(index_dir: Path, corpus: Path, upsert: bool, dtype: str | None, batch_tokens: int | None, device: str,
        threads: int | None, quiet: bool, as_json: bool) -> None:
    """Add a JSONL corpus's documents to an index, scored like the ones already in it."""
    from .. import api

    docs, source = api.read_additions(index_dir, corpus, upsert)  # every line and id checked; no model yet
    use_threads(threads)
    retriever = api.Retriever.load(index_dir, quiet=quiet, dtype=dtype, device=device)
    progress = None if quiet else Progress(len(docs), desc="adding")
    try:
        if progress:
            progress(0, 0)
        manifest = retriever.add(docs, upsert=upsert, progress=progress, source=source, batch_tokens=batch_tokens)
    finally:
        if progress:
            progress.close()
    _report_update(manifest, as_json, quiet)


@click.command()
@click.argument("index_dir", metavar="INDEX", type=click.Path(path_type=Path))
@click.argument("ids", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print the new manifest as JSON.")
def delete(index_dir: Path, ids: tuple[str, ...], as_json: bool) -> None:
    """Delete documents by id; an id not in the index refuses the whole command (nothing is deleted).
    The model is not loaded."""
    from .. import api

    _report_update(api.delete_documents(index_dir, ids), as_json, quiet=False)


@click.command()
@click.argument("index_dir", metavar="INDEX", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the new manifest as JSON.")
def optimize(index_dir: Path, as_json: bool) -> None:
    """Merge an index's segments into one and drop its deleted documents; search results stay the same.
    Atomic: a crash leaves the index as it was. The model is not loaded."""
    from .. import api

    before = api.info(index_dir)
    manifest = api.optimize(index_dir)
    if as_json:
        print_json(manifest)
        return
    segments = len(before.get("segments", [None]))
    click.echo(f"{segments} segment{'s' * (segments != 1)} -> 1; {counted(manifest)}, "
               f"{human_bytes(before['size_bytes'])} -> {human_bytes(api.info(index_dir)['size_bytes'])}", err=True)


def _report_update(manifest: dict, as_json: bool, quiet: bool) -> None:
    if as_json:
        print_json(manifest)
    elif not quiet:
        last = manifest["updates"][-1]
        segments = len(manifest["segments"])
        click.echo(f"added {last['added']:,}, replaced {last.get('replaced', 0):,}, deleted {last['deleted']:,}: "
                   f"{counted(manifest)} now, in {segments} segment{'s' * (segments != 1)}", err=True)


@click.command()
@LAST_INDEX
@click.option("--json", "as_json", is_flag=True)
def verify(index_dir: Path | None, as_json: bool) -> None:
    """Check every file against its checksum and the legs against each other; exit 1 if anything fails."""
    from .. import api

    report = api.verify(index_dir)
    if as_json:
        print_json(report)
    else:
        for check in report["checks"]:
            click.echo(f"{'ok ' if check['ok'] else 'BAD'}  {check['check']:<24} {check['detail']}")
        click.echo(f"{report['path']}: {'verified' if report['ok'] else 'DAMAGED'}")
    if not report["ok"]:
        sys.exit(1)
