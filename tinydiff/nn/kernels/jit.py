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
process start fast. Kernels are serial: BLAS already uses the cores, and two thread pools on two cores fight.
"""

FASTMATH = {"reassoc", "contract", "nsz", "arcp", "afn"}
FAST = dict(cache=True, fastmath=FASTMATH, error_model="numpy")
STRICT = dict(cache=True)   # no liberties: the exact float64 loops that gradient checks run through
