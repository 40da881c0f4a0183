"""The fused float32 kernels of the MLP training step (``models/mlp_step.py``), each beside its NumPy reference.

A residual block of MLPDenoiser is u = h W^T + b, h' = h + GELU(u). The matrix product goes to BLAS; everything
element-wise around it is one pass over memory here instead of three or four:

    place_features     feats = [sin(s x f), cos(s x f), e_t]                   (the first layer's input, one pass)
    bias_gelu          h = GELU(u + b);  u <- GELU'(u + b)                         (the input layer)
    bias_residual_gelu h' = h + GELU(u + b);  u <- GELU'(u + b)                    (each residual block)
    gelu_backward_bias dz = GELU'(u) * dh;  db = sum over rows of dz               (backward, with the bias gradient)
    residual_gelu_backward_bias   the same after dh <- dh + dskip                 (the skip path's gradient added)
    mse                d = out - target;  L = mean d^2;  dy = 2 d / (N D)          (the loss and its gradient)
    clip_adamw         the global gradient norm, the clip and AdamW over one flat parameter array

GELU(u) = u Phi(u), GELU'(u) = Phi(u) + u phi(u) with Phi(u) = (1 + erf(u / sqrt 2)) / 2 and
phi(u) = exp(-u^2 / 2) / sqrt(2 pi) (Hendrycks & Gimpel 2016). Forward keeps GELU'(u) (it shares Phi(u) with GELU(u)), so backward is one multiply
and a column sum. The kernels compute in float32 throughout (float64
arithmetic halves the vector width) with branch-free erf and exp approximations that LLVM vectorises: the same
polynomials as ``kernels/activations.py`` (Numba's pip build has no vector math library, so ``math.erf`` would be
a scalar call per element), accurate to a few float32 ulp.

Naming: ``<op>_numba`` is the kernel, ``<op>_ref`` the NumPy reference with the same signature (exact erf from SciPy);
tests/test_kernels_fused_mlp.py checks that they agree. Kernels write into the arrays they are given (the caller
preallocates them once) and take float32 only. Under ``NUMBA_DISABLE_JIT=1`` the kernels run as plain Python loops:
correct but slow, so ``MLPTrainStep`` then calls the references instead (``KERNELS`` below picks the set).
"""

from __future__ import annotations

import math

import numpy as np
from numba import config as numba_config
from numba import njit
from scipy.special import erf as _erf_scipy

from tinydiff.nn.kernels.fastexp import exp_nonpos32 as _exp_nonpos32
from tinydiff.nn.kernels.jit import FAST

f32 = np.float32
SQRT_HALF = f32(0.7071067811865476)        # 1 / sqrt(2)
INV_SQRT_2PI = f32(0.3989422804014327)     # 1 / sqrt(2 pi)


# ---- float32 scalar building blocks (inlined) -----------------------------------------------------------------------
@njit(inline="always", **FAST)
def _erf32(z):
    """erf(z) = z P(z^2) / Q(z^2) on z clipped to [-4, 4] (erf(4) = 1 - 1.5e-8), float32 coefficients."""
    z = min(max(z, f32(-4.0)), f32(4.0))
    z2 = z * z
    p = f32(-2.72614225801306e-10)
    p = p * z2 + f32(2.77068142495902e-08)
    p = p * z2 - f32(2.10102402082508e-06)
    p = p * z2 - f32(5.69250639462346e-05)
    p = p * z2 - f32(7.34990630326855e-04)
    p = p * z2 - f32(2.95459980854025e-03)
    p = p * z2 - f32(1.60960333262415e-02)
    q = f32(-1.45660718464996e-05)
    q = q * z2 - f32(2.13374055278905e-04)
    q = q * z2 - f32(1.68282697438203e-03)
    q = q * z2 - f32(7.37332916720468e-03)
    q = q * z2 - f32(1.42647390514189e-02)
    return z * p / q


# ---- the input features ------------------------------------------------------------------------------------------------
def place_features_ref(sin, cos, t_table, t, feats):
    """sin, cos: (N, D, half) sinusoids of the coordinates; t_table: (T', E) time sinusoids; t: (N,) int. Writes
    feats (N, D E + E) = [sin_0, cos_0, sin_1, cos_1, ..., t_table[t]], the input of MLPDenoiser's first layer."""
    N, D, half = sin.shape
    ex = feats[:, :D * 2 * half].reshape(N, D, 2 * half)                    # (N, D, E) view
    ex[:, :, :half], ex[:, :, half:] = sin, cos
    feats[:, D * 2 * half:] = t_table[t]


