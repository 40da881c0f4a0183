"""Numba kernels for the hot paths of ``tinydiff.nn``, each beside the plain NumPy reference it is tested against.

Convention: a kernel and its reference live in the same file and share a name and a signature, told apart by a
suffix, ``<op>_numba`` (fast) and ``<op>_ref`` (slow, obviously correct): for example ``gelu_forward_numba`` and
``gelu_forward_ref`` in ``kernels/activations.py``, ``adam_update_numba`` and ``adam_update_ref`` in
``kernels/optim.py``. Tests check that each pair agrees in float32 and float64. Layers call the ``_numba`` version.

Every kernel is ``@njit(cache=True)`` (a cold compile costs seconds; the cache makes the next process fast) and serial:
BLAS already uses the cores, and two thread pools on two cores fight (docs/performance.md, "Threads").
To step through a kernel in a debugger, run with ``NUMBA_DISABLE_JIT=1``: the same code then runs as plain Python.
"""
