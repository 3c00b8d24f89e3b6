"""The options shared by commands: the index options (the engine's, and each registered leg's own from
its config, legs/options.py), registry names read when parsed, and the small parsers behind them."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import RetrieverError
from ..fusion import fusion_names
from ..legs.options import Option, from_options, options_of
from ..legs.registry import configured_legs, leg_config, leg_names
from ..models.encoders.registry import DEFAULT_METHOD, method_names
from ..models.presets import DEFAULT_DENSE_MODEL, DEFAULT_MODEL, PRESETS, SENTENCE_PRESETS
from ..settings import DEFAULT_WEIGHTS, LEGS, IndexSettings


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


def modes() -> tuple[str, ...]:
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


DTYPES = ["auto", "bfloat16", "float32", "float16", "int8"]  # what --dtype takes, on every command that runs a model
_INDEX_OPTIONS = [  # the engine's own; each leg's come from its config (leg_options)
    click.option("--model", default=DEFAULT_MODEL, show_default=True,
                 help=f"A preset ({', '.join(PRESETS)}), a .gguf file or a transformers folder."),
    click.option("--method", type=Registered(method_names, "method"), default=DEFAULT_METHOD, show_default=True,
                 help="Embedding method; tp-* adds Token Prepending; metaeol costs 8 forward passes per text."),
    click.option("--layer", type=int, default=None, help="Output layer (default: the last)."),
    click.option("--param", "params", multiple=True, metavar="KEY=VALUE",
                 help="Method parameter, e.g. layers=last-third, tokens=text, tp_start=1, tp_exit=6 (repeatable)."),
    click.option("--max-tokens", type=click.IntRange(min=1), default=IndexSettings.max_tokens, show_default=True,
                 help="Token budget per document; longer ones are truncated (counted in the manifest)."),
    click.option("--passage-tokens", type=click.IntRange(min=8), default=None,
                 help="Cut documents longer than this many tokens into passages (at sentence or word ends) and "
                      "score each document by its best passage; default: documents whole, cut at --max-tokens."),
    click.option("--passage-overlap", type=click.IntRange(min=0), default=None,
                 help="Tokens each passage repeats of the one before (default: half of --passage-tokens)."),
    click.option("--dtype", type=click.Choice(DTYPES), default="auto",
                 show_default=True, help="auto: bf16 where the hardware has it, else fp32. int8: fp32 with the "
                 "decoder layers dynamically quantized (CPU only; 1.3-1.7x faster than fp32, slower than native "
                 "bf16; a text's vectors then depend on its batch)."),
    click.option("--legs", default=",".join(LEGS), show_default=True,
                 help="Legs to build, comma separated (dense, sparse = key tokens, lexical = BM25)."),
    click.option("--dense-model", default=None, show_default=DEFAULT_DENSE_MODEL,
                 help=f"The dense leg's trained sentence encoder: a preset ({', '.join(SENTENCE_PRESETS)}) or a "
                      "sentence-transformers/BERT folder; none: the LLM's own method vectors instead."),
    click.option("--fusion", type=Registered(fusion_names, "fusion"), default=IndexSettings.fusion,
                 show_default=True),
    click.option("--fusion-param", "fusion_params", multiple=True, metavar="NAME=NUMBER",
                 help="A parameter of the fusion (repeatable), e.g. k=60 for rrf; its defaults otherwise."),
    click.option("--weight", "weights", multiple=True, metavar="LEG=WEIGHT",
                 help=f"Leg weight for --fusion convex (repeatable; defaults "
                      f"{', '.join(f'{k}={v}' for k, v in DEFAULT_WEIGHTS.items())}, tuned on SciFact train)."),
]


def _leg_option(leg: str, opt: Option) -> click.Option:
    """A leg config field (legs/options.py) as a click option; its value arrives as LEG__FIELD."""
    dest, kind = f"{leg}__{opt.field}", type(opt.default)
    if kind is bool:
        flag = opt.flag.removeprefix("--")
        return click.Option([f"--{flag}/--no-{flag}", dest], default=opt.default, show_default=True, help=opt.help)
    if opt.choices:
        value_type = click.Choice(opt.choices)
    elif kind is int:
        value_type = click.IntRange(opt.minimum, opt.maximum)
    elif kind is float:
        value_type = click.FloatRange(opt.minimum, opt.maximum)
    else:
        value_type = click.STRING
    return click.Option([opt.flag, dest], type=value_type, default=opt.default, show_default=True, help=opt.help)


def leg_options() -> list[click.Option]:
    """Every registered leg's options, in registration order."""
    return [_leg_option(leg, opt) for leg in configured_legs() for opt in options_of(leg_config(leg))]


