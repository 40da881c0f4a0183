"""The convolution and GroupNorm kernels agree with their NumPy references (float32 and float64)."""

import numpy as np
import pytest

from tinydiff.nn.kernels import conv as K
from tinydiff.nn.kernels.groupnorm import (
    groupnorm_backward_numba,
    groupnorm_backward_ref,
    groupnorm_forward_numba,
    groupnorm_forward_ref,
)

# (B, C, O, H, W, k, stride, padding): square and non-square images, 1x1 and 3x3 kernels, stride 2, odd sizes
CONFIGS = [
    (2, 3, 4, 6, 6, 3, 1, 1),
    (2, 3, 5, 7, 5, 3, 2, 1),
    (1, 4, 2, 5, 6, 1, 1, 0),
    (3, 2, 3, 8, 7, 3, 1, 0),
    (2, 2, 2, 7, 7, 3, 2, 0),
]
TOL = {np.float32: 1e-5, np.float64: 1e-12}


def _problem(cfg, dtype, seed=0):
    B, C, O, H, W, k, s, p = cfg
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, C, H, W)).astype(dtype)
    w = rng.standard_normal((O, C, k, k)).astype(dtype)
    b = rng.standard_normal(O).astype(dtype)
    Ho, Wo = K.conv_output_size(H, k, s, p), K.conv_output_size(W, k, s, p)
    dy = rng.standard_normal((B, O, Ho, Wo)).astype(dtype)
    return x, w, b, dy