@njit(**FAST)
def place_features_numba(sin, cos, t_table, t, feats):
    N, D, half = sin.shape
    E = 2 * half
    for n in range(N):
        for d in range(D):
            dst, s, c = feats[n, d * E:(d + 1) * E], sin[n, d], cos[n, d]     # 1-D views, indexed from 0
            for j in range(half):
                dst[j] = s[j]
                dst[half + j] = c[j]
        dst, src = feats[n, D * E:], t_table[t[n]]
        for j in range(len(src)):
            dst[j] = src[j]


# ---- forward: bias + GELU (+ residual), keeping GELU' for backward ------------------------------------------------
# Backward needs only GELU'(u), not u: computing it here, where erf(u / sqrt 2) is already known, saves evaluating erf
# a second time in backward (the same idea as a ReLU that keeps its 0/1 mask instead of its input).
def _gelu_and_derivative_ref(v):
    cdf = 0.5 * (1.0 + _erf_scipy(v * SQRT_HALF))                            # Phi(v)
    return v * cdf, cdf + v * INV_SQRT_2PI * np.exp(-0.5 * v * v)            # GELU(v), GELU'(v)


def bias_gelu_ref(u, b, h):
    """u: (N, H) pre-activations without bias, b: (H,). Writes h = GELU(u + b) and, in place, u <- GELU'(u + b)."""
    h[...], u[...] = _gelu_and_derivative_ref(u + b)


@njit(inline="always", **FAST)
def _gelu_and_derivative32(v):
    cdf = f32(0.5) * (f32(1.0) + _erf32(v * SQRT_HALF))
    return v * cdf, cdf + v * INV_SQRT_2PI * _exp_nonpos32(f32(-0.5) * v * v)


@njit(**FAST)
def bias_gelu_numba(u, b, h):
    N, H = u.shape
    for n in range(N):
        for d in range(H):
            h[n, d], u[n, d] = _gelu_and_derivative32(u[n, d] + b[d])


def bias_residual_gelu_ref(u, b, h_prev, h):
    """u: (N, H), b: (H,), h_prev: (N, H). Writes h = h_prev + GELU(u + b) (a residual block's output) and, in place,
    u <- GELU'(u + b)."""
    gelu, u[...] = _gelu_and_derivative_ref(u + b)
    h[...] = h_prev + gelu


@njit(**FAST)
def bias_residual_gelu_numba(u, b, h_prev, h):
    N, H = u.shape
    for n in range(N):
        for d in range(H):
            gelu, u[n, d] = _gelu_and_derivative32(u[n, d] + b[d])
            h[n, d] = h_prev[n, d] + gelu


# ---- backward: through GELU, with the bias gradient -------------------------------------------------------------------
def gelu_backward_bias_ref(dgelu, dh, dz, db):
    """dgelu: (N, H) GELU'(u) kept by forward, dh: (N, H) dL/dGELU. Writes dz = dgelu * dh = dL/du (N, H) and
    db = sum_n dz[n] (H,) = dL/db of u = h W^T + b."""
    dz[...] = dgelu * dh
    db[...] = dz.sum(axis=0)


@njit(**FAST)
def gelu_backward_bias_numba(dgelu, dh, dz, db):
    N, H = dgelu.shape
    acc = np.zeros(H, np.float32)                    # (H,) one float32 accumulator per column, like the reference
    for n in range(N):
        for d in range(H):
            g = dgelu[n, d] * dh[n, d]
            dz[n, d] = g
            acc[d] += g
    for d in range(H):
        db[d] = acc[d]


def residual_gelu_backward_bias_ref(dgelu, dh, dskip, dz, db):
    """As ``gelu_backward_bias_ref`` after dh <- dh + dskip (in place): the gradient reaching a residual block's output
    h_k = h_{k-1} + GELU(u_k) flows on to h_{k-1} twice, through the skip (dh) and through the block (dskip = dz W),
    and the two are added here, in the pass that reads dh anyway."""
    dh += dskip
    gelu_backward_bias_ref(dgelu, dh, dz, db)


@njit(**FAST)
def residual_gelu_backward_bias_numba(dgelu, dh, dskip, dz, db):
    N, H = dgelu.shape
    acc = np.zeros(H, np.float32)
    for n in range(N):
        for d in range(H):
            s = dh[n, d] + dskip[n, d]
            dh[n, d] = s
            g = dgelu[n, d] * s
            dz[n, d] = g
            acc[d] += g
    for d in range(H):
        db[d] = acc[d]


