"""Specification of tinydiff.metrics.points: two-sample distances, their closed forms, the floor table, toy metrics.

Closed-form checks use "quantile samples": x_i = Phi^-1((i + 1/2) / n), a deterministic sample whose empirical
measure is very close to N(0, 1), so the tolerances can be tight and are stated beside each check.
"""

import numpy as np
import pytest
from scipy.stats import energy_distance as scipy_energy_distance
from scipy.stats import norm

from tinydiff.data.toy2d import gaussian_mixture_params, make_dataset
from tinydiff.errors import TinydiffError
from tinydiff.metrics.points import (
    PointCloudError,
    energy_distance,
    format_metric_table,
    gaussian_w2_squared,
    in_support_fraction,
    metrics_with_floor,
    mmd2,
    mmd_test,
    modes_covered,
    rbf_mixture_kernel,
    sliced_w2_squared,
    w2_squared,
)


def normal(n, d=2, seed=0, shift=0.0):
    return np.random.default_rng(seed).standard_normal((n, d)) + shift


def quantile_sample(n):
    """(n, 1): the n quantiles of N(0, 1) at levels (i + 1/2) / n."""
    return norm.ppf((np.arange(n) + 0.5) / n)[:, None]


def quantile_grid(k):
    """(k*k, 2): the product of two k-point quantile samples, a quasi-sample of N(0, I_2)."""
    q = quantile_sample(k)[:, 0]
    return np.stack(np.meshgrid(q, q), axis=-1).reshape(-1, 2)


# ---- MMD ------------------------------------------------------------------------------------------------------------


def test_mmd_of_two_samples_of_one_distribution_is_near_zero_and_not_significant():
    value, p = mmd_test(normal(500, seed=0), normal(500, seed=1), n_permutations=200, rng=0)
    assert abs(value) < 2e-3 and p > 0.05


def test_mmd_of_shifted_distributions_is_large_and_significant():
    value, p = mmd_test(normal(500, seed=0), normal(500, seed=1, shift=0.5), n_permutations=200, rng=0)
    assert value > 0.01 and p < 0.01


def test_mmd_is_unbiased_over_repetitions():
    # 100 pairs of same-distribution samples (n = 100): the mean must be 0 within 3 standard errors (~9e-4).
    # The biased (V-statistic) estimate would sit near +0.01 here.
    values = [mmd2(normal(100, seed=s), normal(100, seed=1000 + s)) for s in range(100)]
    standard_error = np.std(values) / np.sqrt(len(values))
    assert abs(np.mean(values)) < 3 * standard_error < 2e-3


def test_mmd_test_statistic_equals_mmd2():
    x, y = normal(80, seed=0), normal(60, seed=1, shift=0.2)
    assert np.isclose(mmd_test(x, y, n_permutations=5, rng=0)[0], mmd2(x, y), rtol=1e-10)


def test_mmd_p_value_equals_the_brute_force_permutation_p_value():
    # The fast test (one kernel matrix, all splits by matrix products) must count exactly what recomputing MMD^2 on
    # each permuted split counts, drawing the permutations from the same stream.
    x, y = normal(40, seed=0), normal(30, seed=1, shift=0.3)
    z, rng = np.concatenate([x, y]), np.random.default_rng(7)
    observed = mmd2(x, y)
    perms = [rng.permutation(70) for _ in range(50)]
    exceed = sum(mmd2(z[p[:40]], z[p[40:]]) >= observed for p in perms)
    assert mmd_test(x, y, n_permutations=50, rng=7)[1] == pytest.approx((1 + exceed) / 51)


def test_mmd_is_symmetric():
    x, y = normal(50, seed=0), normal(70, seed=1, shift=0.3)
    assert np.isclose(mmd2(x, y), mmd2(y, x), rtol=1e-12)


def test_rbf_mixture_kernel_is_one_on_the_diagonal_and_decays_with_distance():
    a = np.array([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0]])
    k = rbf_mixture_kernel(a, a, sigmas=[0.5, 1.0])
    assert np.allclose(np.diag(k), 1) and k[0, 1] > k[0, 2] > 0
    assert np.isclose(k[0, 1], (np.exp(-1 / 0.5) + np.exp(-1 / 2)) / 2)


def test_mmd_test_builds_the_pooled_kernel_once_whatever_the_permutations(monkeypatch):
    """The fast form: one (N, N) kernel for the observed split and every permutation (no wall-clock assertion: the
    cost is the kernel, so counting how often it is built is the check that does not depend on the machine's load)."""
    import tinydiff.metrics.points as points

    calls = []
    real = points._pooled_kernel
    monkeypatch.setattr(points, "_pooled_kernel", lambda *a, **k: calls.append(1) or real(*a, **k))
    mmd_test(normal(300, seed=0), normal(300, seed=1), n_permutations=600, rng=0)
    assert len(calls) == 1


# ---- energy distance ------------------------------------------------------------------------------------------------


