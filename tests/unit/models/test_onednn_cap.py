"""oneDNN runs bf16 products on kernels that keep a text's vectors batch-invariant (invariance.py).

Each case runs a fresh interpreter, since oneDNN reads its ISA cap once, at its first product; the ISA cap it
took is the line its verbose mode prints.
"""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = """
import torch
import retriever.models.backbones
x = torch.ones(16, 64, dtype=torch.bfloat16)
torch.nn.functional.linear(x, x)
torch._C._nn.mkldnn_linear(x.float().to_mkldnn(), x.float().to_mkldnn(), None)  # oneDNN on any x86 CPU
"""


def _isa_line(**env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("ONEDNN_", "DNNL_"))}
    environ.update(ONEDNN_VERBOSE="1", **env)
    out = subprocess.run([sys.executable, "-c", PROBE], env=environ, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stdout.splitlines() if ",info,cpu,isa:" in line]
    assert lines, out.stdout[-2000:]
    return lines[0]


def test_importing_the_engine_keeps_onednn_off_amx():
    assert "AMX" not in _isa_line()


def test_a_cap_the_user_chose_is_kept():
    line = _isa_line(ONEDNN_MAX_CPU_ISA="AVX2")  # below every bf16 kernel, on any x86 CPU this runs on
    assert "bfloat16" not in line and "AVX-512" not in line, line


MKL_PROBE = """
import torch
import retriever.models.backbones
torch.manual_seed(0)
weight, row = torch.randn(576, 1536), torch.randn(1, 1536)
rows = [torch.nn.functional.linear(torch.cat([row, torch.randn(m - 1, 1536)]), weight)[0] for m in (1, 16, 64, 200)]
print(all(torch.equal(rows[0], r) for r in rows))
"""


def test_a_row_of_an_fp32_product_does_not_depend_on_how_many_rows_share_it():
    environ = {k: v for k, v in os.environ.items() if k != "MKL_CBWR"}
    out = subprocess.run([sys.executable, "-c", MKL_PROBE], env=environ, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "True", out.stdout + out.stderr[-2000:]
