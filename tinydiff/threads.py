"""Who gets the cores: BLAS's thread pool and Numba's.

NumPy's matrix products run on OpenBLAS's threads; tinydiff's Numba kernels are serial. Small matrix products (the
MLP at batch 1000, one U-Net layer on a busy machine) are often *faster* on one BLAS thread than on two, because the
threads spend their time waiting for each other (docs/performance.md has the measurements).

``blas_threads(n)`` limits BLAS to ``n`` threads inside a ``with`` block, through threadpoolctl (a dependency of
tinydiff). ``blas_thread_count()`` is the number of threads BLAS really uses right now, and ``blas_info()`` says which
BLAS it is: every speed table prints them, so a number is never reported under a thread count it did not run with.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager


def _threadpoolctl():
    """The threadpoolctl module, or None (with one warning) in an environment installed without it."""
    import numpy  # noqa: F401  (threadpoolctl sees only libraries already loaded: numpy's OpenBLAS)

    try:
        import threadpoolctl
    except ImportError:
        warnings.warn("threadpoolctl is not installed (pip install threadpoolctl): BLAS keeps its own thread count "
                      "(OPENBLAS_NUM_THREADS), which on a busy machine can make tinydiff many times slower",
                      RuntimeWarning, stacklevel=3)
        return None
    return threadpoolctl


@contextmanager
def blas_threads(n: int | None):
    """Run the block with at most ``n`` BLAS threads (``None``: leave the setting alone); restored afterwards."""
    threadpoolctl = None if n is None else _threadpoolctl()
    if threadpoolctl is None:
        yield
        return
    with threadpoolctl.threadpool_limits(limits=n, user_api="blas"):
        yield


def blas_thread_count() -> int | None:
    """How many threads BLAS uses now (the largest count if several BLAS libraries are loaded); None if unknown."""
    threadpoolctl = _threadpoolctl()
    if threadpoolctl is None:
        return None
    counts = [i.get("num_threads") for i in threadpoolctl.threadpool_info() if i.get("user_api") == "blas"]
    return max(counts) if counts else None


def blas_info() -> str:
    """The BLAS library, its kernel (e.g. SkylakeX or Haswell) and the threads it uses now."""
    threadpoolctl = _threadpoolctl()
    if threadpoolctl is None:
        return "BLAS: unknown (pip install threadpoolctl to see which kernel and how many threads are active)"
    blas = [i for i in threadpoolctl.threadpool_info() if i.get("user_api") == "blas"]
    if not blas:
        return "BLAS: none found by threadpoolctl"
    return "; ".join(f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')}, "
                     f"{i.get('num_threads')} threads in use)" for i in blas)