def _close(a, b, dtype):
    scale = max(1.0, float(np.abs(b).max()))
    np.testing.assert_allclose(a, b, rtol=0, atol=TOL[dtype] * scale * 10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cfg", CONFIGS)
def test_im2col_and_col2im_match_reference(cfg, dtype):
    x, w, _, dy = _problem(cfg, dtype)
    k, s, p = cfg[5], cfg[6], cfg[7]
    shape = (x.shape[0], x.shape[1] * k * k, dy.shape[2] * dy.shape[3])
    cols, cols_ref = np.empty(shape, dtype), np.empty(shape, dtype)
    K.im2col_numba(x, k, k, s, p, cols)
    K.im2col_ref(x, k, k, s, p, cols_ref)
    np.testing.assert_array_equal(cols, cols_ref)
    dx, dx_ref = np.full_like(x, np.nan), np.empty_like(x)
    K.col2im_numba(cols, k, k, s, p, dx)
    K.col2im_ref(cols, k, k, s, p, dx_ref)
    assert dx.dtype == dtype
    _close(dx, dx_ref, dtype)


def test_col2im_is_the_adjoint_of_im2col():
    # <im2col(x), c> = <x, col2im(c)> for every x and c: col2im is the transpose of the linear map im2col
    x, _, _, _ = _problem(CONFIGS[1], np.float64)
    k, s, p = 3, 2, 1
    cols = np.empty((2, 3 * 9, 4 * 3))
    c = np.random.default_rng(1).standard_normal(cols.shape)
    lhs = np.sum(K.im2col_numba(x, k, k, s, p, cols) * c)
    rhs = np.sum(x * K.col2im_numba(c, k, k, s, p, np.empty_like(x)))
    assert abs(lhs - rhs) < 1e-10 * abs(lhs)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cfg", CONFIGS)
def test_forward_strategies_match_reference(cfg, dtype):
    x, w, b, dy = _problem(cfg, dtype)
    s, p = cfg[6], cfg[7]
    ref = K.conv2d_forward_ref(x, w, b, s, p, np.empty_like(dy))
    direct = K.conv2d_forward_numba(x, w, b, s, p, np.full_like(dy, np.nan))
    cols = np.empty((x.shape[0], w[0].size, dy.shape[2] * dy.shape[3]), dtype)
    fast = K.conv2d_forward_im2col(x, w, b, s, p, np.full_like(dy, np.nan), cols)
    assert direct.dtype == fast.dtype == dtype
    _close(direct, ref, dtype)
    _close(fast, ref, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cfg", CONFIGS)
def test_backward_weight_strategies_match_reference(cfg, dtype):
    x, w, b, dy = _problem(cfg, dtype)
    s, p = cfg[6], cfg[7]
    dw_ref, db_ref = K.conv2d_backward_weight_ref(dy, x, s, p, np.empty_like(w), np.empty_like(b))
    dw, db = K.conv2d_backward_weight_numba(dy, x, s, p, np.full_like(w, np.nan), np.full_like(b, np.nan))
    _close(dw, dw_ref, dtype)
    _close(db, db_ref, dtype)
    cols = np.empty((x.shape[0], w[0].size, dy.shape[2] * dy.shape[3]), dtype)
    K.im2col_numba(x, w.shape[2], w.shape[3], s, p, cols)
    dw, db = K.conv2d_backward_weight_im2col(dy, cols, np.full_like(w, np.nan), np.full_like(b, np.nan))
    _close(dw, dw_ref, dtype)
    _close(db, db_ref, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cfg", CONFIGS)
def test_backward_input_strategies_match_reference(cfg, dtype):
    x, w, b, dy = _problem(cfg, dtype)
    s, p = cfg[6], cfg[7]
    dx_ref = K.conv2d_backward_input_ref(dy, w, s, p, np.empty_like(x))
    dx = K.conv2d_backward_input_numba(dy, w, s, p, np.full_like(x, np.nan))
    _close(dx, dx_ref, dtype)
    dcols = np.empty((x.shape[0], w[0].size, dy.shape[2] * dy.shape[3]), dtype)
    dx = K.conv2d_backward_input_im2col(dy, w, s, p, np.full_like(x, np.nan), dcols)
    assert dx.dtype == dtype
    _close(dx, dx_ref, dtype)


def test_reference_forward_matches_a_hand_computed_pixel():
    # equation (1) for one output pixel, summed by hand
    x, w, b, dy = _problem(CONFIGS[1], np.float64)
    y = K.conv2d_forward_ref(x, w, b, 2, 1, np.empty_like(dy))
    bb, o, m, n = 1, 3, 2, 1
    expected = b[o] + sum(w[o, c, i, j] * x[bb, c, m * 2 - 1 + i, n * 2 - 1 + j]
                          for c in range(3) for i in range(3) for j in range(3)
                          if 0 <= m * 2 - 1 + i < 7 and 0 <= n * 2 - 1 + j < 5)
    assert abs(y[bb, o, m, n] - expected) < 1e-12


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,groups", [((2, 6, 5, 4), 3), ((3, 4, 3, 3), 1), ((2, 4, 2, 5), 4)])
def test_groupnorm_kernels_match_reference(shape, groups, dtype):
    rng = np.random.default_rng(2)
    x = (3.0 + 2.0 * rng.standard_normal(shape)).astype(dtype)
    gamma, beta = rng.standard_normal(shape[1]).astype(dtype), rng.standard_normal(shape[1]).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    outs = []
    for fwd, bwd in [(groupnorm_forward_numba, groupnorm_backward_numba),
                     (groupnorm_forward_ref, groupnorm_backward_ref)]:
        y, xhat, rstd = np.empty_like(x), np.empty_like(x), np.empty((shape[0], groups), dtype)
        fwd(x, gamma, beta, groups, 1e-5, y, xhat, rstd)
        dx, dgamma, dbeta = np.empty_like(x), np.empty_like(gamma), np.empty_like(gamma)
        bwd(dy, xhat, rstd, gamma, groups, dx, dgamma, dbeta)
        outs.append((y, xhat, rstd, dx, dgamma, dbeta))
    for a, b in zip(*outs):
        assert a.dtype == dtype
        _close(a, b, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cfg", CONFIGS[:3])
def test_nhwc_benchmark_kernels_match_reference(cfg, dtype):
    # the NHWC alternatives measured in tinydiff/bench/conv.py compute the same convolution in another memory layout
    from tinydiff.bench import conv as N

    x, w, b, dy = _problem(cfg, dtype)
    k, s, p = cfg[5], cfg[6], cfg[7]
    nhwc = lambda a: np.ascontiguousarray(a.transpose(0, 2, 3, 1))  # noqa: E731
    xn, dyn, wn = nhwc(x), nhwc(dy), np.ascontiguousarray(w.transpose(2, 3, 1, 0))
    y_ref = K.conv2d_forward_ref(x, w, b, s, p, np.empty_like(dy))
    dx_ref = K.conv2d_backward_input_ref(dy, w, s, p, np.empty_like(x))
    dw_ref, _ = K.conv2d_backward_weight_ref(dy, x, s, p, np.empty_like(w), np.empty_like(b))
    _close(N.conv2d_forward_direct_nhwc(xn, wn, b, s, p, np.empty_like(dyn)), nhwc(y_ref), dtype)
    _close(N.conv2d_backward_input_direct_nhwc(dyn, wn, s, p, np.empty_like(xn)), nhwc(dx_ref), dtype)
    dwn, _ = N.conv2d_backward_weight_direct_nhwc(dyn, xn, s, p, np.empty_like(wn), np.empty_like(b))
    _close(dwn, dw_ref.transpose(2, 3, 1, 0), dtype)
    cols = N.im2col_nhwc(xn, k, k, s, p, np.empty((dy.size // dy.shape[1], k * k * x.shape[1]), dtype))
    _close((cols @ wn.reshape(-1, w.shape[0]) + b).reshape(dyn.shape), nhwc(y_ref), dtype)
    dcols = dyn.reshape(-1, w.shape[0]) @ wn.reshape(-1, w.shape[0]).T
    _close(N.col2im_nhwc(dcols, k, k, s, p, np.empty_like(xn)), nhwc(dx_ref), dtype)


def test_benchmark_runs_and_reports_every_pass():
    from tinydiff.bench.conv import bench_conv, format_table

    rows = bench_conv(B=1, C=2, O=2, H=5, W=5, repeats=1, strategies=["im2col+BLAS NCHW", "numpy reference"])
    assert [r["pass"] for r in rows] == ["forward", "backward-input", "backward-weight"] * 2
    assert all(r["ms"] > 0 and r["gflops"] > 0 for r in rows)
    assert "im2col+BLAS NCHW" in format_table(rows)


def test_im2col_and_col2im_match_reference_on_random_geometries():
    # im2col/col2im test the image's bounds once per row (the valid columns lo <= n < hi), so sweep the cases
    # where that arithmetic could slip: padding wider than the kernel's reach, strides 1-3, kernels 1-5, tiny images
    rng = np.random.default_rng(7)
    for _ in range(60):
        k, s, p = int(rng.integers(1, 6)), int(rng.integers(1, 4)), int(rng.integers(0, 4))
        H, W = int(rng.integers(1, 9)), int(rng.integers(1, 9))
        Ho, Wo = K.conv_output_size(H, k, s, p), K.conv_output_size(W, k, s, p)
        if Ho < 1 or Wo < 1:
            continue
        x = rng.standard_normal((2, 2, H, W))
        cols, cols_ref = np.full((2, 2 * k * k, Ho * Wo), np.nan), np.empty((2, 2 * k * k, Ho * Wo))
        np.testing.assert_array_equal(K.im2col_numba(x, k, k, s, p, cols), K.im2col_ref(x, k, k, s, p, cols_ref),
                                      err_msg=f"im2col k={k} s={s} p={p} H={H} W={W}")
        c = rng.standard_normal(cols.shape)
        np.testing.assert_allclose(K.col2im_numba(c, k, k, s, p, np.full_like(x, np.nan)),
                                   K.col2im_ref(c, k, k, s, p, np.empty_like(x)), rtol=0, atol=1e-12,
                                   err_msg=f"col2im k={k} s={s} p={p} H={H} W={W}")
