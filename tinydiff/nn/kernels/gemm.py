"""A matrix product straight into a preallocated array, with BLAS's transpose flags:

    C <- op(A) op(B),      op(X) = X or X^T,   A, B, C: 2-D, C-contiguous (row-major), one float dtype

``gemm_blas`` is ``np.matmul(op(A), op(B), out=C)`` with the checks that keep it a single BLAS call; ``gemm_ref`` is
the plain NumPy reference with the same signature. Why not ``C[...] = A @ B.T``? That allocates a temporary for the
product and copies it. With ``out=``, NumPy hands the transposed view to BLAS as a transpose flag (no copy) and BLAS
writes C in place.

Why not BLAS's own accumulation (C <- op(A) op(B) + C, beta = 1, which a residual block's dL/dh = dy + dz W would
like)? NumPy does not expose it, and SciPy's ``scipy.linalg.blas.sgemm`` does but ships a second OpenBLAS: two BLAS
thread pools taking turns on two cores made a 2-thread MLP step 100x slower (docs/performance.md). The addition is
fused into the next element-wise kernel instead (``fused_mlp.residual_gelu_backward_bias``).
"""

from __future__ import annotations

import numpy as np


def gemm_ref(a, b, c, trans_a: bool = False, trans_b: bool = False) -> None:
    """c <- op(a) op(b), in place (NumPy, through a temporary)."""
    c[...] = (a.T if trans_a else a) @ (b.T if trans_b else b)


def gemm_blas(a, b, c, trans_a: bool = False, trans_b: bool = False) -> None:
    """c <- op(a) op(b), in place, one BLAS call and no temporary. Raises ValueError for shapes that do not chain,
    non-contiguous arrays or mixed dtypes (NumPy would then copy, or not call BLAS at all)."""
    m, k = a.shape[::-1] if trans_a else a.shape
    k2, n = b.shape[::-1] if trans_b else b.shape
    if k != k2 or c.shape != (m, n):
        raise ValueError(f"gemm: op(a) is {m}x{k} and op(b) {k2}x{n}, so c must be {m}x{n}; got c {c.shape}")
    if not (a.dtype == b.dtype == c.dtype and a.dtype in (np.float32, np.float64)):
        raise ValueError(f"gemm: a, b, c must share dtype float32 or float64, got {a.dtype}, {b.dtype}, {c.dtype}")
    if not (a.flags.c_contiguous and b.flags.c_contiguous and c.flags.c_contiguous):
        raise ValueError("gemm: a, b and c must be C-contiguous (row-major) arrays")
    np.matmul(a.T if trans_a else a, b.T if trans_b else b, out=c)
