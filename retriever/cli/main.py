"""The `retriever` command group: every command added from its room, the engine's errors as one line each."""

from __future__ import annotations

import json
import sys

import click

from ..errors import RetrieverError
from . import build, eval, info, mcp, search, serve


class Group(click.Group):
    """Turns the engine's own errors into one clear line and exit code 1, never a traceback."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["json"] = "--json" in args  # a script asked for JSON: its errors come as JSON too
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except RetrieverError as exc:
            if ctx.meta.get("json"):
                click.echo(json.dumps({"error": str(exc)}, ensure_ascii=False))
                sys.exit(1)
            raise click.ClickException(str(exc)) from None
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="retriever")
def main() -> None:
    """Hybrid sparse-dense retrieval with training-free LLM embeddings."""


for _command in (build.index, build.add, build.delete, build.optimize, build.verify, search.search, info.info,
                 eval.eval_group, serve.serve, mcp.mcp, info.models):
    main.add_command(_command)
