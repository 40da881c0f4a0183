"""The equations chapter 13 states that tests/test_metrics_images.py does not already check: special cases of the
Frechet distance, its small-sample bias (eq. 2 and the 1/n law) and the unbiasedness of KID's MMD^2_u."""

import numpy as np
import pytest

from tinydiff.metrics.images import frechet_distance, frechet_distance_from_stats, mmd2_unbiased, polynomial_kernel


def random_cov(d, rng):
    a = rng.standard_normal((d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


# ---- eq. (1), special cases -------------------------------------------------------------------------------------
def test_fd_with_equal_covariances_is_the_squared_distance_of_the_means():
    rng = np.random.default_rng(0)
    S, mu_1, mu_2 = random_cov(5, rng), rng.standard_normal(5), rng.standard_normal(5)
    assert frechet_distance_from_stats(mu_1, S, mu_2, S) == pytest.approx(np.sum((mu_1 - mu_2) ** 2), rel=1e-9)


def test_fd_in_one_dimension_is_the_squared_differences_of_means_and_stds():
    (m_1, s_1), (m_2, s_2) = (0.5, 2.0), (-1.0, 0.5)
    expected = (m_1 - m_2) ** 2 + (s_1 - s_2) ** 2
    assert frechet_distance_from_stats(m_1, s_1 ** 2, m_2, s_2 ** 2) == pytest.approx(expected, rel=1e-12)


# ---- eq. (2) and the 1/n bias ------------------------------------------------------------------------------------
def test_squared_distance_of_two_sample_means_averages_two_trace_s_over_n():
    rng = np.random.default_rng(1)
    d, n, repeats = 3, 20, 4000
    S = random_cov(d, rng)
    L = np.linalg.cholesky(S)
    a = rng.standard_normal((repeats, n, d)) @ L.T                               # (R, n, d) rows with covariance S
    b = rng.standard_normal((repeats, n, d)) @ L.T
    measured = np.mean(np.sum((a.mean(axis=1) - b.mean(axis=1)) ** 2, axis=1))
    assert measured == pytest.approx(2 * np.trace(S) / n, rel=0.1)             # standard error ~2 %


def mean_fd_of_one_gaussian(n, seeds=40, d=4):
    """FD between two independent samples of n points of N(0, I_d), averaged over seeds (true distance 0)."""
    values = []
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        values.append(frechet_distance(rng.standard_normal((n, d)), rng.standard_normal((n, d))))
    return np.mean(values)


def test_fd_of_one_distribution_is_positive_and_shrinks_like_one_over_n():
    fd_100, fd_400 = mean_fd_of_one_gaussian(100), mean_fd_of_one_gaussian(400)
    assert fd_100 > 0 and fd_400 > 0
    assert 3.0 < fd_100 / fd_400 < 5.3                                          # 4 for an exact 1/n law


def test_fd_extrapolated_to_infinite_n_is_near_zero_for_one_distribution():
    ns = np.array([100, 200, 400, 800])
    fds = np.array([mean_fd_of_one_gaussian(n) for n in ns])
    slope, fd_inf = np.polyfit(1.0 / ns, fds, 1)                                # FD_n ~ fd_inf + slope / n
    assert slope > 0
    assert abs(fd_inf) < 0.1 * fds[0]


# ---- eq. (4): MMD^2_u is unbiased ------------------------------------------------------------------------------
def mmd2_values(estimator, m=5, d=3, repeats=3000):
    rng = np.random.default_rng(2)
    return np.array([estimator(rng.standard_normal((m, d)), rng.standard_normal((m, d))) for _ in range(repeats)])


def test_mmd2_unbiased_averages_to_zero_for_one_distribution_even_at_five_points():
    values = mmd2_values(mmd2_unbiased)
    standard_error = values.std() / np.sqrt(len(values))
    assert abs(values.mean()) < 4 * standard_error
    assert values.min() < 0                                                      # unbiased, so sometimes negative


def test_keeping_the_diagonal_terms_would_bias_mmd2_upwards():
    def mmd2_biased(x, y):                                                      # the V-statistic: all pairs, i = j too
        return polynomial_kernel(x, x).mean() + polynomial_kernel(y, y).mean() - 2 * polynomial_kernel(x, y).mean()

    values = mmd2_values(mmd2_biased)
    assert values.mean() > 4 * values.std() / np.sqrt(len(values))
