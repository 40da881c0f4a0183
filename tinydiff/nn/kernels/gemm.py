"""A matrix product straight into a preallocated array, with BLAS's transpose flags and accumulation:

    C <- op(A) op(B) + beta C,      op(X) = X or X^T,   A, B, C: 2-D, C-contiguous (row-major), one float dtype

``gemm_blas`` calls BLAS; ``gemm_ref`` is the NumPy reference with the same signature. Why not ``C[...] = A @ B.T``?
That allocates a temporary for the product and, with beta = 1, another pass to add it. ``np.matmul(op(A), op(B),
out=C)`` avoids the temporary (NumPy hands a transposed view to BLAS as a transpose flag, no copy) and is what
``gemm_blas`` runs for beta = 0, but it cannot accumulate. A backward pass needs exactly that: the residual block's
dL/dh = dy + dz W is one call with beta = 1 into the array that holds dy. For beta != 0 ``gemm_blas`` calls
sgemm/dgemm through ``scipy.linalg.blas``. (Why not SciPy for everything: SciPy ships its own OpenBLAS build, and on
the development machine its A^T B products at these sizes were ~20% slower than NumPy's; docs/performance.md.)

Row-major trick: SciPy's BLAS is column-major (Fortran). A row-major (M, N) array C seen as column-major is C^T, so
C = op(A) op(B) is computed as C^T = op(B)^T op(A)^T: pass B.T and A.T (Fortran-ordered views, no copy) in swapped
order with the same transpose flags, and C.T as the output (``overwrite_c``: written in place).
"""

from __future__ import annotations

import numpy as np

# Imported with this module, not on first use: threadpoolctl (``tinydiff.threads.blas_threads``) limits only the BLAS
# libraries already loaded when a limit is set, and SciPy's OpenBLAS is a second library beside NumPy's. Loaded late,
# inside ``with blas_threads(1):``, it would run on every core and fight the other pool.
from scipy.linalg import blas as _scipy_blas


def _scipy_gemm(dtype):
    return _scipy_blas.sgemm if dtype == np.float32 else _scipy_blas.dgemm


def gemm_ref(a, b, c, trans_a: bool = False, trans_b: bool = False, beta: float = 0.0) -> None:
    """c <- op(a) op(b) + beta c, in place (NumPy)."""
    product = (a.T if trans_a else a) @ (b.T if trans_b else b)
    c[...] = product + beta * c if beta else product


def gemm_blas(a, b, c, trans_a: bool = False, trans_b: bool = False, beta: float = 0.0) -> None:
    """c <- op(a) op(b) + beta c, in place (BLAS; no temporary). Raises ValueError for shapes that do not chain,
    non-contiguous arrays or mixed dtypes (BLAS would silently read the wrong memory or SciPy would copy)."""
    m, k = a.shape[::-1] if trans_a else a.shape
    k2, n = b.shape[::-1] if trans_b else b.shape
    if k != k2 or c.shape != (m, n):
        raise ValueError(f"gemm: op(a) is {m}x{k} and op(b) {k2}x{n}, so c must be {m}x{n}; got c {c.shape}")
    if not (a.dtype == b.dtype == c.dtype and a.dtype in (np.float32, np.float64)):
        raise ValueError(f"gemm: a, b, c must share dtype float32 or float64, got {a.dtype}, {b.dtype}, {c.dtype}")
    if not (a.flags.c_contiguous and b.flags.c_contiguous and c.flags.c_contiguous):
        raise ValueError("gemm: a, b and c must be C-contiguous (row-major) arrays")
    if m == 0 or n == 0:
        return
    if k == 0:
        c *= beta
        return
    if beta == 0.0:
        np.matmul(a.T if trans_a else a, b.T if trans_b else b, out=c)
        return
    _scipy_gemm(a.dtype)(1.0, b.T, a.T, beta=beta, c=c.T, trans_a=trans_b, trans_b=trans_a, overwrite_c=True)