def test_energy_distance_matches_the_closed_form_for_two_unit_gaussians():
    # N(0,1) vs N(mu,1): D^2 = 2 E|N(mu, 2)| - 2 E|X - X'|, E|X - X'| = 2/sqrt(pi),
    # E|N(mu, s^2)| = s sqrt(2/pi) exp(-mu^2 / 2s^2) + mu (1 - 2 Phi(-mu/s)). Quantile samples, n = 500: |err| < 1e-4.
    mu, s = 1.0, np.sqrt(2.0)
    e_xy = s * np.sqrt(2 / np.pi) * np.exp(-(mu**2) / (2 * s * s)) + mu * (1 - 2 * norm.cdf(-mu / s))
    exact = 2 * e_xy - 2 * (2 / np.sqrt(np.pi))
    q = quantile_sample(500)
    assert energy_distance(q, q + mu, unbiased=False) == pytest.approx(exact, abs=1e-4)


def test_plug_in_energy_distance_equals_scipys_squared_in_1d():
    x, y = normal(300, d=1, seed=0), normal(200, d=1, seed=1, shift=0.4)
    assert energy_distance(x, y, unbiased=False) == pytest.approx(scipy_energy_distance(x[:, 0], y[:, 0]) ** 2)


def test_energy_distance_is_unbiased_and_symmetric():
    values = [energy_distance(normal(60, seed=s), normal(60, seed=500 + s)) for s in range(100)]
    assert abs(np.mean(values)) < 3 * np.std(values) / np.sqrt(len(values))
    x, y = normal(50, seed=0), normal(40, seed=1, shift=1.0)
    assert np.isclose(energy_distance(x, y), energy_distance(y, x), rtol=1e-12)


# ---- Wasserstein-2 --------------------------------------------------------------------------------------------------


def test_gaussian_w2_closed_form_for_diagonal_covariances():
    # |mu1 - mu2|^2 + sum_i (s1_i - s2_i)^2 = 9 + 1 + 1
    assert gaussian_w2_squared([0, 0], np.diag([1.0, 4.0]), [3, 0], np.diag([4.0, 1.0])) == pytest.approx(11.0)


def test_gaussian_w2_is_symmetric_for_non_commuting_covariances():
    c1, c2 = np.array([[2.0, 0.9], [0.9, 1.0]]), np.array([[1.0, -0.3], [-0.3, 0.5]])
    assert gaussian_w2_squared([0, 1], c1, [2, 0], c2) == pytest.approx(gaussian_w2_squared([2, 0], c2, [0, 1], c1))


def test_exact_w2_of_an_affine_map_of_a_gaussian_matches_the_closed_form():
    # y = A x + mu with A symmetric positive definite is an optimal transport map (gradient of a convex function),
    # so the matching must cost exactly mean|A x + mu - x|^2; with a 20 x 20 quantile grid that is within 3% of the
    # Gaussian closed form |mu|^2 + ||A - I||_F^2 = 6.5 (the grid's second moment is 1.4% below 1).
    g = quantile_grid(20)
    a, mu = np.array([[2.0, 0.5], [0.5, 1.0]]), np.array([1.0, -2.0])
    y = g @ a + mu
    value = w2_squared(g, y)
    assert value == pytest.approx(np.mean(np.sum((y - g) ** 2, axis=1)), rel=1e-12)
    assert value == pytest.approx(gaussian_w2_squared([0, 0], np.eye(2), mu, a @ a), rel=0.03)


def test_exact_w2_in_1d_is_the_sorted_matching():
    x, y = normal(200, d=1, seed=0), normal(200, d=1, seed=1, shift=0.5) * 2
    assert w2_squared(x, y) == pytest.approx(np.mean((np.sort(x[:, 0]) - np.sort(y[:, 0])) ** 2))


def test_w2_is_symmetric_and_zero_for_a_permuted_copy():
    x, y = normal(100, seed=0), normal(100, seed=1, shift=1.0)
    assert w2_squared(x, y) == pytest.approx(w2_squared(y, x))
    assert w2_squared(x, x[::-1]) == 0.0


def test_sliced_w2_of_shifted_unit_gaussians_is_shift_squared_over_dimension():
    # E_theta[(theta . mu)^2] = |mu|^2 / D = 4.5; 4096 directions give a Monte Carlo error of ~0.8% (tolerance 3%).
    g = quantile_grid(20)
    assert sliced_w2_squared(g, g + [3.0, 0.0], n_projections=4096, rng=0) == pytest.approx(4.5, rel=0.03)


def test_sliced_w2_with_unequal_sizes_uses_the_exact_1d_quantile_coupling():
    # x = {0, 1}, y = {0, 0, 3}: the quantile functions differ by 1 on (1/2, 2/3] and by 2 on (2/3, 1],
    # so W2^2 = 1 * 1/6 + 4 * 1/3 = 1.5. In 1D every direction is +-1, so sliced W2 is W2.
    x, y = np.array([[0.0], [1.0]]), np.array([[0.0], [0.0], [3.0]])
    assert sliced_w2_squared(x, y) == pytest.approx(1.5)
    assert w2_squared(np.repeat(x, 3, axis=0), np.repeat(y, 2, axis=0)) == pytest.approx(1.5)


