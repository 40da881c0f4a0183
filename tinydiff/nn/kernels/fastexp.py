"""A float32 exp that vectorises, for kernels under FAST (Numba's exp is a scalar libm call without SVML).

    exp(y) = 2^-k exp(r),  k = round(-y log2 e),  r = y + k ln 2,  |r| <= ln 2 / 2

exp(r) is its degree-7 Taylor polynomial (relative error ~1e-7 on |r| <= ln 2 / 2) and 2^-k is built from k's seven
bits by selects, so the loop has no branch or floor call and LLVM vectorises it. y is clipped to [-87, 0]: the kernels
only need exp of non-positive arguments (Gaussians, sigmoids of -|x|). Tested against np.exp in test_kernels_pnorm.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from tinydiff.nn.kernels.jit import FAST

f32 = np.float32
LOG2E = f32(1.4426950408889634)
LN2 = f32(0.6931471805599453)


@njit(inline="always", **FAST)
def exp_nonpos32(y):
    """exp(y) for y <= 0 (clipped at -87), float32: 2^-k exp(r), k = round(-y log2 e), r = y + k ln 2, |r| <= ln2/2,
    exp(r) by its degree-7 Taylor polynomial, 2^-k from k's seven bits by selects (no branches: it vectorises)."""
    y = min(max(y, f32(-87.0)), f32(0.0))
    k = np.int32(-y * LOG2E + f32(0.5))                     # y <= 0, so truncation rounds to nearest
    r = y + f32(k) * LN2
    p = f32(1.0) + r * (f32(1.0) + r * (f32(0.5) + r * (f32(1 / 6) + r * (f32(1 / 24) + r * (
        f32(1 / 120) + r * (f32(1 / 720) + r * f32(1 / 5040)))))))
    s = f32(1.0)
    s *= f32(0.5) if k & 1 else f32(1.0)
    s *= f32(0.25) if k & 2 else f32(1.0)
    s *= f32(0.0625) if k & 4 else f32(1.0)
    s *= f32(0.00390625) if k & 8 else f32(1.0)
    s *= f32(1.52587890625e-05) if k & 16 else f32(1.0)
    s *= f32(2.3283064365386963e-10) if k & 32 else f32(1.0)
    s *= f32(5.421010862427522e-20) if k & 64 else f32(1.0)
    return s * p