class WithLegOptions(click.Command):
    """A command that takes every registered leg's options, read from the registry when it parses or shows
    help: a leg registered from outside (a plugin, a test) brings its flags with it."""

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        params = [*self.params, *leg_options()]
        help_option = self.get_help_option(ctx)
        return [*params, help_option] if help_option is not None else params


def print_json(data) -> None:
    """What scripts consume: indented JSON, text kept as written (no \\u escapes)."""
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


LAST_INDEX = click.option("--index", "index_dir", type=click.Path(path_type=Path),
                          help="Index folder (default: the last one built).")


def _usable_device(ctx, param, value: str) -> str:
    """--device cuda on a torch that cannot use one is refused at once, not after reading the corpus."""
    if value not in ("auto", "cpu"):
        from ..models.backbones import pick_device

        try:
            pick_device(value)
        except RetrieverError as exc:
            raise click.BadParameter(str(exc).removeprefix(f"--device {value}: ")) from None
    return value


DEVICE = click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
                      callback=_usable_device, help="Where the model runs (auto: a GPU when torch sees one).")


BATCH_TOKENS = click.option("--batch-tokens", type=click.IntRange(min=1), default=None,
                            help="Tokens per forward pass (default: 2,048 on a CPU, 32,768 on a GPU); speed only, "
                                 "same vectors.")


THREADS = click.option("--threads", type=click.IntRange(min=1), default=None,
                       help="CPU threads for the model and the search (default: torch's, one per core).")


def use_threads(threads: int | None) -> None:
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


def index_settings(opts: dict) -> tuple[IndexSettings, dict]:
    """IndexSettings from the shared options and the legs' own; returns the options it did not use (model,
    dtype)."""
    dense = opts.pop("dense_model")
    chosen = {} if dense is None else {"dense_model": _dense_model(dense)}  # else the engine's default
    settings = IndexSettings(
        **chosen, **_leg_configs(opts), method=opts.pop("method"),
        method_params=_method_params(opts.pop("params"), opts.pop("layer")), max_tokens=opts.pop("max_tokens"),
        passage_tokens=opts.pop("passage_tokens"), passage_overlap=opts.pop("passage_overlap"),
        legs=tuple(x.strip() for x in opts.pop("legs").split(",") if x.strip()),
        fusion=opts.pop("fusion"), fusion_params=_fusion_params(opts.pop("fusion_params")),
        weights=_weights(opts.pop("weights")))
    return settings, opts


def _leg_configs(opts: dict) -> dict:
    """Each leg's config from its options' values (popped from opts), through the config's own rules."""
    configs = {}
    for leg in configured_legs():
        config, fields = leg_config(leg), options_of(leg_config(leg))
        values = {o.field: opts.pop(f"{leg}__{o.field}") for o in fields if f"{leg}__{o.field}" in opts}
        try:
            configs[leg] = from_options(config, values)
        except (ValueError, RetrieverError) as exc:
            raise click.BadParameter(str(exc), param_hint=f"the {leg} leg's options ({fields[0].flag}, ...)") from None
    return configs


def _dense_model(value: str) -> str | None:
    return None if value.strip().lower() in ("none", "") else value
