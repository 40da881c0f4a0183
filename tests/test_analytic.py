"""The exact Gaussian-mixture denoiser (tinydiff.analytic): closed forms checked against independent computations."""

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from tinydiff.analytic import GaussianMixture, GaussianMixtureDenoiser
from tinydiff.diffusion import convert_prediction, q_sample
from tinydiff.schedules import NoiseSchedule

SCHEDULE = NoiseSchedule.linear(T=100)
MIX = GaussianMixture([0.3, 0.7], [[-1.0, 0.5], [1.0, -0.2]], [[[0.3, 0.1], [0.1, 0.2]], [[0.1, 0.0], [0.0, 0.4]]])


def test_log_prob_is_the_weighted_sum_of_gaussian_densities():
    x = np.random.default_rng(0).standard_normal((5, 2))
    expected = np.log(sum(w * multivariate_normal(m, c).pdf(x) for w, m, c in zip(MIX.weights, MIX.means, MIX.covs)))
    np.testing.assert_allclose(MIX.log_prob(x), expected, rtol=1e-12)


def test_samples_have_the_mixture_mean_and_covariance():
    x, k = MIX.sample(200_000, rng=0, return_labels=True)
    mean = MIX.weights @ MIX.means
    cov = sum(w * (c + np.outer(m - mean, m - mean)) for w, m, c in zip(MIX.weights, MIX.means, MIX.covs))
    np.testing.assert_allclose(x.mean(0), mean, atol=0.01)   # standard error ~ 0.002
    np.testing.assert_allclose(np.cov(x.T), cov, atol=0.01)
    assert abs(np.mean(k == 1) - 0.7) < 0.005


def test_marginal_is_the_law_of_q_sample():
    rng = np.random.default_rng(1)
    x0 = MIX.sample(200_000, rng)
    t = 40
    xt = q_sample(SCHEDULE, x0, np.full(len(x0), t), rng.standard_normal(x0.shape))
    marg = MIX.marginal(SCHEDULE.alphas_cumprod[t])
    np.testing.assert_allclose(xt.mean(0), marg.weights @ marg.means, atol=0.01)
    # a log-likelihood check: the average log density of q_sample's points under the marginal is its negative entropy
    assert abs(marg.log_prob(xt).mean() - marg.log_prob(marg.sample(200_000, rng)).mean()) < 0.01


def test_single_gaussian_posterior_mean_is_gaussian_conditioning():
    mu, S = np.array([0.5, -1.0]), np.array([[0.5, 0.2], [0.2, 0.3]])
    model = GaussianMixtureDenoiser(GaussianMixture([1.0], [mu], [S]), SCHEDULE, "sample")
    xt, t = np.random.default_rng(2).standard_normal((4, 2)), np.array([0, 10, 50, 99])
    for b in range(4):
        ab = SCHEDULE.alphas_cumprod[t[b]]
        C = ab * S + (1 - ab) * np.eye(2)
        expected = mu + np.sqrt(ab) * S @ np.linalg.solve(C, xt[b] - np.sqrt(ab) * mu)
        np.testing.assert_allclose(model(xt, t)[b], expected, rtol=1e-12)


def test_score_is_the_gradient_of_the_marginal_log_density():
    model = GaussianMixtureDenoiser(MIX, SCHEDULE)
    x, t, h = np.random.default_rng(3).standard_normal((3, 2)), 30, 1e-6
    marg = MIX.marginal(SCHEDULE.alphas_cumprod[t])
    fd = np.stack([(marg.log_prob(x + h * e) - marg.log_prob(x - h * e)) / (2 * h) for e in np.eye(2)], axis=1)
    np.testing.assert_allclose(model.score(x, np.full(3, t)), fd, rtol=1e-6)


@pytest.mark.parametrize("prediction_type", ["sample", "v_prediction"])
def test_prediction_types_are_conversions_of_epsilon(prediction_type):
    x, t = np.random.default_rng(4).standard_normal((6, 2)), np.array([0, 5, 20, 50, 80, 99])
    eps = GaussianMixtureDenoiser(MIX, SCHEDULE, "epsilon")(x, t)
    out = GaussianMixtureDenoiser(MIX, SCHEDULE, prediction_type)(x, t)
    np.testing.assert_allclose(out, convert_prediction(SCHEDULE, x, t, eps, "epsilon", prediction_type), atol=1e-10)


def test_score_is_minus_eps_over_sqrt_one_minus_alpha_bar():
    model = GaussianMixtureDenoiser(MIX, SCHEDULE)
    x, t = np.random.default_rng(5).standard_normal((4, 2)), np.array([1, 2, 60, 99])
    np.testing.assert_allclose(model.score(x, t), convert_prediction(SCHEDULE, x, t, model(x, t), "epsilon", "score"))


