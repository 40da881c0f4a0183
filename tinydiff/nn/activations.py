"""Element-wise activations: Identity, ReLU, SiLU, GELU (exact erf, or the tanh approximation).

Each caches its input x and returns dL/dx = dL/dy * f'(x). Outputs keep the input's dtype (float32 stays float32).
SiLU and GELU run the fused Numba kernels of ``tinydiff.nn.kernels.activations`` (formulas and references there).
"""

from __future__ import annotations

import numpy as np

from tinydiff.nn.kernels import activations as K
from tinydiff.nn.module import Module


def _as_float(x) -> np.ndarray:
    """float32 and float64 pass through unchanged; anything else (ints, bools, float16) becomes float64."""
    x = np.asarray(x)
    return x if x.dtype in (np.float32, np.float64) else x.astype(np.float64)


class _Elementwise(Module):
    def __init__(self):
        super().__init__()
        self._x = None

    def _cached_input(self, grad_output):
        if self._x is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        dy = np.asarray(grad_output, dtype=self._x.dtype)
        if dy.shape != self._x.shape:
            raise ValueError(f"{type(self).__name__}.backward: grad_output has shape {dy.shape}, expected {self._x.shape}")
        return self._x, dy


class Identity(_Elementwise):
    """y = x; dL/dx = dL/dy. A placeholder where a layer is optional."""

    def forward(self, x):
        return np.asarray(x)

    def backward(self, grad_output):
        return grad_output


class ReLU(_Elementwise):
    """y = max(x, 0); dy/dx = 1 where x > 0, else 0 (the subgradient 0 at x = 0)."""

    def forward(self, x):
        self._x = _as_float(x)
        return np.maximum(self._x, 0)

    def backward(self, grad_output):
        x, dy = self._cached_input(grad_output)
        return dy * (x > 0)


class SiLU(_Elementwise):
    """SiLU / swish: y = x sigma(x); dy/dx = sigma(x) (1 + x (1 - sigma(x))) (Elfwing et al. 2018)."""

    def forward(self, x):
        self._x = np.ascontiguousarray(_as_float(x))
        return K.silu_forward_numba(self._x)

    def backward(self, grad_output):
        x, dy = self._cached_input(grad_output)
        return K.silu_backward_numba(x, dy)


class GELU(_Elementwise):
    """GELU: y = x Phi(x), with Phi the standard normal CDF (Hendrycks & Gimpel 2016).

    ``approximate="none"`` uses erf exactly: Phi(x) = (1 + erf(x / sqrt 2)) / 2, dy/dx = Phi(x) + x phi(x).
    ``approximate="tanh"`` uses Phi(x) ~ (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) / 2 (GPT-2's choice).
    """

    def __init__(self, approximate: str = "none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f'GELU: approximate must be "none" or "tanh", got {approximate!r}')
        self.approximate = approximate

    def forward(self, x):
        self._x = np.ascontiguousarray(_as_float(x))
        f = K.gelu_forward_numba if self.approximate == "none" else K.gelu_tanh_forward_numba
        return f(self._x)

    def backward(self, grad_output):
        x, dy = self._cached_input(grad_output)
        f = K.gelu_backward_numba if self.approximate == "none" else K.gelu_tanh_backward_numba
        return f(x, np.ascontiguousarray(dy))

    def extra_repr(self) -> str:
        return f'approximate="{self.approximate}"'
