"""Every script in scripts/ imports what it names and parses its arguments (`--help`), so that moving a
module of the engine breaks a test here rather than a user's benchmark. (They also ran as benchmarks on
real data; what they measure is in docs/.)"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from ...conftest import ROOT

LIBRARIES = {"common", "costs", "key_token_variants"}  # what scripts share; a script imports no other script
SCRIPTS = sorted((ROOT / "scripts").glob("*.py"))


def _help(script) -> tuple[str, int, str]:
    out = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=300,
                         cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return script.name, out.returncode, (out.stderr or out.stdout)[-1500:]


def test_every_script_imports_and_parses_its_arguments():
    assert len(SCRIPTS) >= 10
    with ThreadPoolExecutor(2) as pool:
        failed = [(name, text) for name, code, text in pool.map(_help, SCRIPTS) if code != 0]
    assert not failed, failed


def test_scripts_share_code_through_the_libraries_only():
    names = {script.stem for script in SCRIPTS}
    assert names >= LIBRARIES
    for script in SCRIPTS:
        tree = ast.parse(script.read_text())
        imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                    for alias in node.names}
        imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                     if isinstance(node, ast.ImportFrom) and node.module and not node.level}
        assert imported & names <= LIBRARIES, (script.name, imported & names - LIBRARIES)