# ---- the loss -------------------------------------------------------------------------------------------------------
def mse_ref(out, target, dy):
    """out, target: (N, D). Returns L = mean (out - target)^2 (summed in float64) and writes dy = dL/dout =
    2 (out - target) / (N D). A NaN or inf in ``out`` makes L NaN or inf (the caller's divergence check)."""
    d = out - target
    dy[...] = d * np.float32(2.0 / d.size)
    return float(np.mean(np.square(d, dtype=np.float64)))


@njit(**FAST)
def mse_numba(out, target, dy):
    N, D = out.shape
    scale = f32(2.0 / (N * D))
    s = 0.0
    for n in range(N):
        for j in range(D):
            d = out[n, j] - target[n, j]
            s += np.float64(d) * d
            dy[n, j] = d * scale
    return s / (N * D)


# ---- clip + AdamW over the flat parameter array -----------------------------------------------------------------------
def clip_adamw_ref(p, g, m, v, lr, beta1, beta2, eps, wd, step, max_norm):
    """p, g, m, v: flat (P,) float32 arrays holding every parameter, gradient and moment of a model. Returns the global
    gradient norm before clipping; if it is NaN or inf nothing is changed (the caller stops the run). Otherwise, as
    ``nn.optim.clip_grad_norm`` followed by ``AdamW.step`` (formulas in ``kernels/optim.py``):

        total = ||g||;   if total > max_norm:  g <- g * max_norm / (total + 1e-12)
        m <- beta1 m + (1 - beta1) g;   v <- beta2 v + (1 - beta2) g^2
        p <- p - lr ((m / (1 - beta1^step)) / (sqrt(v / (1 - beta2^step)) + eps) + wd p)
    """
    total = math.sqrt(float(np.dot(g.astype(np.float64), g.astype(np.float64))))
    if not math.isfinite(total):
        return total
    if total > max_norm:
        g *= np.float32(max_norm / (total + 1e-12))
    g64, p64 = g.astype(np.float64), p.astype(np.float64)                  # float64 arithmetic, float32 storage
    m64 = beta1 * m + (1.0 - beta1) * g64
    v64 = beta2 * v + (1.0 - beta2) * g64 * g64
    m[...], v[...] = m64, v64
    p[...] = p64 - lr * ((m64 / (1.0 - beta1**step)) / (np.sqrt(v64 / (1.0 - beta2**step)) + eps) + wd * p64)
    return total


@njit(**FAST)
def clip_adamw_numba(p, g, m, v, lr, beta1, beta2, eps, wd, step, max_norm):
    s = 0.0
    for i in range(g.size):
        s += np.float64(g[i]) * g[i]
    total = math.sqrt(s)
    if not math.isfinite(total):
        return total
    scale = f32(max_norm / (total + 1e-12)) if total > max_norm else f32(1.0)
    bc1 = 1.0 - beta1**step
    bc2 = 1.0 - beta2**step
    for i in range(p.size):
        gi = g[i] * scale
        g[i] = gi
        pi = np.float64(p[i])
        mi = beta1 * m[i] + (1.0 - beta1) * gi
        vi = beta2 * v[i] + (1.0 - beta2) * gi * gi
        m[i] = mi
        v[i] = vi
        p[i] = pi - lr * ((mi / bc1) / (math.sqrt(vi / bc2) + eps) + wd * pi)
    return total


# ---- which set the training step calls --------------------------------------------------------------------------------
NUMBA = dict(place_features=place_features_numba, bias_gelu=bias_gelu_numba, bias_residual_gelu=bias_residual_gelu_numba,
             gelu_backward_bias=gelu_backward_bias_numba,
             residual_gelu_backward_bias=residual_gelu_backward_bias_numba, mse=mse_numba, clip_adamw=clip_adamw_numba)
REF = dict(place_features=place_features_ref, bias_gelu=bias_gelu_ref, bias_residual_gelu=bias_residual_gelu_ref,
           gelu_backward_bias=gelu_backward_bias_ref, residual_gelu_backward_bias=residual_gelu_backward_bias_ref,
           mse=mse_ref, clip_adamw=clip_adamw_ref)
KERNELS = REF if numba_config.DISABLE_JIT else NUMBA
