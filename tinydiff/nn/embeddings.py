"""Embeddings: a learned lookup table (Embedding) and the fixed sinusoidal embedding of a time step.

Embedding: row lookup, y[..., :] = W[idx[...], :], W: (num, dim). Backward scatters dy back into the rows it read:

    dL/dW[k] = sum over positions n with idx[n] = k of dy[n]      (np.add.at, so a repeated index adds up)

SinusoidalEmbedding (Vaswani et al. 2017, Sec. 3.5; the version in Ho et al. 2020's code): for t of shape (B,) and
half = dim // 2,

    f_j = exp(-log(max_period) * j / (half - 1)),   j = 0 .. half-1       frequencies from 1 down to 1/max_period
    emb(t) = [sin(t f_0), ..., sin(t f_{half-1}), cos(t f_0), ..., cos(t f_{half-1})]   (B, dim)

(an odd ``dim`` gets a last column of zeros). It has no parameters. For float t the backward returns

    dL/dt = sum_j f_j (cos(t f_j) dy_sin_j - sin(t f_j) dy_cos_j)                        (B,)

and for integer t (step indices, not differentiable) it returns None.
"""

from __future__ import annotations

import math

import numpy as np

from tinydiff.errors import DtypeError
from tinydiff.nn.init import normal
from tinydiff.nn.module import Module


class Embedding(Module):
    """A table of ``num`` learned vectors of size ``dim``; idx (any shape, integers in [0, num)) -> (*idx.shape, dim).

    ``weight`` starts from N(0, 1) drawn from ``rng`` (PyTorch's default). Cache: the indices. Backward returns None
    (indices have no gradient) and fills ``grads["weight"]``.
    """

    def __init__(self, num: int, dim: int, rng=None, dtype=np.float32):
        super().__init__()
        self.num, self.dim, self.dtype = num, dim, np.dtype(dtype)
        self.add_param("weight", normal((num, dim), 1.0, rng, dtype))
        self._idx = None

    def forward(self, idx):
        idx = np.asarray(idx)
        if idx.dtype.kind not in "iu":
            raise DtypeError(f"Embedding: indices must be integers, got {idx.dtype}. Use idx.astype(np.int64).")
        if idx.size and (idx.min() < 0 or idx.max() >= self.num):
            raise IndexError(f"Embedding({self.num}, {self.dim}): indices must lie in [0, {self.num}), "
                             f"got min {idx.min()} and max {idx.max()}")
        self._idx = idx
        return self.params["weight"][idx]                                # (*idx.shape, dim)

    def backward(self, grad_output):
        if self._idx is None:
            raise RuntimeError("Embedding.backward called before forward")
        dy = np.asarray(grad_output, dtype=self.dtype).reshape(-1, self.dim)   # (N, dim)
        dW = self.grads["weight"]
        dW[...] = 0
        np.add.at(dW, self._idx.reshape(-1), dy)                         # repeated indices accumulate
        return None

    def extra_repr(self) -> str:
        return f"{self.num}, {self.dim}, dtype={self.dtype.name}"


class SinusoidalEmbedding(Module):
    """t: (B,) integer or float time steps (float t in ``dtype``) -> (B, dim) sinusoids in ``dtype`` (no parameters).

    Backward returns dL/dt, shape (B,), for float t, and None for integer t (document: time step indices are not
    differentiable). Cache: t, and the arguments t f_j.
    """

    def __init__(self, dim: int, max_period: float = 10000.0, dtype=np.float32):
        super().__init__()
        if dim < 2:
            raise ValueError(f"SinusoidalEmbedding: dim must be at least 2, got {dim}")
        self.dim, self.max_period, self.dtype = dim, max_period, np.dtype(dtype)
        half = dim // 2
        # f_j = exp(-log(max_period) j / (half - 1)); with half == 1 the only frequency is 1.
        self.freqs = np.exp(-math.log(max_period) * np.arange(half) / max(half - 1, 1))   # (half,) float64
        self._t = None

    def forward(self, t):
        t = np.asarray(t)
        if t.ndim != 1:
            raise ValueError(f"SinusoidalEmbedding: expected time steps of shape (B,), got {t.shape}. "
                             "Pass one step per sample, e.g. t = np.full(B, 10).")
        if t.dtype.kind == "f":
            t = self.check_dtype(t, "t")                                  # float steps: in the layer's dtype
        self._t = t
        ### BEGIN SOLUTION ex6_1: sinusoidal embedding — set self._args = t f_j (B, half) and emb = [sin(args), cos(args)] (B, 2 half) (chapter 6, 2 points)
        # defines: self._args (B, half) float64 and emb (B, 2 half)
        self._args = t.astype(np.float64)[:, None] * self.freqs[None, :]          # (B, half)
        emb = np.concatenate([np.sin(self._args), np.cos(self._args)], axis=1)     # (B, 2 half)
        ### END SOLUTION
        if self.dim % 2:
            emb = np.concatenate([emb, np.zeros((len(t), 1))], axis=1)            # (B, dim)
        return emb.astype(self.dtype)

    def backward(self, grad_output):
        if self._t is None:
            raise RuntimeError("SinusoidalEmbedding.backward called before forward")
        if self._t.dtype.kind != "f":
            return None                                                  # integer steps: no gradient
        half = len(self.freqs)
        dy = np.asarray(grad_output, dtype=np.float64)
        d_sin, d_cos = dy[:, :half], dy[:, half:2 * half]                # (B, half) each
        dt = (self.freqs * (np.cos(self._args) * d_sin - np.sin(self._args) * d_cos)).sum(axis=1)   # (B,)
        return dt.astype(self._t.dtype)

    def extra_repr(self) -> str:
        return f"{self.dim}, max_period={self.max_period}"
