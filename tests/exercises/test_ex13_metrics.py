"""Exercises 13.1 (the Frechet distance), 13.2 (KID's unbiased MMD^2) and the lab 13.3 (the FD floor against
sample size) (chapters/13_evaluating_generative_models.py)."""

import numpy as np
import pytest

from tinydiff.exercises.checks import expect_close, expect_true
from tinydiff.labs.fd_bias import fd_floor_curve
from tinydiff.metrics.images import mmd2_unbiased, polynomial_kernel
from tinydiff.metrics.points import gaussian_w2_squared

RNG = np.random.default_rng(0)


def _spd(d, seed):
    a = np.random.default_rng(seed).standard_normal((d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def _sqrtm(s):
    w, v = np.linalg.eigh(s)
    return (v * np.sqrt(w)) @ v.T


# ---- 13.1 Frechet distance -----------------------------------------------------------------------------------
@pytest.mark.ex13_1(part="one dimension and equal covariances", points=1)
def test_frechet_distance_of_1d_gaussians_is_mean_gap_squared_plus_std_gap_squared():
    got = gaussian_w2_squared([1.0], [[4.0]], [0.0], [[1.0]])
    expect_close("ex13_1", "FD(N(1, 4), N(0, 1))", got, 1.0 + (2.0 - 1.0) ** 2, likely=[
        (1.0 + 4.0 + 1.0 - 2.0 * 4.0, "the cross term is 2 sqrt(S1 S2) = 2 * 2 * 1, the square root of the product"),
        (1.0 + 4.0 + 1.0 - 2.0 * 2.0 * 1.0 * 2.0, "the cross term is 2 tr((S2^1/2 S1 S2^1/2)^1/2), not 2 tr(S1 S2)^..."),
        (1.0 + 5.0, "the cross term -2 tr((S2^1/2 S1 S2^1/2)^1/2) is missing"),
    ], hint="in 1-D: (mu1 - mu2)^2 + (s1 - s2)^2 with s the standard deviations")
    s = _spd(3, 1)
    expect_close("ex13_1", "FD with equal covariances", gaussian_w2_squared(np.ones(3), s, np.zeros(3), s), 3.0,
                 atol=1e-8, hint="with S1 = S2 only the mean term |mu1 - mu2|^2 is left")


@pytest.mark.ex13_1(part="full covariances", points=2)
def test_frechet_distance_with_full_covariances():
    s1, s2 = _spd(4, 2), _spd(4, 3)
    mu1, mu2 = np.arange(4.0), np.ones(4)
    h2 = _sqrtm(s2)
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * _sqrtm(h2 @ s1 @ h2))
    got = gaussian_w2_squared(mu1, s1, mu2, s2)
    expect_true("ex13_1", isinstance(got, float), f"returned a {type(got).__name__}; return float(...)")
    expect_close("ex13_1", "FD of two 4-D Gaussians", got, expected, rtol=1e-8, likely=[
        (np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * np.sqrt(np.abs(s1 @ s2))),
         "an elementwise square root is not a matrix square root: use eigh (S^1/2 = V diag(sqrt(w)) V^T)"),
        (np.sqrt(np.sum((mu1 - mu2) ** 2)) + np.trace(s1 + s2 - 2 * _sqrtm(h2 @ s1 @ h2)),
         "the mean term is the *squared* distance |mu1 - mu2|^2"),
    ], hint="tr((S2^1/2 S1 S2^1/2)^1/2) = sum of the square roots of the eigenvalues of S2^1/2 S1 S2^1/2")
    expect_close("ex13_1", "FD is symmetric: FD(b, a)", gaussian_w2_squared(mu2, s2, mu1, s1), expected, rtol=1e-8)


# ---- 13.2 KID ------------------------------------------------------------------------------------------------
@pytest.mark.ex13_2(part="the kernel", points=1)
def test_polynomial_kernel_is_cubic_in_the_scaled_dot_product():
    a, b = RNG.standard_normal((3, 5)), RNG.standard_normal((4, 5))
    expect_close("ex13_2", "k(a, b)", polynomial_kernel(a, b), (a @ b.T / 5 + 1) ** 3, likely=[
        ((a @ b.T + 1) ** 3, "divide the dot product by the feature dimension d"),
        ((a @ b.T / 5) ** 3, "the kernel is (a . b / d + 1)^3: the + 1 is missing"),
    ])


@pytest.mark.ex13_2(part="the unbiased MMD^2", points=2)
def test_mmd2_unbiased_leaves_out_the_diagonal():
    x, y = RNG.standard_normal((6, 3)), RNG.standard_normal((5, 3)) + 0.5
    k = lambda a, b: (a @ b.T / 3 + 1) ** 3  # noqa: E731
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    expected = ((kxx.sum() - np.trace(kxx)) / 30 + (kyy.sum() - np.trace(kyy)) / 20 - 2 * kxy.mean())
    expect_close("ex13_2", "MMD^2_u", mmd2_unbiased(x, y), expected, likely=[
        (kxx.mean() + kyy.mean() - 2 * kxy.mean(), "that is the biased estimate: leave out k(x_i, x_i) and divide "
                                                   "by m (m - 1)"),
        ((kxx.sum() - np.trace(kxx)) / 36 + (kyy.sum() - np.trace(kyy)) / 25 - 2 * kxy.mean(),
         "with the diagonal left out there are m (m - 1) pairs, not m^2"),
    ], hint="MMD^2_u = sum_{i != j} k(x_i, x_j) / (m (m-1)) + sum_{i != j} k(y_i, y_j) / (n (n-1)) - 2 mean k(x_i, y_j)")


@pytest.mark.ex13_2(part="the unbiased MMD^2", points=2)
def test_mmd2_unbiased_is_zero_on_average_for_one_distribution():
    vals = [mmd2_unbiased(RNG.standard_normal((40, 4)), RNG.standard_normal((40, 4))) for _ in range(200)]
    expect_true("ex13_2", abs(np.mean(vals)) < 3 * np.std(vals) / np.sqrt(200),
                f"the mean of MMD^2_u over 200 pairs of samples of one distribution is {np.mean(vals):.3g} (spread "
                f"{np.std(vals) / np.sqrt(200):.2g}): an unbiased estimate averages to 0. Did you keep the diagonal?")


# ---- 13.3 lab: the FD floor ----------------------------------------------------------------------------------
def _curve():
    features = np.random.default_rng(1).standard_normal((800, 16)) @ np.random.default_rng(2).standard_normal((16, 16))
    return fd_floor_curve(features, sizes=(50, 100, 200, 400), repeats=5, rng=0)


@pytest.mark.ex13_3(part="the curve")
def test_lab_fd_floor_is_positive_and_falls_with_n():
    curve = _curve()
    expect_true("ex13_3", np.shape(curve) == (4,), f"the curve has shape {np.shape(curve)}; expected one value per size")
    expect_true("ex13_3", bool(np.all(curve > 0) and np.all(np.diff(curve) < 0)),
                f"the FD floor at n = 50, 100, 200, 400 is {np.round(curve, 2)}: it should be positive and fall with n")


@pytest.mark.ex13_3(part="the rate")
def test_lab_fd_floor_falls_like_one_over_n():
    slope = np.polyfit(np.log([50, 100, 200, 400]), np.log(_curve()), 1)[0]
    expect_true("ex13_3", -1.3 < slope < -0.7, f"log FD against log n has slope {slope:.3g}; expected about -1 (the "
                "floor falls like 1/n). Are the two subsets disjoint and both of size n?")
