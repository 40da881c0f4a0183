"""Who gets the cores: BLAS's thread pool and Numba's.

NumPy's matrix products run on OpenBLAS's threads; tinydiff's Numba kernels run on Numba's. Small matrix products (the
MLP at batch 1000, one U-Net layer on a busy machine) are often *faster* on one BLAS thread than on two, because the
threads spend their time waiting for each other (docs/performance.md has the measurements).

``use_threads(n, blas)`` is the one setting a user needs (``--threads N``): inside the block the U-Net's kernels
(convolutions, fused GroupNorm, resampling) run on n Numba threads and BLAS on ``blas`` threads (default n; the
commands pass ``blas_share(n, model)``: n for the MLP, whose work is BLAS, 1 for the U-Net, whose work is the Numba
kernels). With n = 1 the serial kernels run and Numba's thread pool is never started. ``auto_threads(model)`` is
``--threads auto``, the default of ``sample`` and ``evaluate``. The pools never run at the same time (Python calls one
kernel after the other), but an idle pool's threads may spin for a while before they sleep and steal the core the
other pool needs, which is why Numba's threads run on OpenMP with idle threads sleeping (_choose_threading_layer):
docs/performance.md ("Threads") has the measurements behind the defaults. GNU OpenMP's threads do not survive a
fork: in a child forked from a process that ran them, ``use_threads(n > 1)`` warns and runs the serial kernels.

``blas_threads(n)`` limits BLAS to ``n`` threads inside a ``with`` block, through threadpoolctl (a dependency of
tinydiff). ``blas_thread_count()`` is the number of threads BLAS really uses right now, and ``blas_info()`` says which
BLAS it is: every speed table prints them, so a number is never reported under a thread count it did not run with.
"""

from __future__ import annotations

import os
import warnings
from contextlib import contextmanager

_kernel_threads = 1             # threads of tinydiff's parallel kernels now (1: the serial versions run)
_threads_pid = None             # the process that first ran the parallel kernels (GNU OpenMP's threads do not fork)


def _threadpoolctl():
    """The threadpoolctl module, or None (with one warning) in an environment installed without it."""
    # threadpoolctl sees (and limits) only the libraries loaded already: numpy's OpenBLAS, and SciPy's own copy,
    # which tinydiff's kernels bring in (scipy.special). Loaded after a limit was set, SciPy's ran on every core.
    import numpy  # noqa: F401
    import scipy.special  # noqa: F401

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


def kernel_threads() -> int:
    """How many threads tinydiff's Numba kernels use now (1: their serial versions run)."""
    return _kernel_threads


def available_kernel_threads() -> int:
    """The most threads Numba can give (NUMBA_NUM_THREADS, by default the number of CPUs)."""
    from numba import config

    return config.NUMBA_NUM_THREADS


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, e.g. a container's share), at most what Numba allows."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):                         # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, available_kernel_threads()))


def auto_threads(model: str) -> int:
    """``--threads auto``: the threads that pay for drawing from a model kind. "unet": every usable core (a U-Net pass
    on 2 threads took 0.58-0.77x the one-thread time on a quiet 2-core machine and 0.69-0.97x beside two busy processes;
    docs/performance.md, "Threads"); "mlp": 1 (its work is small matrix products: one MLP evaluation at batch 64
    took 0.35 / 0.53 ms on 2 BLAS threads against 0.30 / 0.47 on one, `bench sample`, two runs). Sampling gives the
    same bits on any number of threads (tests/test_kernels_parallel.py)."""
    if model not in ("unet", "mlp"):
        raise ValueError(f"auto_threads: model must be 'unet' or 'mlp', got {model!r}")
    return usable_cores() if model == "unet" else 1


