"""Parameter initialisation, drawn from an ``rng`` (None, an int seed or a Generator; see ``tinydiff.rng``).

PyTorch's default for Linear and Conv layers draws every weight and bias from a uniform distribution

    W_ij ~ U(-bound, bound),   bound = 1 / sqrt(fan_in)

(``kaiming_uniform_`` with a = sqrt(5)), where fan_in is the number of inputs that feed one output: ``in_features``
for a Linear layer, ``C_in * k_h * k_w`` for a convolution. The variance 1 / (3 fan_in) keeps the scale of
activations roughly constant through a stack of layers (He et al. 2015, with the gain PyTorch chose).
"""

from __future__ import annotations

import numpy as np

from tinydiff.rng import make_rng


def uniform_fan_in(shape: tuple[int, ...], fan_in: int, rng=None, dtype=np.float32) -> np.ndarray:
    """An array of ``shape`` drawn from U(-1/sqrt(fan_in), 1/sqrt(fan_in)) in ``dtype`` (PyTorch's default init)."""
    if fan_in <= 0:
        raise ValueError(f"fan_in must be positive, got {fan_in}")
    bound = 1.0 / np.sqrt(fan_in)
    return make_rng(rng).uniform(-bound, bound, size=shape).astype(dtype)


def normal(shape: tuple[int, ...], std: float = 1.0, rng=None, dtype=np.float32) -> np.ndarray:
    """An array of ``shape`` drawn from N(0, std^2) in ``dtype`` (PyTorch's default for Embedding is std = 1)."""
    return (std * make_rng(rng).standard_normal(shape)).astype(dtype)
