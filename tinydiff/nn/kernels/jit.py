"""How every tinydiff kernel is compiled: one set of floating-point liberties, written once.

    from tinydiff.nn.kernels.jit import FAST
    @njit(**FAST)
    def relu_numba(x, out): ...

``FASTMATH`` lets LLVM do what vectorising a loop needs, and nothing that changes what a NaN or an inf means:

    reassoc    reorder sums and products (a reduction can then run in vector lanes: the result changes by round-off)
    contract   fuse a * b + c into one fma instruction (one rounding instead of two)
    nsz        ignore the sign of zero (-0.0 may come out as +0.0)
    arcp       x / y may become x * (1 / y)
    afn        library functions (sqrt, exp, ...) may be approximated

Left out on purpose: ``nnan`` and ``ninf`` (part of ``fastmath=True``). With them LLVM may assume no value is NaN or
inf and delete the very checks that find a diverged run (``isfinite``, ``x != x``) or let a NaN turn into a finite
number. Without them a NaN in the input still comes out as NaN, and tests/test_kernels_fused_mlp.py checks that.

``error_model="numpy"``: division by zero gives inf/NaN as in NumPy instead of raising, so a division does not need a
branch that blocks vectorisation. ``cache=True``: a cold compile costs seconds; the on-disk cache makes the next
process start fast.

Threads. A kernel whose work splits into independent parts is written once with ``numba.prange`` over the parts and
compiled twice by ``serial_and_parallel``: serially (``prange`` then runs as ``range``; what one thread runs, with
no thread pool started) and with ``parallel=True`` (the parts are spread over Numba's threads). Each part writes its
own outputs and partial sums are combined in a fixed order afterwards, so both versions give the same bits.
``tinydiff.threads`` decides which one runs (``kernel_threads()``).
"""

import types

from numba import njit

FASTMATH = {"reassoc", "contract", "nsz", "arcp", "afn"}
FAST = dict(cache=True, fastmath=FASTMATH, error_model="numpy")
STRICT = dict(cache=True)   # no liberties: the exact float64 loops that gradient checks run through


def serial_and_parallel(py_func, **options):
    """(serial, parallel): ``py_func`` compiled with ``njit(**options)`` and with ``njit(parallel=True, **options)``.

    The parallel copy is the same code under the name ``<name>_par``, so Numba's on-disk cache (keyed by the
    function's name, not by its compile options) keeps the two apart. Under NUMBA_DISABLE_JIT=1 both are plain Python
    (``prange`` is ``range``)."""
    par = types.FunctionType(py_func.__code__, py_func.__globals__, py_func.__name__ + "_par", py_func.__defaults__,
                             py_func.__closure__)
    par.__qualname__ = py_func.__qualname__ + "_par"
    par.__doc__ = py_func.__doc__
    par.__module__ = py_func.__module__
    return njit(**options)(py_func), njit(parallel=True, **options)(par)
