"""GroupNorm + AdaGN scale/shift + SiLU fused into one kernel each way, on P-layout arrays (playout.py).

In the U-Net every 3 x 3 convolution but the first reads SiLU(GroupNorm(h)), in the second half of a ResBlock with the
embedding's scale s and shift t in between (nn/blocks.py). Run as separate layers that is 4-6 passes over memory
each way plus the temporaries; here it is one kernel per (image, group), whose data (C/G planes of one image, a few
KB) stays in the L1 cache across the kernel's passes. With Y the input (B, C, H, W, in P layout), for image b and
group g over its N = (C/G) H W pixels (Wu & He 2018; Dhariwal & Nichol 2021):

    mu = mean(Y),  rstd = 1 / sqrt(mean((Y - mu)^2) + eps),  xhat = (Y - mu) rstd                   (statistics)
    n  = gamma[c] xhat + beta[c]          h = n (1 + s[b, c]) + t[b, c]          X = SiLU(h) = h sigma(h)   (forward)

Backward, from dX: with g = dL/dh = dX sigma(h) (1 + h (1 - sigma(h))),

    ds[b, c] = sum_pixels g n        dt[b, c] = sum_pixels g                                        (AdaGN)
    dn = g (1 + s)    dgamma[c] = sum_(b, pixels) dn xhat    dbeta[c] = sum_(b, pixels) dn
    dY = rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat)),   dxhat = dn gamma[c]                  (GroupNorm)

Plain GroupNorm + SiLU is the same kernel with s = t = 0 (pass an all-zero ``st``). The statistics are kept in
float64 (B, G) arrays; the per-plane sums run in float32 vectors and are combined in float64. sigma uses a float32
exp that vectorises (exp_nonpos32). The reference is the layers themselves (GroupNorm, SiLU, the ResBlock's algebra)
applied in NCHW: tests/test_kernels_pnorm.py. Kernels loop over whole image slices of a plane, pads included, and
multiply by the mask: the pads of X and dY stay 0.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from tinydiff.nn.kernels.fastexp import exp_nonpos32  # shared with fused_mlp (and its tests import it from here)
from tinydiff.nn.kernels.jit import FAST, serial_and_parallel   # the library's one set of floating-point liberties

f32 = np.float32


@njit(inline="always", **FAST)
def sigmoid32(x):
    """sigma(x) = 1 / (1 + e^-x) through e = exp(-|x|) (never overflows)."""
    e = exp_nonpos32(-abs(x))
    return f32(1.0) / (f32(1.0) + e) if x >= 0 else e / (f32(1.0) + e)


def _gn_adagn_silu_p(Y, gamma, beta, st, eps, mean, rstd, X, mask, B, H, W, M0, S, Wp):
    """X = SiLU((gamma xhat + beta)(1 + s) + t), statistics of Y per (b, group) into mean, rstd (B, G) float64.

    Y, X: (C, L) P arrays; gamma, beta: (C,); st: (B, 2C) float32 = [s | t] (zeros for plain GroupNorm + SiLU).
    Images are independent: prange over them."""
    C = Y.shape[0]
    G = mean.shape[1]
    cg = C // G
    n = cg * H * W
    m = H * Wp                                               # one image's slice of a plane (its rows + zero column)
    for b in prange(B):
        lo = M0 + b * S
        mk = mask[lo:lo + m]
        for g in range(G):
            s1 = 0.0
            for c in range(g * cg, (g + 1) * cg):
                y = Y[c, lo:lo + m]
                a = f32(0.0)
                for q in range(m):
                    a += y[q]
                s1 += a
            mu = s1 / n
            mu32 = f32(mu)
            s2 = 0.0
            for c in range(g * cg, (g + 1) * cg):
                y = Y[c, lo:lo + m]
                a = f32(0.0)
                for q in range(m):
                    d = y[q] - mu32 if mk[q] != 0 else f32(0.0)
                    a += d * d
                s2 += a
            r = 1.0 / np.sqrt(s2 / n + eps)
            mean[b, g] = mu
            rstd[b, g] = r
            for c in range(g * cg, (g + 1) * cg):
                k = f32(r) * gamma[c]                        # n = Y k + off
                off = beta[c] - mu32 * k
                sc, tc = f32(1.0) + st[b, c], st[b, C + c]
                k2, off2 = k * sc, off * sc + tc             # h = Y k2 + off2
                y = Y[c, lo:lo + m]
                x = X[c, lo:lo + m]
                for q in range(m):
                    h = y[q] * k2 + off2
                    x[q] = h * sigmoid32(h) if mk[q] != 0 else f32(0.0)     # a select: pads stay 0 even for NaN
    return X


def _gn_adagn_silu_p_backward(dX, Y, gamma, beta, st, mean, rstd, dY, dst, dgamma, dbeta, mask, B, H, W, M0, S, Wp):
    """From dX (C, L): dY (C, L, zero pads), dst = [ds | dt] (B, 2C), dgamma and dbeta (C,), all overwritten.
    Images are independent (prange over them) but for dgamma and dbeta: each image writes its own part, summed in
    image order at the end."""
    C = Y.shape[0]
    G = mean.shape[1]
    cg = C // G
    n = cg * H * W
    m = H * Wp
    part = np.empty((B, 2, C), np.float32)                   # image b's terms of dgamma (part[b, 0]) and dbeta
    for b in prange(B):
        lo = M0 + b * S
        mk = mask[lo:lo + m]
        for g in range(G):
            mu32, r32 = f32(mean[b, g]), f32(rstd[b, g])
            s1 = 0.0                                         # sum dxhat
            s2 = 0.0                                         # sum dxhat xhat
            for c in range(g * cg, (g + 1) * cg):
                gc, bc = gamma[c], beta[c]
                sc, tc = f32(1.0) + st[b, c], st[b, C + c]
                y = Y[c, lo:lo + m]
                dx = dX[c, lo:lo + m]
                dy = dY[c, lo:lo + m]
                a_ds = f32(0.0)
                a_dt = f32(0.0)
                a_dg = f32(0.0)
                for q in range(m):                           # dX is 0 at pads, so every sum is over pixels only
                    xh = (y[q] - mu32) * r32
                    nn = xh * gc + bc
                    h = nn * sc + tc
                    sg = sigmoid32(h)
                    gg = dx[q] * sg * (f32(1.0) + h * (f32(1.0) - sg))
                    a_ds += gg * nn
                    a_dt += gg
                    a_dg += gg * xh
                    dy[q] = gg * (sc * gc)                   # dxhat, finished below
                dst[b, c] = a_ds
                dst[b, C + c] = a_dt
                part[b, 0, c] = a_dg * sc
                part[b, 1, c] = a_dt * sc
                s1 += a_dt * sc * gc
                s2 += a_dg * sc * gc
            m1 = f32(s1 / n)
            m2 = f32(s2 / n)
            for c in range(g * cg, (g + 1) * cg):
                y = Y[c, lo:lo + m]
                dy = dY[c, lo:lo + m]
                for q in range(m):
                    xh = (y[q] - mu32) * r32
                    dy[q] = r32 * (dy[q] - m1 - xh * m2) if mk[q] != 0 else f32(0.0)
    for c in range(C):
        dgamma[c] = 0.0
        dbeta[c] = 0.0
    for b in range(B):                                       # in order: the same sums on any number of threads
        for c in range(C):
            dgamma[c] += part[b, 0, c]
            dbeta[c] += part[b, 1, c]
    return dY


gn_adagn_silu_p, gn_adagn_silu_p_par = serial_and_parallel(_gn_adagn_silu_p, **FAST)
gn_adagn_silu_p_backward, gn_adagn_silu_p_backward_par = serial_and_parallel(_gn_adagn_silu_p_backward, **FAST)
