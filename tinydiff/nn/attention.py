"""Spatial self-attention over the pixels of a feature map, as in the DDPM U-Net's low-resolution blocks.

Every one of the N = H W positions attends to every other (Vaswani et al. 2017, eq. 1), one softmax per head:

    h = GroupNorm(x);   [q; k; v] = W_qkv h + b_qkv          (a 1x1 convolution, C -> 3C)
    per head, with q, k, v: (d, N), d = C / heads:
    S = q^T k / sqrt(d)                       (N, N)   scores: S[i, j] = <q_i, k_j> / sqrt(d)
    P = softmax(S) over j                     (N, N)   each row sums to 1
    o = v P^T                                 (d, N)   o_i = sum_j P[i, j] v_j
    y = x + W_out o + b_out                             (a 1x1 convolution C -> C, and the residual)

Backward, from do = dL/do (per head; the softmax Jacobian applied row by row):

    dv = do P                     dP = do^T v
    dS = P * (dP - rowsum(dP * P))                      (softmax backward)
    dq = k dS^T / sqrt(d)         dk = q dS / sqrt(d)

The N x N attention matrix costs O(N^2 C): fine for the 7x7 (N = 49) and 14x14 bottlenecks of an MNIST U-Net.
"""

from __future__ import annotations

from math import gcd

import numpy as np

from tinydiff.nn.conv import Conv2d, check_image
from tinydiff.nn.module import Module
from tinydiff.nn.norm import GroupNorm
from tinydiff.rng import make_rng


class SelfAttention2d(Module):
    """Multi-head self-attention across the H W positions of x: (B, C, H, W) -> (B, C, H, W), with a residual.

    ``num_groups`` (GroupNorm) defaults to gcd(32, C). Cache: q, k, v (B, heads, d, N) and P (B, heads, N, N).
    """

    def __init__(self, channels: int, num_heads: int = 1, num_groups: int | None = None, rng=None, dtype=np.float32):
        super().__init__()
        if num_heads < 1 or channels % num_heads:
            raise ValueError(f"SelfAttention2d: channels ({channels}) must be divisible by num_heads ({num_heads})")
        rng = make_rng(rng)
        self.channels, self.num_heads, self.dtype = channels, num_heads, np.dtype(dtype)
        self.norm = GroupNorm(num_groups or gcd(32, channels), channels, dtype=dtype)
        self.qkv = Conv2d(channels, 3 * channels, 1, rng=rng, dtype=dtype)
        self.proj = Conv2d(channels, channels, 1, rng=rng, dtype=dtype)
        self._P = None

    def forward(self, x):
        check_image(f"SelfAttention2d({self.channels})", x, self.channels)
        x = self.check_dtype(x)                                   # here, so that a mismatch names SelfAttention2d
        B, C, H, W = x.shape
        nh, d, N = self.num_heads, C // self.num_heads, H * W
        qkv = self.qkv.forward(self.norm.forward(x)).reshape(B, 3, nh, d, N)   # (B, 3, heads, d, N)
        self._q, self._k, self._v = qkv[:, 0], qkv[:, 1], qkv[:, 2]           # each (B, heads, d, N)
        self._scale = x.dtype.type(1.0 / np.sqrt(d))
        S = (self._q.transpose(0, 1, 3, 2) @ self._k) * self._scale          # (B, heads, N, N)
        S -= S.max(axis=-1, keepdims=True)                                    # softmax is shift-invariant: avoid overflow
        P = np.exp(S)
        P /= P.sum(axis=-1, keepdims=True)
        self._P = P
        o = self._v @ P.transpose(0, 1, 3, 2)                                  # (B, heads, d, N)
        return x + self.proj.forward(o.reshape(B, C, H, W))

    def backward(self, grad_output):
        if self._P is None:
            raise RuntimeError("SelfAttention2d.backward called before forward")
        B, C, H, W = grad_output.shape
        nh, d, N = self.num_heads, C // self.num_heads, H * W
        q, k, v, P = self._q, self._k, self._v, self._P
        do = self.proj.backward(grad_output).reshape(B, nh, d, N)             # (B, heads, d, N)
        ### BEGIN SOLUTION ex11_2: attention backward — dv, dP, the softmax backward dS, then dq and dk (module docstring), batched over (B, heads) (chapter 11, 3 points)
        # defines: dq, dk, dv, each (B, heads, d, N) like q, k, v; P is (B, heads, N, N) with rows summing to 1
        dv = do @ P                                                           # (B, heads, d, N)
        dP = do.transpose(0, 1, 3, 2) @ v                                     # (B, heads, N, N)
        dS = P * (dP - (dP * P).sum(axis=-1, keepdims=True))                  # softmax backward
        dq = (k @ dS.transpose(0, 1, 3, 2)) * self._scale                     # (B, heads, d, N)
        dk = (q @ dS) * self._scale                                           # (B, heads, d, N)
        ### END SOLUTION
        dqkv = np.stack([dq, dk, dv], axis=1).reshape(B, 3 * C, H, W)         # (B, 3C, H, W)
        return grad_output + self.norm.backward(self.qkv.backward(dqkv))

    def extra_repr(self):
        return f"{self.channels}, num_heads={self.num_heads}"
