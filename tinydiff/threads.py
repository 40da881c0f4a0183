"""Who gets the cores: BLAS's thread pool and Numba's.

NumPy's matrix products run on OpenBLAS's threads; tinydiff's Numba kernels are serial. Small matrix products (the
MLP at batch 1000, one U-Net layer on a busy machine) are often *faster* on one BLAS thread than on two, because the
threads spend their time waiting for each other (docs/performance.md has the measurements).

``blas_threads(n)`` limits BLAS to ``n`` threads inside a ``with`` block. It uses threadpoolctl when it is installed
(``pip install threadpoolctl``, part of the ``bench`` extra) and otherwise does nothing, so tinydiff never needs it.
"""

from __future__ import annotations

from contextlib import contextmanager


@contextmanager
def blas_threads(n: int | None):
    """Run the block with at most ``n`` BLAS threads (``None``: leave the setting alone)."""
    if n is None:
        yield
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: without it BLAS keeps its own setting (OPENBLAS_NUM_THREADS)
        yield
        return
    with threadpool_limits(limits=n, user_api="blas"):
        yield


def blas_info() -> str:
    """The BLAS library, its kernel (e.g. SkylakeX or Haswell) and thread count, when threadpoolctl can tell."""
    import numpy  # noqa: F401  (threadpoolctl sees only libraries already loaded: numpy's OpenBLAS)

    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "BLAS: unknown (pip install threadpoolctl to see which kernel and how many threads are active)"
    blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    if not blas:
        return "BLAS: none found by threadpoolctl"
    return "; ".join(f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')}, {i.get('num_threads')} threads)"
                     for i in blas)
