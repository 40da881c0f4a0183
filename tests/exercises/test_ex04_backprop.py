"""Exercises 4.1-4.4: Linear, GELU and SiLU backward, and the Adam update (chapters/04_backprop_by_hand.py).

Gradients are judged by the float64 gradient check of ``tinydiff.nn.gradcheck``; its per-tensor report is in the
failure message. The Numba exercises can be debugged with NUMBA_DISABLE_JIT=1 (then print and pdb work inside).
"""

import numpy as np
import pytest
from scipy.special import erf

from tinydiff.exercises.checks import expect_close, expect_gradients_ok
from tinydiff.nn.activations import GELU, SiLU
from tinydiff.nn.kernels import activations as A
from tinydiff.nn.kernels.optim import adam_update_numba, adam_update_ref
from tinydiff.nn.linear import Linear
from tinydiff.nn.module import Module

RNG = np.random.default_rng(0)
X = RNG.standard_normal((4, 5)) * 2.0                     # (4, 5) float64, values in about [-5, 5]
DY = RNG.standard_normal((4, 5))


class _Elementwise(Module):
    """An activation made of two NumPy reference functions, so that the gradient check can judge the reference."""

    def __init__(self, forward, backward):
        super().__init__()
        self._f, self._b = forward, backward

    def forward(self, x):
        self._x = x
        return self._f(x)

    def backward(self, dy):
        return self._b(self._x, np.ascontiguousarray(dy))


# ---- 4.1 Linear ----------------------------------------------------------------------------------------------
@pytest.mark.ex4_1
def test_linear_backward_passes_the_gradient_check():
    expect_gradients_ok("ex4_1", Linear(5, 3, rng=0, dtype=np.float64), X)


@pytest.mark.ex4_1
def test_linear_backward_sums_weight_and_bias_gradients_over_every_leading_axis():
    layer = Linear(5, 3, rng=0, dtype=np.float64)
    x = RNG.standard_normal((2, 4, 5))                              # (2, 4, 5): two leading axes
    layer.forward(x)
    dy = RNG.standard_normal((2, 4, 3))
    dx = layer.backward(dy)
    x2, dy2 = x.reshape(-1, 5), dy.reshape(-1, 3)                   # (8, 5), (8, 3)
    expect_close("ex4_1", "dL/dbias", layer.grads["bias"], dy2.sum(axis=0), likely=[
        (dy2.mean(axis=0), "the bias gradient is a sum over the rows, not a mean"),
    ], hint="the bias is added to every row, so its gradient sums dy over all of them")
    expect_close("ex4_1", "dL/dweight", layer.grads["weight"], dy2.T @ x2, likely=[
        ((dy2.T @ x2) / 8, "the weight gradient is a sum over the rows, not a mean"),
    ], hint="dW = dy^T x, shape (out, in)")
    expect_close("ex4_1", "dL/dx", dx, (dy2 @ layer.params["weight"]).reshape(2, 4, 5),
                 hint="dx = dy W has the shape of x: reshape it back to (..., in)")


# ---- 4.2 GELU, 4.3 SiLU --------------------------------------------------------------------------------------
def _phi(x):
    return 0.5 * (1 + erf(x / np.sqrt(2))), np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi)


@pytest.mark.ex4_2(part="the two Numba loops", points=2)
def test_gelu_backward_passes_the_gradient_check():
    expect_gradients_ok("ex4_2", GELU(), X)


@pytest.mark.ex4_2(part="the NumPy reference", points=1)
def test_gelu_backward_reference_passes_the_gradient_check():
    cdf, pdf = _phi(X)
    try:
        expect_gradients_ok("ex4_2", _Elementwise(A.gelu_forward_ref, A.gelu_backward_ref), X)
    except AssertionError as e:
        got = A.gelu_backward_ref(X, DY)
        known = [(DY * cdf, "only Phi(x): the product rule on x * Phi(x) also gives x phi(x)"),
                 (DY * (cdf + pdf), "the second term is x * phi(x), not phi(x)"),
                 (cdf + X * pdf, "multiply by dy (the chain rule)")]
        cause = next((why for wrong, why in known if np.allclose(got, wrong)), None)
        raise AssertionError(f"{e}\n(gelu_backward_ref){' Likely cause: ' + cause if cause else ''}") from None


@pytest.mark.ex4_2(part="the two Numba loops", points=2)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gelu_backward_numba_kernels_agree_with_the_reference(dtype):
    x, dy = X.astype(dtype), DY.astype(dtype)
    expect_close("ex4_2", f"gelu_backward_numba in {np.dtype(dtype).name}", A.gelu_backward_numba(x, dy),
                 A.gelu_backward_ref(x, dy), rtol=1e-5, atol=1e-6,
                 hint="float64 runs _gelu_bwd_exact, float32 runs _gelu_bwd_fast: both loops need the formula")