def _choose_threading_layer() -> None:
    """Numba's OpenMP layer with idle threads that sleep (``OMP_WAIT_POLICY=passive``), else "workqueue"; unless
    the user chose a layer (NUMBA_THREADING_LAYER) or a wait policy (OMP_WAIT_POLICY), or threads already run.

    Why (docs/performance.md, "Threads"): in OpenMP the calling thread does its share of a parallel loop, so on 2
    threads each kernel wakes one sleeping thread; in "workqueue" the caller waits while the pool's threads work, so
    both must be woken. A U-Net pass on 2 threads took 0.62x the one-thread time with OpenMP (passive) and 0.73-1.04x
    with workqueue on a quiet 2-core machine; 0.69-0.73x and 0.77-0.81x beside two busy processes. OpenMP's default
    policy keeps idle threads spinning, which on a busy machine takes the cores from the threads still working (2.8x
    *slower* than one thread): hence "passive", which libgomp reads when it is loaded, so it is set here, before
    Numba loads its OpenMP layer."""
    from numba import config
    from numba.np.ufunc import parallel

    if "NUMBA_THREADING_LAYER" in os.environ or parallel._is_initialized:
        return
    os.environ.setdefault("OMP_WAIT_POLICY", "passive")
    config.THREADING_LAYER = "default"                       # the first of the priority list that loads
    config.THREADING_LAYER_PRIORITY = ["omp", "workqueue", "tbb"]


def _forked_from_openmp() -> bool:
    """True in a child forked (without exec) from a process whose kernels ran on Numba's OpenMP threads."""
    if _threads_pid is None or _threads_pid == os.getpid():
        return False
    import numba

    try:
        return numba.threading_layer() == "omp"
    except ValueError:                                      # the layer never started
        return False


@contextmanager
def use_threads(n: int | None, blas: int | None = None):
    """Run the block with tinydiff's kernels on ``n`` Numba threads and BLAS on ``blas`` threads (default: n).

    ``n = None`` leaves both alone. n larger than Numba allows (``available_kernel_threads()``) is reduced to it with
    a warning. Both settings are restored afterwards."""
    global _kernel_threads
    if n is None:
        with blas_threads(blas):
            yield
        return
    if n < 1:
        raise ValueError(f"use_threads: n must be >= 1, got {n}")
    most = available_kernel_threads()
    if n > most:
        warnings.warn(f"use_threads({n}): Numba can use at most {most} threads here (NUMBA_NUM_THREADS / CPUs); "
                      f"using {most}", RuntimeWarning, stacklevel=3)
        n = most
    before = _kernel_threads
    if n > 1 and _forked_from_openmp():
        warnings.warn(f"use_threads({n}): this process was forked from one that ran tinydiff's kernels on OpenMP "
                      "threads, which GNU OpenMP cannot do again after a fork (Numba would stop the process); running "
                      "the serial kernels, which give the same results. To use threads here, start processes with "
                      "multiprocessing's 'spawn' method, or set NUMBA_THREADING_LAYER=workqueue",
                      RuntimeWarning, stacklevel=3)
        n = 1
    if n > 1:
        import numba

        global _threads_pid
        _choose_threading_layer()
        _threads_pid = _threads_pid or os.getpid()
        numba_before = numba.get_num_threads()
        numba.set_num_threads(n)
    try:
        _kernel_threads = n
        with blas_threads(n if blas is None else blas):
            yield
    finally:
        _kernel_threads = before
        if n > 1:
            numba.set_num_threads(numba_before)


def blas_share(threads: int, model: str) -> int:
    """BLAS threads that go with ``threads`` cores for a model kind: all of them for the MLP (its work is matrix
    products), 1 for the U-Net (its work is tinydiff's parallel kernels; its few small matrix products gain nothing
    from a second BLAS thread, whose idle spinning measured 0.82x -> 1.08x of the 1-thread step on a busy machine).
    One pool gets the cores."""
    return threads if model == "mlp" else 1


def threads_report() -> str:
    """One line: tinydiff's kernel threads, Numba's threading layer (once started) and BLAS's threads now."""
    layer = "not started"
    if _kernel_threads > 1:
        import numba

        try:
            layer = numba.threading_layer()
        except ValueError:
            layer = "not started yet"
    return (f"tinydiff kernel threads {_kernel_threads} (Numba threading layer: {layer}), "
            f"BLAS threads {blas_thread_count() or 'unknown'}")
