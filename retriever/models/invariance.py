"""Batch invariance: a text's numbers must not depend on how many other texts share its matrix products.

CPU BLAS libraries pick kernels by the number of rows M in a product, and round differently with each.
Measured with torch 2.13 on an AVX-512 CPU (tests/model/models/test_invariance.py keeps checking): MKL's fp32 GEMM
rounds M = 1-3, 5-7 and 9-11 otherwise than M = 4, 8 or 12 and up; oneDNN's bf16 GEMM emulated without
native bf16 (ONEDNN_MAX_CPU_ISA=AVX512_CORE) rounds some odd M otherwise than even ones (29, 65, 637, ...);
native bf16 on AVX512-BF16 kernels showed no case. With M >= 16 and a multiple of 4, every row came
out the same whatever M and wherever the row sat (docs/numerics.md says how far this was checked). So
every product whose rows are texts (the decoder's linear layers, the vocabulary projection) gets such a
row count: padding positions in the forward pass, zero rows in the projection.
Attention, the one step that mixes positions, runs per text (attention.py).

oneDNN's AMX bf16 kernels (Intel Xeon from Sapphire Rapids on) are another matter: CI on such a CPU saw a
text's bf16 vectors move by up to 1.1% of their size between alone and in a batch, padding or not, and
MiniLM's differ at every coordinate. So oneDNN is capped at its AVX512-BF16 kernels, the native bf16
path measured invariant above, unless the user chose a cap (ONEDNN_MAX_CPU_ISA, read by oneDNN at its
first product, so this module sets it on import, before any model runs). AVX-512 and AVX2 CPUs have
nothing above the cap, so it changes nothing there; on an AMX CPU `ONEDNN_MAX_CPU_ISA=AVX512_CORE_AMX`
takes AMX back, its bf16 vectors then depending on the batch.

MKL's fp32 GEMM on two threads splits a product with many rows otherwise than one with few: on a 2-core
Xeon (Sapphire Rapids, torch 2.13) a row of a 1536-deep product came out otherwise for M >= 57 than for
M = 16, so a text alone and the same text in a long batch differed in the last bits. MKL's strict
conditional numerical reproducibility (MKL_CBWR=AUTO,STRICT, set here unless the user chose a mode) made
every M from 1 to 129 give the same row there, at no measured cost (10 products of 2048^3: 0.408 s
against 0.412 s).
"""

from __future__ import annotations

import os

ISA_VARIABLE = "ONEDNN_MAX_CPU_ISA"
INVARIANT_ISA = "AVX512_CORE_BF16"
os.environ.setdefault(ISA_VARIABLE, INVARIANT_ISA)
REPRODUCIBLE_VARIABLE = "MKL_CBWR"
REPRODUCIBLE_MKL = "AUTO,STRICT"
os.environ.setdefault(REPRODUCIBLE_VARIABLE, REPRODUCIBLE_MKL)

import torch  # noqa: E402  (after the variables: the libraries read them at their first product)

MIN_ROWS = 16
ROW_MULTIPLE = 4


def row_count(rows: int) -> int:
    """The row count a product of `rows` rows is padded to."""
    return max(MIN_ROWS, -(-rows // ROW_MULTIPLE) * ROW_MULTIPLE)


def padded_width(texts: int, width: int) -> int:
    """The narrowest batch width >= width whose texts x width positions make an invariant row count."""
    while texts * width != row_count(texts * width):
        width += 1
    return width


def pad_rows(x: torch.Tensor) -> torch.Tensor:
    """x with zero rows appended up to row_count (x itself when it has that many)."""
    rows = row_count(x.shape[0])
    if x.shape[0] == rows:
        return x
    return torch.cat([x, x.new_zeros((rows - x.shape[0], *x.shape[1:]))])


def left_padded(inputs: list[list[int]], width: int, pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(ids, mask, positions) of texts left-padded to width: each text's tokens are its row's last ones, as
    the per-text attention needs, and positions count real tokens only, so a text sits where it would alone."""
    ids = torch.full((len(inputs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(inputs), width), dtype=torch.long)
    for row, seq in enumerate(inputs):
        ids[row, width - len(seq):] = torch.tensor(seq, dtype=torch.long)
        mask[row, width - len(seq):] = 1
    return ids, mask, (mask.cumsum(-1) - 1).clamp_min(0)