def test_sliced_w2_is_seeded_and_symmetric():
    x, y = normal(100, seed=0), normal(120, seed=1, shift=0.5)
    assert sliced_w2_squared(x, y, rng=3) == sliced_w2_squared(x, y, rng=3)
    assert sliced_w2_squared(x, y, rng=3) == pytest.approx(sliced_w2_squared(y, x, rng=3))


# ---- bad input --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("metric", [mmd2, energy_distance, sliced_w2_squared, w2_squared])
def test_one_dimensional_arrays_are_refused_with_a_reshape_hint(metric):
    with pytest.raises(PointCloudError, match=r"reshape\(-1, 1\)"):
        metric(np.zeros(10), np.zeros(10))


@pytest.mark.parametrize("metric", [mmd2, energy_distance, sliced_w2_squared, w2_squared])
def test_different_dimensions_are_refused(metric):
    with pytest.raises(PointCloudError, match="same dimension"):
        metric(normal(10, d=2), normal(10, d=3))


def test_non_finite_values_are_refused():
    x = normal(10)
    x[3, 1] = np.nan
    with pytest.raises(PointCloudError, match="NaN"):
        mmd2(x, normal(10))


def test_mmd_needs_two_points_per_sample():
    with pytest.raises(PointCloudError, match="at least 2"):
        mmd2(normal(1), normal(10))


def test_exact_w2_refuses_unequal_sizes_and_too_many_points():
    with pytest.raises(PointCloudError, match="equal sample sizes"):
        w2_squared(normal(10), normal(11))
    with pytest.raises(PointCloudError, match="max_points=5"):
        w2_squared(normal(10), normal(10), max_points=5)


def test_metric_errors_are_tinydiff_errors_and_value_errors():
    with pytest.raises(TinydiffError):
        mmd2(np.zeros((3, 2, 1)), normal(3))
    with pytest.raises(ValueError):
        mmd2(np.zeros((3, 2, 1)), normal(3))


# ---- the floor table ------------------------------------------------------------------------------------------------


def test_metrics_with_floor_reports_model_and_floor_at_one_size():
    ref, ref2 = make_dataset("8gaussians", 400, rng=1), make_dataset("8gaussians", 300, rng=2)
    bad = make_dataset("8gaussians", 500, rng=0) * 1.3
    table = metrics_with_floor(bad, ref, ref2, rng=0, n_permutations=50)
    assert set(table) == {"mmd2", "energy_distance", "sliced_w2_squared", "w2_squared", "mmd_p_value"}
    for name in ("mmd2", "energy_distance", "sliced_w2_squared", "w2_squared"):
        # the floor is not 0 (W2's is 0.16 here: finite-sample bias), which is why it is reported
        assert table[name]["n"] == 300 and table[name]["model"] > 3 * abs(table[name]["floor"])
    assert table["mmd_p_value"]["model"] < 0.05 < table["mmd_p_value"]["floor"]
    text = format_metric_table(table)
    assert text.splitlines()[0].split() == ["metric", "model", "floor", "n"] and "w2_squared" in text


def test_metrics_with_floor_caps_exact_w2_points():
    x = [make_dataset("moons", 200, rng=s) for s in range(3)]
    assert metrics_with_floor(*x, n_permutations=0, w2_points=50)["w2_squared"]["n"] == 50


# ---- toy-set metrics ------------------------------------------------------------------------------------------------


def test_checkerboard_data_is_all_in_support_and_uniform_noise_half():
    assert in_support_fraction(make_dataset("checkerboard", 1000, rng=0)) == 1.0
    uniform = np.random.default_rng(0).uniform(-2, 2, size=(20_000, 2))
    assert in_support_fraction(uniform) == pytest.approx(0.5, abs=0.01)


def test_in_support_fraction_accepts_a_function_and_refuses_unknown_names():
    assert in_support_fraction(normal(10), support=lambda p: p[:, 0] > 100) == 0.0
    with pytest.raises(PointCloudError, match="checkerboard"):
        in_support_fraction(normal(10), support="moons")


def test_eight_gaussians_data_covers_all_modes_with_almost_all_samples_near_one():
    coverage = modes_covered(make_dataset("8gaussians", 2000, rng=0))
    assert coverage.covered == 8 and coverage.n_modes == 8
    assert coverage.in_mode_fraction == pytest.approx(1 - np.exp(-4.5), abs=0.01)  # P(chi2_2 <= 9) = 0.989


def test_samples_from_three_modes_cover_three():
    x, y = make_dataset("8gaussians", 4000, rng=0, return_labels=True)
    coverage = modes_covered(x[y < 3])
    assert coverage.covered == 3 and np.all(coverage.fractions[3:] == 0)


def test_a_mode_with_too_few_samples_is_not_covered():
    means = gaussian_mixture_params("8gaussians").means
    x = np.concatenate([np.repeat(means[:7], 100, axis=0), means[7:8]])  # 1 of 701 samples on mode 7 (< 0.25/8)
    assert modes_covered(x).covered == 7
    assert modes_covered(x, min_fraction=0.001).covered == 8
