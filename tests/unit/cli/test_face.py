"""The package's face is light: `import retriever`, `retriever --help`, `retriever index --help` and a
refusal of bad input load none of torch, faiss or transformers (what made each of them take seconds), and
every public name still resolves. The times are in docs/benchmarks.md; here, what was imported."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "faiss", "transformers", "scipy", "pyarrow")

PROBE = """
import json, sys
{code}
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))
"""


def _heavy_after(code: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", PROBE.format(code=code, heavy=HEAVY)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def _cli(*args: str) -> str:
    return f"""
from click.testing import CliRunner
from retriever.cli import main
result = CliRunner().invoke(main, {list(args)!r})
print(result.output, file=sys.stderr)
"""


def test_import_retriever_loads_no_model_library():
    assert _heavy_after("import retriever") == []


@pytest.mark.parametrize("args", [("--help",), ("index", "--help"), ("search", "--help"),
                                  ("index", "missing.jsonl", "--index", "nowhere"),
                                  ("index", "missing.jsonl", "--fusion", "nosuch"),
                                  ("search", "--index", "nowhere", "")])
def test_the_cli_answers_help_and_refusals_without_them(args):
    assert _heavy_after(_cli(*args)) == []


def test_every_public_name_resolves():
    import retriever

    for name in retriever.__all__:
        assert getattr(retriever, name) is not None, name
    with pytest.raises(AttributeError):
        retriever.no_such_name  # noqa: B018
