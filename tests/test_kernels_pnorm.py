"""Fused GroupNorm + AdaGN + SiLU on P arrays (kernels/pnorm.py) against the layers it replaces, in float64 NCHW:
GroupNorm, then h = n (1 + s) + t, then SiLU, and their backward passes (nn/blocks.py's algebra)."""

import numpy as np
import pytest

from tinydiff.nn.kernels.activations import silu_backward_ref, silu_forward_ref
from tinydiff.nn.kernels.playout import PLayout
from tinydiff.nn.kernels.pnorm import exp_nonpos32, gn_adagn_silu_p, gn_adagn_silu_p_backward, sigmoid32
from tinydiff.nn.norm import GroupNorm


def rel(a, ref):
    """Largest error relative to the largest reference value, or to 1 (the inputs' scale) if that is smaller: a
    group of 2 values normalises to +-1 exactly, so its dY is pure float32 cancellation (~1e-4 of the inputs)."""
    return float(np.abs(a - ref).max() / max(np.abs(ref).max(), 1.0))


def reference(y, gamma, beta, s, t, G, dX):
    """float64 NCHW: X = SiLU(GN(y) (1 + s) + t), and from dX: dy, ds, dt, dgamma, dbeta."""
    gn = GroupNorm(G, y.shape[1], dtype=np.float64)
    gn.params["weight"][...], gn.params["bias"][...] = gamma, beta
    n = gn.forward(y)
    h = n * (1 + s[:, :, None, None]) + t[:, :, None, None]
    X = silu_forward_ref(h)
    g = silu_backward_ref(h, dX)
    dy = gn.backward(g * (1 + s[:, :, None, None]))
    return X, dy, (g * n).sum(axis=(2, 3)), g.sum(axis=(2, 3)), gn.grads["weight"], gn.grads["bias"]


def run(B, C, G, H, W, adagn=True, shift=0.0, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.standard_normal((B, C, H, W)) * 2 + shift
    gamma, beta = 1 + 0.3 * rng.standard_normal(C), 0.3 * rng.standard_normal(C)
    st = 0.5 * rng.standard_normal((B, 2 * C)) if adagn else np.zeros((B, 2 * C))
    dX = rng.standard_normal((B, C, H, W))
    ref = reference(y, gamma, beta, st[:, :C], st[:, C:], G, dX)
    lay = PLayout(B, H, W)
    f32 = np.float32
    Y, st32 = lay.to_p(y), st.astype(f32)
    mean, rstd = np.zeros((B, G)), np.zeros((B, G))
    geo = (lay.mask, B, H, W, lay.M0, lay.S, lay.Wp)
    X = gn_adagn_silu_p(Y, gamma.astype(f32), beta.astype(f32), st32, 1e-5, mean, rstd, lay.zeros(C), *geo)
    dY, dst = lay.zeros(C), np.zeros((B, 2 * C), f32)
    dgamma, dbeta = np.zeros(C, f32), np.zeros(C, f32)
    gn_adagn_silu_p_backward(lay.to_p(dX), Y, gamma.astype(f32), beta.astype(f32), st32, mean, rstd, dY, dst,
                             dgamma, dbeta, *geo)
    ours = (lay.from_p(X), lay.from_p(dY), dst[:, :C], dst[:, C:], dgamma, dbeta)
    pads = (X * (1 - lay.mask), dY * (1 - lay.mask))
    return ours, ref, pads


NAMES = ("X", "dY", "ds", "dt", "dgamma", "dbeta")


@pytest.mark.parametrize("B, C, G, H, W", [(2, 8, 4, 5, 7), (3, 6, 3, 1, 1), (2, 24, 8, 7, 7)])
def test_fused_groupnorm_adagn_silu_matches_the_layers(B, C, G, H, W):
    ours, ref, _ = run(B, C, G, H, W)
    for name, a, r in zip(NAMES, ours, ref):
        assert rel(a, r) < 2e-5, f"{name}: relative error {rel(a, r):.1e} against the float64 layers"


def test_plain_groupnorm_silu_is_the_kernel_with_zero_scale_and_shift():
    ours, ref, _ = run(2, 8, 2, 4, 4, adagn=False)
    for name, a, r in zip(NAMES, ours, ref):
        assert rel(a, r) < 2e-5, name


def test_statistics_survive_a_large_mean():
    ours, ref, _ = run(2, 8, 4, 6, 6, shift=100.0)
    assert rel(ours[0], ref[0]) < 1e-4 and rel(ours[1], ref[1]) < 1e-3


def test_fused_kernels_leave_pads_zero():
    _, _, (x_pads, dy_pads) = run(2, 8, 4, 5, 3)
    assert np.count_nonzero(x_pads) == 0 and np.count_nonzero(dy_pads) == 0


def test_float32_exp_and_sigmoid_are_accurate():
    y = np.linspace(-87, 0, 2001, dtype=np.float32)
    ours = np.array([exp_nonpos32(v) for v in y])
    np.testing.assert_allclose(ours, np.exp(y.astype(np.float64)), rtol=1e-5, atol=1e-37)
    x = np.linspace(-30, 30, 601, dtype=np.float32)
    np.testing.assert_allclose([sigmoid32(v) for v in x], 1 / (1 + np.exp(-x.astype(np.float64))), rtol=1e-5)