def test_exact_eps_has_lower_loss_than_any_rescaling():
    rng = np.random.default_rng(6)
    x0, t = MIX.sample(20_000, rng), np.full(20_000, 30)
    eps = rng.standard_normal(x0.shape)
    pred = GaussianMixtureDenoiser(MIX, SCHEDULE)(q_sample(SCHEDULE, x0, t, eps), t)
    losses = {c: np.mean((c * pred - eps) ** 2) for c in (0.95, 1.0, 1.05)}
    assert losses[1.0] < losses[0.95] and losses[1.0] < losses[1.05]


def test_label_conditions_on_one_component_and_null_label_on_none():
    model = GaussianMixtureDenoiser(MIX, SCHEDULE, "sample")
    x, t = np.random.default_rng(7).standard_normal((2, 2)), np.array([50, 50])
    only = GaussianMixtureDenoiser(GaussianMixture([1.0], MIX.means[1:], MIX.covs[1:]), SCHEDULE, "sample")
    np.testing.assert_allclose(model(x, t, np.array([1, 1])), only(x, t), rtol=1e-12)
    np.testing.assert_allclose(model(x, t, np.array([model.null_label] * 2)), model(x, t), rtol=1e-12)


def test_eps_divergence_matches_finite_differences():
    model = GaussianMixtureDenoiser(MIX, SCHEDULE)
    x, ab, h = np.random.default_rng(8).standard_normal((5, 2)), 0.3, 1e-6
    fd = sum((model.eps_at(x + h * e, ab) - model.eps_at(x - h * e, ab))[:, i] / (2 * h) for i, e in enumerate(np.eye(2)))
    np.testing.assert_allclose(model.eps_divergence_at(x, ab), fd, rtol=1e-6)


def test_predictions_stay_finite_at_both_ends_of_the_chain():
    ztsnr = NoiseSchedule.linear(T=100).rescale_zero_terminal_snr()
    model = GaussianMixtureDenoiser(MIX, ztsnr, "v_prediction")
    x = 1e3 * np.random.default_rng(9).standard_normal((4, 2))  # far out: responsibilities must not overflow
    assert np.all(np.isfinite(model(x, np.array([0, 0, 99, 99]))))


def test_works_for_image_shaped_inputs():
    D = 2 * 3 * 3
    mix = GaussianMixture([0.5, 0.5], np.stack([np.ones(D), -np.ones(D)]), np.stack([0.1 * np.eye(D)] * 2))
    x = np.random.default_rng(10).standard_normal((4, 2, 3, 3))
    out = GaussianMixtureDenoiser(mix, SCHEDULE)(x, np.full(4, 10))
    assert out.shape == (4, 2, 3, 3)
    np.testing.assert_allclose(out.reshape(4, D), GaussianMixtureDenoiser(mix, SCHEDULE)(x.reshape(4, D), np.full(4, 10)))


@pytest.mark.parametrize("weights, means, covs, match", [
    ([0.5, 0.6], [[0.0], [1.0]], [[[1.0]], [[1.0]]], "sum to 1"),
    ([1.0], [[0.0, 0.0]], [[[1.0]]], "shape"),
    ([1.0], [[0.0, 0.0]], [[[1.0, 0.5], [0.0, 1.0]]], "symmetric"),
    ([1.0], [[0.0, 0.0]], [[[1.0, 2.0], [2.0, 1.0]]], "positive semi-definite"),
])
def test_bad_mixture_parameters_are_rejected(weights, means, covs, match):
    with pytest.raises(ValueError, match=match):
        GaussianMixture(weights, means, covs)


def test_wrong_dimension_input_is_rejected():
    with pytest.raises(ValueError, match=r"\(B, 2\)"):
        GaussianMixtureDenoiser(MIX, SCHEDULE)(np.zeros((3, 5)), np.zeros(3, dtype=np.int64))


def test_logsumexp_and_softmax_agree_with_scipy_also_with_minus_infinity_entries():
    from scipy.special import logsumexp as lse_ref, softmax as softmax_ref

    from tinydiff.analytic import logsumexp, softmax

    a = np.random.default_rng(0).standard_normal((5, 4)) * 300
    a[1, 2] = -np.inf
    np.testing.assert_allclose(logsumexp(a, axis=1), lse_ref(a, axis=1), rtol=1e-15)
    np.testing.assert_allclose(softmax(a, axis=1), softmax_ref(a, axis=1), rtol=1e-14, atol=1e-300)
    assert softmax(a, axis=1)[1, 2] == 0.0


def test_the_toy_mixtures_are_analytic_gaussian_mixtures():
    from tinydiff.data import toy2d

    assert toy2d.GaussianMixture is GaussianMixture
    assert isinstance(toy2d.gaussian_mixture_params("8gaussians"), GaussianMixture)
