"""The fused Adam / AdamW update: one pass over a parameter array updating m, v and the parameter in place.

``adam_update_numba`` is the kernel and ``adam_update_ref`` the NumPy reference with the same signature (both return
None and modify ``p``, ``m``, ``v`` in place). Kingma & Ba (2015), Algorithm 1, with Loshchilov & Hutter's (2019)
decoupled weight decay:

    g   <- g + l2 * p                                  (Adam's L2 penalty, folded into the gradient; 0 for AdamW)
    m   <- beta1 m + (1 - beta1) g                     first moment
    v   <- beta2 v + (1 - beta2) g^2                   second moment
    m^  =  m / (1 - beta1^t),  v^ = v / (1 - beta2^t)  bias correction, t = step (1 for the first update)
    p   <- p - lr (m^ / (sqrt(v^) + eps) + wd * p)     wd: AdamW's decoupled decay (0 for Adam)

Arithmetic is done in float64 and stored in the arrays' dtype.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from tinydiff.nn.kernels.jit import FAST


def adam_update_ref(p, g, m, v, lr, beta1, beta2, eps, l2, wd, step):
    ### BEGIN SOLUTION ex4_4: Adam update — update m, v and p in place (bias-corrected moments, decoupled decay wd), in NumPy here and in the Numba loop below (chapter 4, 3 points)
    # fills: m, v and p (all the shape of p) in place
    g = g + l2 * p
    m[...] = beta1 * m + (1.0 - beta1) * g
    v[...] = beta2 * v + (1.0 - beta2) * g * g
    m_hat = m / (1.0 - beta1**step)
    v_hat = v / (1.0 - beta2**step)
    p[...] = p - lr * (m_hat / (np.sqrt(v_hat) + eps) + wd * p)
    ### END SOLUTION


@njit(**FAST)
def _adam_flat(p, g, m, v, lr, beta1, beta2, eps, l2, wd, step):
    ### BEGIN SOLUTION ex4_4
    # fills: m[i], v[i] and p[i] for every i in range(p.size) (flat arrays)
    bc1 = 1.0 - beta1**step
    bc2 = 1.0 - beta2**step
    for i in range(p.size):
        pi = np.float64(p[i])
        gi = g[i] + l2 * pi
        mi = beta1 * m[i] + (1.0 - beta1) * gi
        vi = beta2 * v[i] + (1.0 - beta2) * gi * gi
        m[i] = mi
        v[i] = vi
        p[i] = pi - lr * ((mi / bc1) / (math.sqrt(vi / bc2) + eps) + wd * pi)
    ### END SOLUTION


def adam_update_numba(p, g, m, v, lr, beta1, beta2, eps, l2, wd, step):
    for name, a in (("g", g), ("m", m), ("v", v)):
        if a.shape != p.shape:
            raise ValueError(f"adam_update_numba: {name} has shape {a.shape} but the parameter has {p.shape}")
    if not all(a.flags.c_contiguous for a in (p, g, m, v)):
        raise ValueError("adam_update_numba: arrays must be C-contiguous (the update is done in place on flat views)")
    _adam_flat(p.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1),
               float(lr), float(beta1), float(beta2), float(eps), float(l2), float(wd), int(step))
