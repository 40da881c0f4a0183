"""Numba kernels for the hot paths of ``tinydiff.nn``, each beside the plain NumPy reference it is tested against.

Naming: a kernel and its reference live in the same file and share a name and a signature, told apart by a suffix,
``<op>_numba`` (fast) and ``<op>_ref`` (slow, obviously correct): ``gelu_forward_numba`` / ``gelu_forward_ref``
(``activations.py``), ``adam_update_numba`` / ``adam_update_ref`` (``optim.py``), ``im2col_numba`` / ``im2col_ref``
and ``conv2d_forward_numba`` (the direct loops) / ``conv2d_forward_ref`` (``conv.py``), ``groupnorm_forward_numba``
/ ``groupnorm_forward_ref`` (``groupnorm.py``), ``bias_gelu_numba`` / ``bias_gelu_ref`` (``fused_mlp.py``). Where
the fast path is a matrix product for BLAS rather than a Numba loop, the suffix names that: ``gemm_blas``
(``gemm.py``), ``conv2d_forward_im2col`` (im2col_numba, then one GEMM per image: what ``Conv2d`` runs). Tests check
that each pair agrees in float32 (and float64 where the kernel takes it).

Compilation: ``jit.py`` holds the one set of floating-point liberties every kernel is compiled with,
``@njit(**FAST)`` (reorder sums, fuse multiply-adds, ... but never assume "no NaN / no inf", so a diverged run is still
detected), and ``@njit(**STRICT)`` for the exact float64 loops. Kernels are cached on disk. The U-Net's P-layout
kernels below also come in a parallel version (the same template or code compiled with ``prange``, giving the same
bits), run when ``tinydiff.threads.use_threads(n)`` asks for n > 1 threads (``train --threads N``); every other kernel
is serial (docs/performance.md, "Threads"). To step through a kernel in a debugger, run with ``NUMBA_DISABLE_JIT=1``:
the same code then runs as plain Python.

The U-Net's fast path has kernels on another layout, so their reference is the NCHW layers themselves (tested in
tests/test_kernels_pconv.py and test_kernels_pnorm.py): ``simd.py`` (a 16 x float32 vector type), ``playout.py``
(the padded-plane layout and its conversions), ``pconv.py`` (register-blocked convolutions generated from one
template), ``pnorm.py`` (fused GroupNorm + AdaGN + SiLU). Used by models/unet_p.py.
"""
