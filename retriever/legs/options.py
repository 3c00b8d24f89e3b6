"""How a leg declares its options: its config is a dataclass whose fields carry their command-line flag.

A leg's config (Leg.config) is what a user may choose for it, stored in the manifest under the leg's name
and handed to the leg as `settings.<leg name>`. A field with `option(...)` metadata is a CLI option of
`retriever index` and `eval beir` (the CLI reads them from the registry, legs/registry.py: nothing in
the engine lists them), its type taken from its default (a bool becomes --flag/--no-flag). A config may
define `from_dict` (how an older manifest reads: the defaults it was built with), `from_options` (rules
between options, e.g. one that implies another) and `describe` (its line in `retriever info`).
Nothing here imports a model or an array library: the CLI answers --help and refusals without them.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Option:
    """A config field as a command-line option."""

    field: str
    flag: str  # "--top-k"; a bool field gets "--top-k/--no-top-k"
    help: str
    default: Any
    choices: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None


def option(flag: str, help: str, choices: tuple[str, ...] | None = None, minimum: float | None = None,
           maximum: float | None = None) -> dict[str, Any]:
    """Field metadata that makes a config field a CLI option: `field(default=..., metadata=option(...))`."""
    return {"option": {"flag": flag, "help": help, "choices": choices, "minimum": minimum, "maximum": maximum}}


def options_of(config: type) -> list[Option]:
    """The CLI options a config class declares, in field order."""
    found = []
    for f in dataclasses.fields(config):
        if "option" in f.metadata:
            found.append(Option(f.name, default=f.default, **f.metadata["option"]))
    return found


def from_dict(config: type, data: dict[str, Any]) -> Any:
    """A config from its manifest form, through the class's own reader where it has one."""
    reader = getattr(config, "from_dict", None)
    return reader(data) if reader else config(**data)


def from_options(config: type, values: dict[str, Any]) -> Any:
    """A config from its CLI options' values, through the class's own rules where it has them."""
    maker = getattr(config, "from_options", None)
    return maker(values) if maker else config(**values)


def to_dict(value: Any) -> dict[str, Any]:
    return value.to_dict() if hasattr(value, "to_dict") else dataclasses.asdict(value)


def describe(value: Any) -> str:
    """A config's line in `retriever info`: its own describe(), else its fields as JSON."""
    return value.describe() if hasattr(value, "describe") else json.dumps(to_dict(value))
