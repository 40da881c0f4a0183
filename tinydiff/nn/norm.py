"""Normalisation layers. LayerNorm (Ba et al. 2016) normalises each sample over its last axis.

Forward, over the last axis of size D (for each row x of shape (D,)):

    mu     = (1/D) sum_i x_i
    var    = (1/D) sum_i (x_i - mu)^2                 (biased, as in PyTorch)
    rstd   = 1 / sqrt(var + eps)
    xhat_i = (x_i - mu) * rstd
    y_i    = gamma_i xhat_i + beta_i                   gamma = "weight", beta = "bias", both (D,)

Backward, with dy = dL/dy and g = dy * gamma (the gradient reaching xhat):

    dL/dgamma = sum over rows of dy * xhat
    dL/dbeta  = sum over rows of dy
    dL/dx_i   = rstd * (g_i - mean_j g_j - xhat_i * mean_j(g_j xhat_j))

(the two mean terms are the paths through mu and var; each row's gradient sums to zero, since y ignores a shift of x).
"""

from __future__ import annotations

import numpy as np

from tinydiff.nn.module import Module


class LayerNorm(Module):
    """Normalise over the last axis (size ``dim``), then scale by ``weight`` and shift by ``bias``.

    x: (..., dim) -> y: (..., dim), both in ``dtype`` (the dtype rule of ``nn.module``). Cache: xhat and rstd.
    """

    def __init__(self, dim: int, eps: float = 1e-5, dtype=np.float32):
        super().__init__()
        self.dim, self.eps, self.dtype = dim, eps, np.dtype(dtype)
        self.add_param("weight", np.ones(dim, dtype=dtype))
        self.add_param("bias", np.zeros(dim, dtype=dtype))
        self._xhat = None

    def forward(self, x):
        x = np.asarray(x)
        if x.ndim == 0 or x.shape[-1] != self.dim:
            raise ValueError(f"LayerNorm({self.dim}): expected input of shape (..., {self.dim}), got {x.shape}")
        x = self.check_dtype(x)
        mu = x.mean(axis=-1, keepdims=True)                              # (..., 1)
        xc = x - mu
        var = (xc * xc).mean(axis=-1, keepdims=True)                     # (..., 1)
        self._rstd = 1.0 / np.sqrt(var + self.dtype.type(self.eps))      # (..., 1)
        self._xhat = xc * self._rstd                                     # (..., D)
        return self._xhat * self.params["weight"] + self.params["bias"]

    def backward(self, grad_output):
        if self._xhat is None:
            raise RuntimeError("LayerNorm.backward called before forward")
        dy = np.asarray(grad_output, dtype=self.dtype)
        xhat = self._xhat
        rows = tuple(range(dy.ndim - 1))                                 # every axis but the last
        self.grads["weight"][...] = (dy * xhat).sum(axis=rows)
        self.grads["bias"][...] = dy.sum(axis=rows)
        g = dy * self.params["weight"]                                   # dL/dxhat, (..., D)
        return self._rstd * (g - g.mean(axis=-1, keepdims=True) - xhat * (g * xhat).mean(axis=-1, keepdims=True))

    def extra_repr(self) -> str:
        return f"{self.dim}, eps={self.eps}, dtype={self.dtype.name}"


# ---- GroupNorm --------------------------------------------------------------------------------------------------
from tinydiff.nn.conv import check_image  # noqa: E402
from tinydiff.nn.kernels.groupnorm import groupnorm_backward_numba, groupnorm_forward_numba  # noqa: E402


class GroupNorm(Module):
    """GroupNorm (Wu & He 2018): normalise each image over groups of C/G channels and all pixels, then scale and shift.

    For image b and group g, over the N = (C/G) H W values of the group (kernels/groupnorm.py has the derivation):

        xhat = (x - mu_bg) / sqrt(var_bg + eps),      y = weight[c] * xhat + bias[c]
        dx   = rstd * (g - mean(g) - xhat * mean(g * xhat)),   g = dy * weight[c]   (means over the group)

    G = 1 normalises each image over everything (LayerNorm over (C, H, W)); G = C is InstanceNorm. Unlike BatchNorm
    it never mixes images, so it behaves the same at batch size 1 and in training and evaluation.
    x: (B, C, H, W) -> y: (B, C, H, W). Cache: xhat (B, C, H, W) and rstd (B, G).
    """

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, dtype=np.float32):
        super().__init__()
        if num_groups < 1 or num_channels % num_groups:
            raise ValueError(
                f"GroupNorm: num_channels ({num_channels}) must be divisible by num_groups ({num_groups}). "
                f"Divisors of {num_channels}: {[g for g in range(1, num_channels + 1) if num_channels % g == 0]}"
            )
        self.num_groups, self.num_channels, self.eps, self.dtype = num_groups, num_channels, eps, np.dtype(dtype)
        self.add_param("weight", np.ones(num_channels, dtype=dtype))
        self.add_param("bias", np.zeros(num_channels, dtype=dtype))
        self._xhat = self._rstd = None

    def forward(self, x):
        check_image(f"GroupNorm({self.num_groups}, {self.num_channels})", x, self.num_channels)
        x = np.ascontiguousarray(self.check_dtype(x))
        y, self._xhat = np.empty_like(x), np.empty_like(x)
        self._rstd = np.empty((x.shape[0], self.num_groups), dtype=self.dtype)
        return groupnorm_forward_numba(x, self.params["weight"], self.params["bias"], self.num_groups, self.eps,
                                 y, self._xhat, self._rstd)

    def backward(self, grad_output):
        if self._xhat is None:
            raise RuntimeError("GroupNorm.backward called before forward")
        dy = np.ascontiguousarray(grad_output, dtype=self.dtype)
        dx = np.empty_like(dy)
        groupnorm_backward_numba(dy, self._xhat, self._rstd, self.params["weight"], self.num_groups,
                           dx, self.grads["weight"], self.grads["bias"])
        return dx

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, dtype={self.dtype.name}"
