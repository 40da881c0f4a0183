"""The fused float32 kernels of the MLP training step agree with their NumPy references, and a NaN still comes out."""

import numpy as np
import pytest

from tinydiff.nn.kernels import fused_mlp as F
from tinydiff.nn.kernels.gemm import gemm_blas, gemm_ref

TOL = dict(rtol=1e-5, atol=2e-6)     # float32 erf/exp approximations: a few ulp of values of size ~1-10


def arrays(n=37, h=19, seed=0):
    """Pre-activations spanning both GELU tails, a bias, and upstream gradients: (n, h), (h,), (n, h)."""
    rng = np.random.default_rng(seed)
    u = (4 * rng.standard_normal((n, h))).astype(np.float32)
    u[0, :] = np.linspace(-12, 12, h)
    return u, rng.standard_normal(h).astype(np.float32), rng.standard_normal((n, h)).astype(np.float32)


def exact_gelu_and_derivative(v):
    from scipy.special import erf

    v = v.astype(np.float64)
    cdf = 0.5 * (1 + erf(v / np.sqrt(2)))
    return v * cdf, cdf + v * np.exp(-v * v / 2) / np.sqrt(2 * np.pi)


def test_bias_gelu_gives_gelu_and_keeps_its_derivative():
    u, b, _ = arrays()
    u1, u2, h1, h2 = u.copy(), u.copy(), np.empty_like(u), np.empty_like(u)
    F.bias_gelu_numba(u1, b, h1)
    F.bias_gelu_ref(u2, b, h2)
    gelu, dgelu = exact_gelu_and_derivative(u + b)
    np.testing.assert_allclose(h1, gelu, **TOL)
    np.testing.assert_allclose(u1, dgelu, **TOL)
    np.testing.assert_allclose(h2, gelu, **TOL)
    np.testing.assert_allclose(u2, dgelu, **TOL)


def test_bias_residual_gelu_matches_reference():
    u, b, h_prev = arrays()
    u1, u2, h1, h2 = u.copy(), u.copy(), np.empty_like(u), np.empty_like(u)
    F.bias_residual_gelu_numba(u1, b, h_prev, h1)
    F.bias_residual_gelu_ref(u2, b, h_prev, h2)
    np.testing.assert_allclose(h1, h2, **TOL)
    np.testing.assert_allclose(u1, u2, **TOL)
    np.testing.assert_allclose(h2, h_prev + exact_gelu_and_derivative(u + b)[0], **TOL)


