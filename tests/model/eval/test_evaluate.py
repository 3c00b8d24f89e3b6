"""STS evaluation through the CLI, with the real model."""

from __future__ import annotations

import json

from click.testing import CliRunner

from retriever.cli.main import main


def test_eval_sts_command_with_the_real_model(sts_file):
    out = CliRunner().invoke(main, ["eval", "sts", str(sts_file), "--method", "prompteol,va", "--json"])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.stdout)
    assert [r["method"] for r in rows] == ["prompteol", "va"]
    assert all(-100 <= r["spearman"] <= 100 and r["pairs"] == 6 for r in rows)
    assert rows[0]["spearman"] > 50  # clear-cut pairs: a working embedding orders them
    text = CliRunner().invoke(main, ["eval", "sts", str(sts_file)]).stdout
    assert "prompteol" in text and "spearman" in text


