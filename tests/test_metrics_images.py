"""Specification of tinydiff.metrics.images: known answers for FD, KID, class accuracy and the memorisation check."""

import numpy as np
import pytest
from scipy.linalg import sqrtm

from tinydiff.metrics.images import (
    class_accuracy,
    frechet_distance,
    frechet_distance_from_stats,
    gaussian_stats,
    kernel_distance,
    memorization,
    mmd2_unbiased,
    nearest_distances,
    polynomial_kernel,
    real_data_floor,
)


def with_exact_moments(n, mu, cov, seed):
    """(n, D) points whose sample mean is exactly mu and sample covariance (1/(n-1)) exactly cov."""
    z = np.random.default_rng(seed).standard_normal((n, len(mu)))
    z -= z.mean(axis=0)
    z = z @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False))).T      # sample covariance I
    return z @ np.linalg.cholesky(cov).T + mu


def random_cov(d, seed):
    a = np.random.default_rng(seed).standard_normal((d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


# ---- Frechet distance --------------------------------------------------------------------------------------------
def test_fd_of_identical_features_is_zero():
    f = np.random.default_rng(0).standard_normal((500, 16))
    assert abs(frechet_distance(f, f)) < 1e-9


def test_fd_of_diagonal_gaussians_has_the_closed_form():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    v1, v2 = np.array([1.0, 4.0, 0.25]), np.array([4.0, 1.0, 0.25])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2)   # 5 + 1 + 1 + 0
    assert frechet_distance_from_stats(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(expected, rel=1e-12)


def test_fd_of_full_covariances_matches_the_sqrtm_formula():
    mu1, mu2 = np.zeros(6), np.full(6, 0.5)
    c1, c2 = random_cov(6, 1), random_cov(6, 2)
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(c1 + c2 - 2 * np.real(sqrtm(c1 @ c2)))
    assert frechet_distance_from_stats(mu1, c1, mu2, c2) == pytest.approx(expected, rel=1e-9)


def test_fd_from_features_uses_their_sample_mean_and_covariance():
    mu1, mu2, c1, c2 = np.zeros(4), np.ones(4), random_cov(4, 3), random_cov(4, 4)
    a, b = with_exact_moments(300, mu1, c1, seed=5), with_exact_moments(200, mu2, c2, seed=6)
    assert frechet_distance(a, b) == pytest.approx(frechet_distance_from_stats(mu1, c1, mu2, c2), rel=1e-9)


def test_gaussian_stats_rejects_a_batch_of_images():
    with pytest.raises(ValueError, match="classifier.embed"):
        gaussian_stats(np.zeros((10, 1, 28, 28)))


# ---- KID -----------------------------------------------------------------------------------------------------------
def test_polynomial_kernel_is_the_cubic_of_the_scaled_dot_product():
    a, b = np.array([[1.0, 2.0]]), np.array([[3.0, -1.0]])
    assert polynomial_kernel(a, b)[0, 0] == pytest.approx(((1 * 3 - 2 * 1) / 2 + 1) ** 3)


def test_mmd2_unbiased_matches_the_double_sum():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((5, 3)), rng.standard_normal((4, 3)) + 1
    k = lambda a, b: (a @ b / 3 + 1) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(5) for j in range(5) if i != j) / 20
    yy = sum(k(y[i], y[j]) for i in range(4) for j in range(4) if i != j) / 12
    xy = sum(k(x[i], y[j]) for i in range(5) for j in range(4)) / 20
    assert mmd2_unbiased(x, y) == pytest.approx(xx + yy - 2 * xy, rel=1e-12)


def test_kid_is_near_zero_for_the_same_distribution_and_large_for_a_shifted_one():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((600, 8)), rng.standard_normal((600, 8))
    same, same_std = kernel_distance(a, b, subset_size=200, n_subsets=20, rng=0)
    shifted, _ = kernel_distance(a, b + 0.5, subset_size=200, n_subsets=20, rng=0)
    assert abs(same) < 2 * same_std
    assert shifted > 20 * same_std


# ---- class accuracy ------------------------------------------------------------------------------------------------
def test_class_accuracy_counts_per_requested_class():
    labels = np.array([0, 0, 1, 1, 1, 2])
    predicted = np.array([0, 1, 1, 1, 0, 2])
    overall, per_class = class_accuracy(predicted, labels, num_classes=4)
    assert overall == pytest.approx(4 / 6)
    np.testing.assert_allclose(per_class[:3], [0.5, 2 / 3, 1.0])
    assert np.isnan(per_class[3])


# ---- memorisation ---------------------------------------------------------------------------------------------------
def blobs(n, seed):
    """Fake 'images': (n, 1, 4, 4) points of one distribution."""
    return np.random.default_rng(seed).random((n, 1, 4, 4)).astype(np.float32)


def test_nearest_distance_of_a_copy_is_zero():
    train = blobs(300, 0)
    d = nearest_distances(train[[3, 7]], train)
    np.testing.assert_allclose(d, 0.0, atol=1e-3)


def test_nearest_distance_matches_brute_force():
    q, r = blobs(7, 1), blobs(50, 2)
    brute = np.sqrt(((q.reshape(7, 1, -1) - r.reshape(1, 50, -1)) ** 2).sum(-1)).min(1)
    np.testing.assert_allclose(nearest_distances(q, r, block=3), brute, rtol=1e-4)


def test_memorization_flags_exact_copies_of_training_images():
    train, test = blobs(400, 0), blobs(200, 1)
    report = memorization(train[:50], train, test)
    assert report["samples_copies"] == 1.0 and report["samples_below"] == 1.0
    assert report["test_copies"] < 0.05


def test_memorization_of_fresh_samples_matches_the_test_images():
    train, test, fresh = blobs(400, 0), blobs(400, 1), blobs(400, 2)
    report = memorization(fresh, train, test)
    assert abs(report["samples_below"] - report["test_below"]) < 0.12
    assert report["samples_copies"] == 0.0


# ---- the floor ------------------------------------------------------------------------------------------------------
def test_floor_of_the_same_distribution_is_below_the_metric_of_a_shifted_one():
    rng = np.random.default_rng(3)
    train, test = rng.standard_normal((2000, 8)), rng.standard_normal((1000, 8))
    floor = real_data_floor(train, test, n=500, subset_size=200, n_subsets=10)
    assert 0 < floor["fd"] < 0.2 * frechet_distance(train[:500] + 0.5, test)
    assert floor["kid"][0] < kernel_distance(train[:500] + 0.5, test, 200, 10)[0] / 10
