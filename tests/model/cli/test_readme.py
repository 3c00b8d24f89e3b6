"""Every Python block of README.md runs as written, in a fresh folder (a newcomer copies them)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from ...conftest import ROOT

README = ROOT / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_the_readme_has_python_to_run():
    assert BLOCKS


@pytest.mark.parametrize("number", range(len(BLOCKS)))
def test_a_readme_python_block_runs(number, tmp_path):
    done = subprocess.run([sys.executable, "-c", BLOCKS[number]], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "RETRIEVER_HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
