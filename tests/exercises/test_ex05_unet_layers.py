"""Exercises 6.1 (the sinusoidal time embedding), 5.2 (GroupNorm backward) and 5.3 (conv2d backward, Numba).

The backward exercises are judged by the float64 gradient check (per-tensor report in the message). The Numba kernels
can be debugged with NUMBA_DISABLE_JIT=1 (then print and pdb work inside the loops).
"""

import math

import numpy as np
import pytest

from tinydiff.exercises.checks import expect_close, expect_gradients_ok, expect_true
from tinydiff.nn.embeddings import SinusoidalEmbedding
from tinydiff.nn.kernels import conv as K
from tinydiff.nn.kernels.groupnorm import groupnorm_backward_numba, groupnorm_backward_ref, groupnorm_forward_numba
from tinydiff.nn.module import Module
from tinydiff.nn.norm import GroupNorm

RNG = np.random.default_rng(0)


# ---- 6.1 sinusoidal embedding --------------------------------------------------------------------------------
@pytest.mark.ex6_1
def test_sinusoidal_embedding_is_sines_then_cosines():
    t = np.array([0, 1, 10, 999])
    f = np.exp(-math.log(10000.0) * np.arange(4) / 3)                   # (half,) = (4,)
    a = t[:, None] * f[None, :]                                          # (B, half)
    expected = np.concatenate([np.sin(a), np.cos(a)], axis=1)            # (B, 8)
    interleaved = np.stack([np.sin(a), np.cos(a)], axis=2).reshape(4, 8)
    got = SinusoidalEmbedding(8, dtype=np.float64).forward(t)
    expect_close("ex6_1", "the embedding of t = [0, 1, 10, 999] (dim 8)", got, expected, likely=[
        (interleaved, "sin and cos are interleaved; tinydiff puts all the sines first, then all the cosines"),
        (np.concatenate([np.cos(a), np.sin(a)], axis=1), "cos comes first; tinydiff's order is [sin, cos]"),
        (np.concatenate([np.sin(t[:, None] / f), np.cos(t[:, None] / f)], axis=1),
         "the arguments are t * f_j (self.freqs), not t / f_j"),
    ], hint="args = t[:, None] * self.freqs[None, :]  # (B, half);  emb = [sin(args), cos(args)]")


@pytest.mark.ex6_1
def test_sinusoidal_embedding_of_float_time_passes_the_gradient_check():
    expect_gradients_ok("ex6_1", SinusoidalEmbedding(6, dtype=np.float64), np.array([0.5, 3.0, 40.0]))


# ---- 5.2 GroupNorm -------------------------------------------------------------------------------------------
class _GroupNormKernels(Module):
    """GroupNorm made of the kernels directly: the Numba backward or its NumPy reference."""

    def __init__(self, backward, groups=2, channels=4):
        super().__init__()
        self.g, self._backward = groups, backward
        self.add_param("weight", RNG.standard_normal(channels) + 1.0)
        self.add_param("bias", RNG.standard_normal(channels))

    def forward(self, x):
        self.y, self.xhat = np.empty_like(x), np.empty_like(x)
        self.rstd = np.empty((x.shape[0], self.g))
        return groupnorm_forward_numba(x, self.params["weight"], self.params["bias"], self.g, 1e-5, self.y, self.xhat,
                                 self.rstd).copy()

    def backward(self, dy):
        dx = np.empty_like(dy)
        self._backward(np.ascontiguousarray(dy), self.xhat, self.rstd, self.params["weight"], self.g, dx,
                       self.grads["weight"], self.grads["bias"])
        return dx


@pytest.mark.ex5_2
def test_groupnorm_layer_passes_the_gradient_check():
    layer = GroupNorm(2, 4, dtype=np.float64)
    layer.params["weight"][...] = RNG.standard_normal(4) + 1.0          # not all ones: catches a missing gamma
    expect_gradients_ok("ex5_2", layer, RNG.standard_normal((2, 4, 3, 3)))


@pytest.mark.ex5_2
@pytest.mark.parametrize("backward", [groupnorm_backward_numba, groupnorm_backward_ref], ids=["numba", "reference"])
def test_groupnorm_backward_kernels_pass_the_gradient_check(backward):
    expect_gradients_ok("ex5_2", _GroupNormKernels(backward), RNG.standard_normal((2, 4, 2, 3)))


# ---- 5.3 conv2d ----------------------------------------------------------------------------------------------
class _DirectConv(Module):
    """Conv2d made of the direct Numba kernels (forward, and the two backward loops of the exercise)."""

    def __init__(self, c_in=2, c_out=3, k=3, stride=1, padding=1):
        super().__init__()
        self.stride, self.padding = stride, padding
        self.add_param("weight", RNG.standard_normal((c_out, c_in, k, k)))
        self.add_param("bias", RNG.standard_normal(c_out))

    def forward(self, x):
        self.x = x
        w = self.params["weight"]
        ho = K.conv_output_size(x.shape[2], w.shape[2], self.stride, self.padding)
        wo = K.conv_output_size(x.shape[3], w.shape[3], self.stride, self.padding)
        y = np.empty((x.shape[0], w.shape[0], ho, wo))
        return K.conv2d_forward_numba(x, w, self.params["bias"], self.stride, self.padding, y)

    def backward(self, dy):
        dy = np.ascontiguousarray(dy)
        K.conv2d_backward_weight_numba(dy, self.x, self.stride, self.padding, self.grads["weight"], self.grads["bias"])
        dx = np.empty_like(self.x)
        return K.conv2d_backward_input_numba(dy, self.params["weight"], self.stride, self.padding, dx)


@pytest.mark.ex5_3
@pytest.mark.parametrize("stride,padding", [(1, 1), (2, 0), (2, 1)])
def test_conv2d_direct_backward_passes_the_gradient_check(stride, padding):
    expect_gradients_ok("ex5_3", _DirectConv(stride=stride, padding=padding), RNG.standard_normal((2, 2, 5, 5)))


@pytest.mark.ex5_3
def test_conv2d_direct_backward_overwrites_its_outputs():
    conv = _DirectConv()
    x = RNG.standard_normal((1, 2, 4, 4))
    dy = RNG.standard_normal(conv.forward(x).shape)
    conv.backward(dy)
    first = conv.grads["weight"].copy()
    conv.backward(dy)
    expect_true("ex5_3", np.allclose(conv.grads["weight"], first),
                "a second backward with the same dy changed dw: set dw[...] = 0 (and dbias, dx) before accumulating")