def test_gelu_backward_bias_matches_reference_and_sums_the_bias_gradient():
    u, _, dh = arrays(n=300)
    dgelu = exact_gelu_and_derivative(u)[1].astype(np.float32)
    dz1, dz2 = np.empty_like(u), np.empty_like(u)
    db1, db2 = np.empty(u.shape[1], np.float32), np.empty(u.shape[1], np.float32)
    F.gelu_backward_bias_numba(dgelu, dh, dz1, db1)
    F.gelu_backward_bias_ref(dgelu, dh, dz2, db2)
    np.testing.assert_allclose(dz1, dgelu * dh, rtol=1e-6)
    np.testing.assert_allclose(dz2, dgelu * dh, rtol=1e-6)
    np.testing.assert_allclose(db1, db2, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(db1, (dgelu.astype(np.float64) * dh).sum(axis=0), rtol=1e-5, atol=1e-5)


def test_residual_gelu_backward_bias_adds_the_skip_gradient_first():
    u, dskip, dh = arrays(n=50)
    dgelu = exact_gelu_and_derivative(u)[1].astype(np.float32)
    out = {}
    for name, kernel in (("numba", F.residual_gelu_backward_bias_numba), ("ref", F.residual_gelu_backward_bias_ref)):
        dh_k, dz, db = dh.copy(), np.empty_like(u), np.empty(u.shape[1], np.float32)
        kernel(dgelu, dh_k, np.broadcast_to(dskip, u.shape).copy(), dz, db)
        out[name] = (dh_k, dz, db)
    np.testing.assert_allclose(out["ref"][0], dh + dskip, rtol=1e-6)
    np.testing.assert_allclose(out["ref"][1], dgelu * (dh + dskip), rtol=1e-6)
    for a, b in zip(out["numba"], out["ref"]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_mse_matches_reference():
    rng = np.random.default_rng(1)
    out, target = (rng.standard_normal((50, 2)).astype(np.float32) for _ in range(2))
    dy1, dy2 = np.empty_like(out), np.empty_like(out)
    assert F.mse_numba(out, target, dy1) == pytest.approx(F.mse_ref(out, target, dy2), rel=1e-12)
    np.testing.assert_allclose(dy1, dy2, rtol=1e-6)
    np.testing.assert_allclose(dy2, 2 * (out - target) / out.size, rtol=1e-6)


@pytest.mark.parametrize("max_norm", [1e9, 0.5])     # no clipping, clipping
def test_clip_adamw_matches_reference_over_several_steps(max_norm):
    rng = np.random.default_rng(2)
    p, m, v = rng.standard_normal(1000).astype(np.float32), np.zeros(1000, np.float32), np.zeros(1000, np.float32)
    ours, ref = [p.copy(), m.copy(), v.copy()], [p.copy(), m.copy(), v.copy()]
    for step in range(1, 4):
        g = rng.standard_normal(1000).astype(np.float32)
        n1 = F.clip_adamw_numba(ours[0], g.copy(), ours[1], ours[2], 1e-2, 0.9, 0.999, 1e-8, 0.01, step, max_norm)
        n2 = F.clip_adamw_ref(ref[0], g.copy(), ref[1], ref[2], 1e-2, 0.9, 0.999, 1e-8, 0.01, step, max_norm)
        assert n1 == pytest.approx(n2, rel=1e-12)
    for a, b in zip(ours, ref):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.filterwarnings("ignore:invalid value encountered in cast")   # NaN -> int32, as plain Python
@pytest.mark.parametrize("kernels", [F.NUMBA, F.REF], ids=["numba", "ref"])
def test_a_nan_propagates_through_every_kernel(kernels):
    # FASTMATH (kernels/jit.py) leaves out nnan/ninf so that this holds: a diverged run must be detected
    u, b, dh = arrays(n=4, h=8)
    u[1, 3] = np.nan
    h, dz, db = np.empty_like(u), np.empty_like(u), np.empty(8, np.float32)
    kernels["bias_residual_gelu"](u, b, dh, h)                 # u now holds GELU'(u + b)
    kernels["gelu_backward_bias"](u, dh, dz, db)
    assert np.isnan(h[1, 3]) and np.isnan(u[1, 3]) and np.isnan(dz[1, 3]) and np.isnan(db[3])
    assert np.isfinite(np.delete(h.ravel(), 1 * 8 + 3)).all()
    out, dy = np.zeros((4, 2), np.float32), np.empty((4, 2), np.float32)
    out[2, 1] = np.nan
    assert np.isnan(kernels["mse"](out, np.zeros_like(out), dy))


@pytest.mark.parametrize("kernels", [F.NUMBA, F.REF], ids=["numba", "ref"])
def test_clip_adamw_leaves_everything_unchanged_when_the_norm_is_not_finite(kernels):
    p, g, m, v = (np.ones(10, np.float32) for _ in range(4))
    g[4] = np.inf
    before = [a.copy() for a in (p, g, m, v)]
    assert not np.isfinite(kernels["clip_adamw"](p, g, m, v, 1e-2, 0.9, 0.999, 1e-8, 0.0, 1, 1.0))
    for a, b in zip((p, g, m, v), before):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trans_a, trans_b", [(0, 0), (1, 0), (0, 1), (1, 1)])
def test_gemm_matches_reference_in_place(trans_a, trans_b, dtype):
    rng = np.random.default_rng(3)
    a = rng.standard_normal((7, 5) if trans_a else (5, 7)).astype(dtype)      # op(a): (5, 7)
    b = rng.standard_normal((3, 7) if trans_b else (7, 3)).astype(dtype)      # op(b): (7, 3)
    c, c_ref = np.empty((5, 3), dtype), np.empty((5, 3), dtype)
    address = c.ctypes.data
    gemm_blas(a, b, c, bool(trans_a), bool(trans_b))
    gemm_ref(a, b, c_ref, bool(trans_a), bool(trans_b))
    assert c.ctypes.data == address
    np.testing.assert_allclose(c, c_ref, rtol=1e-5 if dtype == np.float32 else 1e-12)


def test_gemm_refuses_shapes_that_do_not_chain_and_strided_arrays():
    a, b = np.ones((4, 3), np.float32), np.ones((3, 2), np.float32)
    with pytest.raises(ValueError, match="c must be 4x2"):
        gemm_blas(a, b, np.empty((2, 4), np.float32))
    with pytest.raises(ValueError, match="C-contiguous"):
        gemm_blas(a, np.ones((3, 4), np.float32)[:, ::2], np.empty((4, 2), np.float32))


def test_place_features_matches_reference():
    rng = np.random.default_rng(4)
    sin, cos = (rng.standard_normal((6, 3, 4)).astype(np.float32) for _ in range(2))
    table, t = rng.standard_normal((10, 8)).astype(np.float32), rng.integers(0, 10, 6)
    f1, f2 = np.empty((6, 3 * 8 + 8), np.float32), np.empty((6, 3 * 8 + 8), np.float32)
    F.place_features_numba(sin, cos, table, t, f1)
    F.place_features_ref(sin, cos, table, t, f2)
    np.testing.assert_array_equal(f1, f2)
    np.testing.assert_array_equal(f2[:, 8:12], sin[:, 1])           # coordinate 1: its sines, then its cosines
    np.testing.assert_array_equal(f2[:, 24:], table[t])
