"""Each Numba kernel agrees with its NumPy reference (float32 and float64), and the references match known values."""

import numpy as np
import pytest

from tinydiff.nn.kernels import activations as K
from tinydiff.nn.kernels.optim import adam_update_numba, adam_update_ref

OPS = ["gelu", "gelu_tanh", "silu"]


def inputs(dtype, n=2000, seed=0):
    rng = np.random.default_rng(seed)
    x = np.concatenate([np.linspace(-12, 12, 401), 3 * rng.standard_normal(n)]).astype(dtype)
    return x, rng.standard_normal(x.shape).astype(dtype)


# float32 kernels use vectorisable approximations of erf and exp: a few float32 ulp of the values (|y| <= 12)
TOL = {np.float32: dict(rtol=1e-5, atol=2e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op", OPS)
def test_forward_kernel_matches_reference(op, dtype):
    x, _ = inputs(dtype)
    y = getattr(K, f"{op}_forward_numba")(x)
    ref = getattr(K, f"{op}_forward_ref")(x.astype(np.float64))
    assert y.dtype == dtype
    np.testing.assert_allclose(y, ref, **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op", OPS)
def test_backward_kernel_matches_reference(op, dtype):
    x, dy = inputs(dtype)
    dx = getattr(K, f"{op}_backward_numba")(x, dy)
    ref = getattr(K, f"{op}_backward_ref")(x.astype(np.float64), dy.astype(np.float64))
    assert dx.dtype == dtype
    np.testing.assert_allclose(dx, ref, **TOL[dtype])


@pytest.mark.parametrize("op", OPS)
def test_kernels_keep_the_input_shape(op):
    x = np.zeros((2, 3, 4), np.float32)
    assert getattr(K, f"{op}_forward_numba")(x).shape == (2, 3, 4)
    assert getattr(K, f"{op}_backward_numba")(x, x).shape == (2, 3, 4)


def test_gelu_reference_matches_known_values():
    # GELU(1) = Phi(1) = 0.841344746..., GELU(-1) = -(1 - Phi(1))
    np.testing.assert_allclose(K.gelu_forward_ref(np.array([0.0, 1.0, -1.0])),
                               [0.0, 0.8413447460685429, -0.15865525393145707], rtol=1e-14)


def test_silu_reference_matches_known_values():
    # SiLU(1) = 1 / (1 + e^-1)
    np.testing.assert_allclose(K.silu_forward_ref(np.array([0.0, 1.0])), [0.0, 1 / (1 + np.exp(-1.0))], rtol=1e-14)


def test_gelu_backward_reference_is_the_derivative_of_forward():
    x = np.linspace(-4, 4, 17)
    num = (K.gelu_forward_ref(x + 1e-6) - K.gelu_forward_ref(x - 1e-6)) / 2e-6
    np.testing.assert_allclose(K.gelu_backward_ref(x, np.ones_like(x)), num, rtol=1e-7, atol=1e-9)


def test_silu_kernel_does_not_overflow_for_large_inputs():
    y = K.silu_forward_numba(np.array([-200.0, 200.0], np.float32))
    np.testing.assert_allclose(y, [0.0, 200.0], atol=1e-6)


def test_kernel_rejects_integer_arrays():
    with pytest.raises(TypeError, match="float32 or float64"):
        K.gelu_forward_numba(np.arange(3))


# ---- fused Adam update ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("l2, wd", [(0.0, 0.0), (0.1, 0.0), (0.0, 0.1)])
def test_adam_kernel_matches_reference_over_several_steps(dtype, l2, wd):
    rng = np.random.default_rng(0)
    state = [rng.standard_normal((5, 4)).astype(dtype), np.zeros((5, 4), dtype), np.zeros((5, 4), dtype)]
    fast, ref = [a.copy() for a in state], [a.copy() for a in state]
    for step in range(1, 4):
        g = rng.standard_normal((5, 4)).astype(dtype)
        adam_update_numba(fast[0], g, fast[1], fast[2], 1e-2, 0.9, 0.999, 1e-8, l2, wd, step)
        adam_update_ref(ref[0], g, ref[1], ref[2], 1e-2, 0.9, 0.999, 1e-8, l2, wd, step)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)
    for a, b in zip(fast, ref):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, b, **tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_residual_gelu_kernel_matches_reference(dtype):
    u, h = inputs(dtype)
    y = K.add_gelu_numba(h, u)
    assert y.dtype == dtype
    np.testing.assert_allclose(y, K.add_gelu_ref(h.astype(np.float64), u.astype(np.float64)), **TOL[dtype])