@pytest.mark.ex4_3(part="the two Numba loops")
def test_silu_backward_passes_the_gradient_check():
    expect_gradients_ok("ex4_3", SiLU(), X)


@pytest.mark.ex4_3(part="the NumPy reference")
def test_silu_backward_reference_passes_the_gradient_check():
    s = 1 / (1 + np.exp(-X))
    try:
        expect_gradients_ok("ex4_3", _Elementwise(A.silu_forward_ref, A.silu_backward_ref), X)
    except AssertionError as e:
        got = A.silu_backward_ref(X, DY)
        known = [(DY * s, "only sigma(x): the product rule on x * sigma(x) also gives x sigma'(x)"),
                 (DY * s * (1 - s), "that is sigma'(x); SiLU is x sigma(x), so add sigma(x) (product rule)")]
        cause = next((why for wrong, why in known if np.allclose(got, wrong)), None)
        raise AssertionError(f"{e}\n(silu_backward_ref){' Likely cause: ' + cause if cause else ''}") from None


@pytest.mark.ex4_3(part="the two Numba loops")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_silu_backward_numba_kernels_agree_with_the_reference(dtype):
    x, dy = X.astype(dtype), DY.astype(dtype)
    expect_close("ex4_3", f"silu_backward_numba in {np.dtype(dtype).name}", A.silu_backward_numba(x, dy),
                 A.silu_backward_ref(x, dy), rtol=1e-5, atol=1e-6,
                 hint="float64 runs _silu_bwd_exact, float32 runs _silu_bwd_fast: both loops need the formula")


# ---- 4.4 Adam ------------------------------------------------------------------------------------------------
def _adam_state(dtype=np.float64):
    rng = np.random.default_rng(3)
    p, g = rng.standard_normal(6).astype(dtype), rng.standard_normal(6).astype(dtype)
    return p, g, np.zeros(6, dtype), np.zeros(6, dtype)


@pytest.mark.ex4_4
@pytest.mark.parametrize("update", [adam_update_ref, adam_update_numba], ids=["reference", "numba"])
def test_adam_first_step_moves_each_parameter_by_about_lr(update):
    p, g, m, v = _adam_state()
    p0 = p.copy()
    update(p, g, m, v, 0.01, 0.9, 0.999, 1e-8, 0.0, 0.0, 1)
    no_bias_correction = p0 - 0.01 * (0.1 * g) / (np.sqrt(0.001 * g * g) + 1e-8)
    expect_close("ex4_4", f"p after one step ({update.__name__})", p, p0 - 0.01 * np.sign(g), rtol=1e-5, likely=[
        (no_bias_correction, "the bias correction is missing: m_hat = m / (1 - beta1^t), v_hat = v / (1 - beta2^t)"),
        (p0 + 0.01 * np.sign(g), "the step goes uphill: subtract lr * m_hat / (sqrt(v_hat) + eps)"),
        (p0, "p did not change: update the arrays in place (p[...] = ... in NumPy, p[i] = ... in the loop)"),
    ], hint="after bias correction, step 1 has m_hat = g and v_hat = g^2, so each parameter moves by lr * sign(g)")


@pytest.mark.ex4_4
@pytest.mark.parametrize("update", [adam_update_ref, adam_update_numba], ids=["reference", "numba"])
def test_adam_three_steps_with_l2_and_decoupled_decay(update):
    p, g, m, v = _adam_state()
    pe, me, ve = p.copy(), m.copy(), v.copy()
    lr, b1, b2, eps, l2, wd = 0.05, 0.8, 0.9, 1e-8, 0.1, 0.2
    for step in (1, 2, 3):
        ge = g + l2 * pe
        me = b1 * me + (1 - b1) * ge
        ve = b2 * ve + (1 - b2) * ge * ge
        pe = pe - lr * ((me / (1 - b1**step)) / (np.sqrt(ve / (1 - b2**step)) + eps) + wd * pe)
        update(p, g, m, v, lr, b1, b2, eps, l2, wd, step)
    expect_close("ex4_4", f"m after 3 steps ({update.__name__})", m, me,
                 hint="m <- beta1 m + (1 - beta1) g, with g = grad + l2 * p (l2 folds Adam's L2 penalty into g)")
    expect_close("ex4_4", f"v after 3 steps ({update.__name__})", v, ve, hint="v <- beta2 v + (1 - beta2) g^2")
    expect_close("ex4_4", f"p after 3 steps ({update.__name__})", p, pe,
                 hint="p <- p - lr (m_hat / (sqrt(v_hat) + eps) + wd p): eps outside the sqrt, wd not scaled by v")
