"""Fused element-wise activation kernels (GELU exact and tanh, SiLU), forward and backward, each beside its reference.

Naming: ``<op>_numba`` is the fast kernel and ``<op>_ref`` the plain NumPy reference with the same signature; the tests
check that they agree in float32 and float64. Every function takes arrays of any shape and returns a new array of the
same shape and dtype (float32 or float64).

Why approximations in float32? Numba's pip build has no SVML, so ``math.erf`` and ``math.exp`` inside a loop are scalar
libm calls (7-18 ns per element) and stop the loop from vectorising. For float32 the kernels therefore use branch-free
approximations that LLVM vectorises (well below 2 ns per element), accurate to a few float32 ulp:

- erf: a rational function x P(x^2) / Q(x^2) on x clipped to [-4, 4] (the float32 coefficients Eigen and XLA use;
  |error| < 1e-6 in GELU on [-12, 12], measured against scipy.special.erf);
- exp(y) for y <= 0: y = r - k ln2 with |r| <= ln2/2, exp(r) by its Taylor polynomial of degree 7, and 2^-k built
  from the bits of k by seven branch-free multiplications (relative error < 1e-7).

float64 arrays take the exact path (``math.erf``, ``math.exp``), so float64 gradient checks see the exact functions.
Set ``NUMBA_DISABLE_JIT=1`` to step through the kernels in a debugger (slowly).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from scipy.special import erf as _erf_scipy

from tinydiff.nn.kernels.jit import FAST, STRICT

SQRT_HALF = 0.7071067811865476            # 1 / sqrt(2)
INV_SQRT_2PI = 0.3989422804014327         # 1 / sqrt(2 pi)
SQRT_2_OVER_PI = 0.7978845608028654       # sqrt(2 / pi), in the tanh approximation of GELU
GELU_TANH_C = 0.044715
LOG2E = 1.4426950408889634
LN2 = 0.6931471805599453



def _check(x, name):
    x = np.asarray(x)
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name}: expected a float32 or float64 array, got {x.dtype}. Cast it with x.astype(np.float32).")
    return np.ascontiguousarray(x)


def _run(kernel_exact, kernel_fast, name, *arrays):
    """Flatten the (contiguous) inputs, pick the float64 (exact) or float32 (fast) loop, return the output."""
    arrays = [_check(a, name) for a in arrays]
    x = arrays[0]
    if any(a.shape != x.shape or a.dtype != x.dtype for a in arrays):
        raise ValueError(f"{name}: inputs must share shape and dtype, got {[(a.shape, str(a.dtype)) for a in arrays]}")
    out = np.empty_like(x)
    kernel = kernel_exact if x.dtype == np.float64 else kernel_fast
    kernel(*[a.reshape(-1) for a in arrays], out.reshape(-1))
    return out


# ---- scalar building blocks (inlined into the loops) ---------------------------------------------------------------
@njit(inline="always", **FAST)
def _erf_fast(z):
    """erf(z) as z P(z^2) / Q(z^2) on z clipped to [-4, 4] (erf(4) = 1 - 1.5e-8): float32 accuracy, no branches."""
    z = min(max(z, -4.0), 4.0)
    z2 = z * z
    p = -2.72614225801306e-10
    p = p * z2 + 2.77068142495902e-08
    p = p * z2 - 2.10102402082508e-06
    p = p * z2 - 5.69250639462346e-05
    p = p * z2 - 7.34990630326855e-04
    p = p * z2 - 2.95459980854025e-03
    p = p * z2 - 1.60960333262415e-02
    q = -1.45660718464996e-05
    q = q * z2 - 2.13374055278905e-04
    q = q * z2 - 1.68282697438203e-03
    q = q * z2 - 7.37332916720468e-03
    q = q * z2 - 1.42647390514189e-02
    return z * p / q


@njit(inline="always", **FAST)
def _exp_nonpos_fast(y):
    """exp(y) for y <= 0 (clipped at -87): 2^-k exp(r), k = round(-y / ln 2), r = y + k ln 2, |r| <= ln2 / 2."""
    y = min(max(y, -87.0), 0.0)
    k = math.floor(-y * LOG2E + 0.5)
    r = y + k * LN2
    p = 1.0 + r * (1.0 + r * (0.5 + r * (1 / 6 + r * (1 / 24 + r * (1 / 120 + r * (1 / 720 + r * (1 / 5040)))))))
    ki = np.int32(k)                                     # 0 <= k <= 126: 2^-k from its seven bits
    s = 1.0
    s *= 0.5 if ki & 1 else 1.0
    s *= 0.25 if ki & 2 else 1.0
    s *= 0.0625 if ki & 4 else 1.0
    s *= 0.00390625 if ki & 8 else 1.0
    s *= 1.52587890625e-05 if ki & 16 else 1.0
    s *= 2.3283064365386963e-10 if ki & 32 else 1.0
    s *= 5.421010862427522e-20 if ki & 64 else 1.0
    return s * p


@njit(inline="always", **FAST)
def _sigmoid_fast(x):
    """sigma(x) = 1 / (1 + e^-x), through e = exp(-|x|) so the exponential never overflows."""
    e = _exp_nonpos_fast(-abs(x))
    return 1.0 / (1.0 + e) if x >= 0 else e / (1.0 + e)


@njit(inline="always", **FAST)
def _tanh_fast(u):
    """tanh(u) = sign(u) (1 - e) / (1 + e), e = exp(-2|u|)."""
    e = _exp_nonpos_fast(-2.0 * abs(u))
    t = (1.0 - e) / (1.0 + e)
    return t if u >= 0 else -t


@njit(inline="always", **STRICT)
def _sigmoid_exact(x):
    e = math.exp(-abs(x))
    return 1.0 / (1.0 + e) if x >= 0 else e / (1.0 + e)


# ---- GELU, exact: y = x Phi(x), Phi(x) = (1 + erf(x / sqrt 2)) / 2 (Hendrycks & Gimpel 2016) ------------------------
#      dy/dx = Phi(x) + x phi(x),  phi(x) = exp(-x^2 / 2) / sqrt(2 pi)
def gelu_forward_ref(x):
    x = _check(x, "gelu_forward_ref")
    return (0.5 * x * (1.0 + _erf_scipy(x * SQRT_HALF))).astype(x.dtype)


def gelu_backward_ref(x, dy):
    x = _check(x, "gelu_backward_ref")
    ### BEGIN SOLUTION ex4_2: GELU backward — dL/dx = dy * (Phi(x) + x phi(x)), in NumPy here and in the two Numba loops below (chapter 4, 3 points)
    # returns: dL/dx, the shape and dtype of x
    cdf = 0.5 * (1.0 + _erf_scipy(x * SQRT_HALF))
    pdf = INV_SQRT_2PI * np.exp(-0.5 * x * x)
    return (dy * (cdf + x * pdf)).astype(x.dtype)
    ### END SOLUTION


@njit(**STRICT)
def _gelu_fwd_exact(x, out):
    for i in range(x.size):
        out[i] = 0.5 * x[i] * (1.0 + math.erf(x[i] * SQRT_HALF))


@njit(**FAST)
def _gelu_fwd_fast(x, out):
    for i in range(x.size):
        xi = np.float64(x[i])
        out[i] = 0.5 * xi * (1.0 + _erf_fast(xi * SQRT_HALF))


@njit(**STRICT)
def _gelu_bwd_exact(x, dy, out):
    for i in range(x.size):
        ### BEGIN SOLUTION ex4_2
        # fills: out[i] (flat, like x) for this i
        xi = x[i]
        cdf = 0.5 * (1.0 + math.erf(xi * SQRT_HALF))
        out[i] = dy[i] * (cdf + xi * INV_SQRT_2PI * math.exp(-0.5 * xi * xi))
        ### END SOLUTION


@njit(**FAST)
def _gelu_bwd_fast(x, dy, out):
    for i in range(x.size):
        ### BEGIN SOLUTION ex4_2
        # fills: out[i] (flat, like x) for this i
        xi = np.float64(x[i])
        cdf = 0.5 * (1.0 + _erf_fast(xi * SQRT_HALF))
        out[i] = dy[i] * (cdf + xi * INV_SQRT_2PI * _exp_nonpos_fast(-0.5 * xi * xi))
        ### END SOLUTION


def gelu_forward_numba(x):
    return _run(_gelu_fwd_exact, _gelu_fwd_fast, "gelu_forward_numba", x)


def gelu_backward_numba(x, dy):
    return _run(_gelu_bwd_exact, _gelu_bwd_fast, "gelu_backward_numba", x, dy)


# ---- GELU, tanh approximation: y = x/2 (1 + tanh u), u = sqrt(2/pi) (x + 0.044715 x^3) -----------------------------
#      dy/dx = (1 + tanh u)/2 + x/2 (1 - tanh^2 u) sqrt(2/pi) (1 + 3 * 0.044715 x^2)
def gelu_tanh_forward_ref(x):
    x = _check(x, "gelu_tanh_forward_ref")
    u = SQRT_2_OVER_PI * (x + GELU_TANH_C * x**3)
    return (0.5 * x * (1.0 + np.tanh(u))).astype(x.dtype)


def gelu_tanh_backward_ref(x, dy):
    x = _check(x, "gelu_tanh_backward_ref")
    t = np.tanh(SQRT_2_OVER_PI * (x + GELU_TANH_C * x**3))
    du_dx = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_TANH_C * x * x)
    return (dy * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du_dx)).astype(x.dtype)


@njit(**STRICT)
def _gelu_tanh_fwd_exact(x, out):
    for i in range(x.size):
        xi = x[i]
        out[i] = 0.5 * xi * (1.0 + math.tanh(SQRT_2_OVER_PI * (xi + GELU_TANH_C * xi * xi * xi)))


@njit(**FAST)
def _gelu_tanh_fwd_fast(x, out):
    for i in range(x.size):
        xi = np.float64(x[i])
        out[i] = 0.5 * xi * (1.0 + _tanh_fast(SQRT_2_OVER_PI * (xi + GELU_TANH_C * xi * xi * xi)))


@njit(**STRICT)
def _gelu_tanh_bwd_exact(x, dy, out):
    for i in range(x.size):
        xi = x[i]
        t = math.tanh(SQRT_2_OVER_PI * (xi + GELU_TANH_C * xi * xi * xi))
        du_dx = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_TANH_C * xi * xi)
        out[i] = dy[i] * (0.5 * (1.0 + t) + 0.5 * xi * (1.0 - t * t) * du_dx)


@njit(**FAST)
def _gelu_tanh_bwd_fast(x, dy, out):
    for i in range(x.size):
        xi = np.float64(x[i])
        t = _tanh_fast(SQRT_2_OVER_PI * (xi + GELU_TANH_C * xi * xi * xi))
        du_dx = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_TANH_C * xi * xi)
        out[i] = dy[i] * (0.5 * (1.0 + t) + 0.5 * xi * (1.0 - t * t) * du_dx)


def gelu_tanh_forward_numba(x):
    return _run(_gelu_tanh_fwd_exact, _gelu_tanh_fwd_fast, "gelu_tanh_forward_numba", x)


def gelu_tanh_backward_numba(x, dy):
    return _run(_gelu_tanh_bwd_exact, _gelu_tanh_bwd_fast, "gelu_tanh_backward_numba", x, dy)


# ---- SiLU (swish): y = x sigma(x);  dy/dx = sigma(x) (1 + x (1 - sigma(x))) ------------------------------------------
def silu_forward_ref(x):
    x = _check(x, "silu_forward_ref")
    return (x / (1.0 + np.exp(-x))).astype(x.dtype)


def silu_backward_ref(x, dy):
    x = _check(x, "silu_backward_ref")
    ### BEGIN SOLUTION ex4_3: SiLU backward — dL/dx = dy * sigma(x) (1 + x (1 - sigma(x))), in NumPy here and in the two Numba loops below (chapter 4, 2 points)
    # returns: dL/dx, the shape and dtype of x
    s = 1.0 / (1.0 + np.exp(-x))
    return (dy * s * (1.0 + x * (1.0 - s))).astype(x.dtype)
    ### END SOLUTION


@njit(**STRICT)
def _silu_fwd_exact(x, out):
    for i in range(x.size):
        out[i] = x[i] * _sigmoid_exact(x[i])


@njit(**FAST)
def _silu_fwd_fast(x, out):
    for i in range(x.size):
        xi = np.float64(x[i])
        out[i] = xi * _sigmoid_fast(xi)


@njit(**STRICT)
def _silu_bwd_exact(x, dy, out):
    for i in range(x.size):
        ### BEGIN SOLUTION ex4_3
        # fills: out[i] (flat, like x) for this i
        s = _sigmoid_exact(x[i])
        out[i] = dy[i] * s * (1.0 + x[i] * (1.0 - s))
        ### END SOLUTION


@njit(**FAST)
def _silu_bwd_fast(x, dy, out):
    for i in range(x.size):
        ### BEGIN SOLUTION ex4_3
        # fills: out[i] (flat, like x) for this i
        xi = np.float64(x[i])
        s = _sigmoid_fast(xi)
        out[i] = dy[i] * s * (1.0 + xi * (1.0 - s))
        ### END SOLUTION


def silu_forward_numba(x):
    return _run(_silu_fwd_exact, _silu_fwd_fast, "silu_forward_numba", x)


def silu_backward_numba(x, dy):
    return _run(_silu_bwd_exact, _silu_bwd_fast, "silu_backward_numba", x, dy)


# ---- the residual add fused with GELU: y = h + GELU(u) (the MLP's residual block: one pass instead of two) ---------
def add_gelu_ref(h, u):
    h, u = _check(h, "add_gelu_ref"), _check(u, "add_gelu_ref")
    return (h + gelu_forward_ref(u)).astype(u.dtype)


@njit(**STRICT)
def _add_gelu_exact(h, u, out):
    for i in range(u.size):
        out[i] = h[i] + 0.5 * u[i] * (1.0 + math.erf(u[i] * SQRT_HALF))


@njit(**FAST)
def _add_gelu_fast(h, u, out):
    for i in range(u.size):
        ui = np.float64(u[i])
        out[i] = h[i] + 0.5 * ui * (1.0 + _erf_fast(ui * SQRT_HALF))


def add_gelu_numba(h, u):
    return _run(_add_gelu_exact, _add_gelu_fast, "add_gelu_numba", h, u)
