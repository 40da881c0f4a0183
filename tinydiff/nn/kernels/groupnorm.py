"""GroupNorm kernels (Wu & He 2018): Numba forward and backward, each beside a NumPy reference with the same signature.

The C channels are split into G groups of C/G channels. For image b and group g, with the set S = (channels of g) x H x W
of N = (C/G) H W values:

    mu   = (1/N) sum_S x                    var = (1/N) sum_S (x - mu)^2                                  (1)
    xhat = (x - mu) * rstd,                 rstd = 1 / sqrt(var + eps)                                   (2)
    y    = gamma[c] * xhat + beta[c]                                                                      (3)

Backward (the same algebra as LayerNorm, once per (b, g)), with dxhat = dy * gamma[c]:

    dx     = rstd * (dxhat - mean_S(dxhat) - xhat * mean_S(dxhat * xhat))                                 (4)
    dgamma = sum_{b, h, w} dy * xhat        dbeta = sum_{b, h, w} dy                                      (5)

Sums are accumulated in float64 even for float32 arrays. The cache is (xhat, rstd): xhat (B, C, H, W), rstd (B, G).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from tinydiff.nn.kernels.jit import FAST


@njit(**FAST)
def groupnorm_forward_numba(x, gamma, beta, num_groups, eps, y, xhat, rstd):
    """Equations (1)-(3). x, y, xhat: (B, C, H, W); gamma, beta: (C,); rstd: (B, G). Writes y, xhat, rstd."""
    B, C, H, W = x.shape
    cg = C // num_groups
    n = cg * H * W
    for b in range(B):
        for g in range(num_groups):
            s = 0.0
            for c in range(g * cg, (g + 1) * cg):
                for h in range(H):
                    for v in range(W):
                        s += x[b, c, h, v]
            mu = s / n
            ss = 0.0
            for c in range(g * cg, (g + 1) * cg):
                for h in range(H):
                    for v in range(W):
                        d = x[b, c, h, v] - mu
                        ss += d * d
            r = 1.0 / np.sqrt(ss / n + eps)
            rstd[b, g] = r
            for c in range(g * cg, (g + 1) * cg):
                for h in range(H):
                    for v in range(W):
                        xh = (x[b, c, h, v] - mu) * r
                        xhat[b, c, h, v] = xh
                        y[b, c, h, v] = gamma[c] * xh + beta[c]
    return y


def groupnorm_forward_ref(x, gamma, beta, num_groups, eps, y, xhat, rstd):
    """NumPy reference for ``groupnorm_forward_numba``: reshape to (B, G, C/G*H*W) and normalise the last axis."""
    B, C, H, W = x.shape
    xg = x.reshape(B, num_groups, -1).astype(np.float64)          # (B, G, C/G*H*W)
    mu = xg.mean(axis=2, keepdims=True)
    r = 1.0 / np.sqrt(((xg - mu) ** 2).mean(axis=2, keepdims=True) + eps)
    rstd[...] = r[:, :, 0]
    xhat[...] = ((xg - mu) * r).reshape(B, C, H, W)
    y[...] = gamma[:, None, None] * xhat + beta[:, None, None]
    return y


@njit(**FAST)
def groupnorm_backward_numba(dy, xhat, rstd, gamma, num_groups, dx, dgamma, dbeta):
    """Equations (4)-(5). dy, xhat, dx: (B, C, H, W); rstd: (B, G); gamma, dgamma, dbeta: (C,). Writes dx, dgamma, dbeta."""
    B, C, H, W = dy.shape
    cg = C // num_groups
    n = cg * H * W
    ### BEGIN SOLUTION ex5_2: GroupNorm backward — fill dgamma, dbeta (C,) and dx (B, C, H, W) from dy, xhat and rstd, in this Numba kernel and in the NumPy reference below (chapter 5, 3 points)
    # fills: dgamma, dbeta (C,) and dx (B, C, H, W) in place
    dgamma[...] = 0.0
    dbeta[...] = 0.0
    for b in range(B):
        for g in range(num_groups):
            s1 = 0.0  # sum dxhat
            s2 = 0.0  # sum dxhat * xhat
            for c in range(g * cg, (g + 1) * cg):
                sg = 0.0
                sb = 0.0
                for h in range(H):
                    for v in range(W):
                        d = dy[b, c, h, v]
                        xh = xhat[b, c, h, v]
                        sb += d
                        sg += d * xh
                dgamma[c] += sg
                dbeta[c] += sb
                s1 += gamma[c] * sb
                s2 += gamma[c] * sg
            m1 = s1 / n
            m2 = s2 / n
            r = rstd[b, g]
            for c in range(g * cg, (g + 1) * cg):
                for h in range(H):
                    for v in range(W):
                        dx[b, c, h, v] = r * (gamma[c] * dy[b, c, h, v] - m1 - xhat[b, c, h, v] * m2)
    ### END SOLUTION
    return dx, dgamma, dbeta


def groupnorm_backward_ref(dy, xhat, rstd, gamma, num_groups, dx, dgamma, dbeta):
    """NumPy reference for ``groupnorm_backward_numba``. Same signature and result."""
    B, C, H, W = dy.shape
    ### BEGIN SOLUTION ex5_2
    # fills: dgamma, dbeta (C,) and dx (B, C, H, W) in place
    dxhat = (dy * gamma[:, None, None]).reshape(B, num_groups, -1).astype(np.float64)  # (B, G, C/G*H*W)
    xh = xhat.reshape(B, num_groups, -1)
    dxg = rstd[:, :, None] * (dxhat - dxhat.mean(axis=2, keepdims=True)
                              - xh * (dxhat * xh).mean(axis=2, keepdims=True))
    dx[...] = dxg.reshape(B, C, H, W)
    dgamma[...] = (dy * xhat).sum(axis=(0, 2, 3))
    dbeta[...] = dy.sum(axis=(0, 2, 3))
    ### END SOLUTION
    return dx, dgamma, dbeta
