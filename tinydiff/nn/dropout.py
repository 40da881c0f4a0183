"""Dropout (Srivastava et al. 2014), "inverted" so that evaluation needs no rescaling.

In training mode each element is kept with probability 1 - p and scaled up:

    mask_i ~ Bernoulli(1 - p) / (1 - p)        E[mask_i] = 1, so E[y] = x
    y = x * mask,      dL/dx = dL/dy * mask    (the same mask: it is cached)

In evaluation mode (``module.eval()``) y = x.
"""

from __future__ import annotations

import numpy as np

from tinydiff.nn.module import Module
from tinydiff.rng import make_rng


class Dropout(Module):
    """Zero each element with probability ``p`` in training mode (and scale the rest by 1/(1-p)); identity in eval."""

    def __init__(self, p: float = 0.5, rng=None):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}. (p is the probability of *dropping* an element.)")
        self.p = p
        self.rng = make_rng(rng)
        self._mask = None

    def forward(self, x):
        x = np.asarray(x)
        if not self.training or self.p == 0.0:
            self._mask = None
            return x
        keep = self.rng.random(x.shape) >= self.p
        self._mask = (keep / (1.0 - self.p)).astype(x.dtype)           # same dtype as x: no upcasting
        return x * self._mask

    def backward(self, grad_output):
        return grad_output if self._mask is None else grad_output * self._mask

    def extra_repr(self) -> str:
        return f"p={self.p}"
