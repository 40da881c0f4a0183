"""Linear (fully connected) layer: y = x W^T + b.

Forward, for x of shape (..., in_features):

    y = x W^T + b                      W: (out_features, in_features), b: (out_features,)   (PyTorch's layout)

Backward, with dy = dL/dy flattened to (N, out) over all leading axes and x flattened to (N, in):

    dL/dW = dy^T x                     (out, in)   summed over the N rows
    dL/db = sum_n dy_n                 (out,)      the bias is broadcast over the rows, so its gradient sums over them
    dL/dx = dy W                       (..., in)
"""

from __future__ import annotations

import numpy as np

from tinydiff.nn.init import uniform_fan_in
from tinydiff.nn.module import Module
from tinydiff.rng import make_rng


class Linear(Module):
    """y = x W^T + b over the last axis. Weights and bias start from U(-1/sqrt(in), 1/sqrt(in)) drawn from ``rng``.

    Inputs must be in the layer's ``dtype`` (float32 for training, float64 for gradient checks; the dtype rule of
    ``nn.module``), and so is the output. Cache: the input, flattened to (N, in).
    """

    def __init__(self, in_features: int, out_features: int, rng=None, dtype=np.float32, bias: bool = True):
        super().__init__()
        self.in_features, self.out_features, self.dtype = in_features, out_features, np.dtype(dtype)
        rng = make_rng(rng)
        self.add_param("weight", uniform_fan_in((out_features, in_features), in_features, rng, dtype))
        self.use_bias = bias
        if bias:
            self.add_param("bias", uniform_fan_in((out_features,), in_features, rng, dtype))
        self._x = None

    def forward(self, x):
        x = np.asarray(x)
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"Linear({self.in_features}, {self.out_features}): expected input of shape (..., {self.in_features}), "
                f"got {x.shape}. The last axis holds the features."
            )
        x = self.check_dtype(x)
        self._lead = x.shape[:-1]
        self._x = x.reshape(-1, self.in_features)                        # (N, in)
        y = self._x @ self.params["weight"].T                            # (N, out)
        if self.use_bias:
            y += self.params["bias"]
        return y.reshape(*self._lead, self.out_features)                 # (..., out)

    def backward(self, grad_output, input_grad: bool = True):
        """dL/dy (..., out) -> dL/dx (..., in); fills the weight and bias gradients. ``input_grad=False`` returns None
        and skips dx = dy W, which costs as much as dL/dW: a first layer whose input is data needs no dx."""
        if self._x is None:
            raise RuntimeError("Linear.backward called before forward")
        dy = np.asarray(grad_output, dtype=self.dtype)
        if dy.shape != (*self._lead, self.out_features):
            raise ValueError(
                f"Linear({self.in_features}, {self.out_features}).backward: grad_output must have the shape of the "
                f"forward output, {(*self._lead, self.out_features)}, got {dy.shape}"
            )
        dy = dy.reshape(-1, self.out_features)                                         # (N, out)
        ### BEGIN SOLUTION ex4_1: Linear backward — fill self.grads["weight"] and self.grads["bias"] in place and compute dx (N, in) (chapter 4, 2 points)
        # fills: self.grads["weight"] (out, in) and, if self.use_bias, self.grads["bias"] (out,) in place
        self.grads["weight"][...] = dy.T @ self._x                       # (out, in)
        if self.use_bias:
            self.grads["bias"][...] = dy.sum(axis=0)                     # (out,)
        ### END SOLUTION
        if not input_grad:
            return None
        ### BEGIN SOLUTION ex4_1
        # defines: dx (N, in), the gradient of the flattened input
        dx = dy @ self.params["weight"]                                  # (N, in)
        ### END SOLUTION
        return dx.reshape(*self._lead, self.in_features)                 # (..., in)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, bias={self.use_bias}, dtype={self.dtype.name}"
