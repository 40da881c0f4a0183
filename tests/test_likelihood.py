"""Log-likelihood through the probability-flow ODE (tinydiff.likelihood), against analytic densities.

The ODE result is -log of the data density smoothed by N(0, sigma_min^2): for a mixture with covariances S_k that is
the mixture with covariances S_k + sigma_min^2 I, known exactly.
"""

import numpy as np
import pytest

from tinydiff.analytic import GaussianMixture, GaussianMixtureDenoiser
from tinydiff.likelihood import bits_per_dim, ode_nll
from tinydiff.schedules import NoiseSchedule

MIX = GaussianMixture([0.3, 0.7], [[-1.0, 0.5], [1.0, -0.2]], [[[0.3, 0.1], [0.1, 0.2]], [[0.1, 0.0], [0.0, 0.4]]])
GAUSS = GaussianMixture([1.0], [[0.5, -0.5, 1.0]], [np.diag([0.2, 1.0, 2.0])])


def smoothed(mix, sigma):
    """The mixture convolved with N(0, sigma^2 I)."""
    return GaussianMixture(mix.weights, mix.means, mix.covs + sigma**2 * np.eye(mix.D))


def exact_prior(mix, schedule):
    """log density of the true sigma-frame marginal at sigma_max (removes the prior-mismatch error)."""
    return smoothed(mix, schedule.sigmas[-1]).log_prob


@pytest.mark.parametrize("mix", [GAUSS, MIX], ids=["gaussian", "mixture"])
@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_exact_divergence_recovers_the_analytic_density(mix, name):
    s = NoiseSchedule.from_name(name, T=100)
    x = mix.sample(5, rng=0)
    res = ode_nll(GaussianMixtureDenoiser(mix, s), x, s, prior_logp=exact_prior(mix, s), rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(res.nll, -smoothed(mix, s.sigmas[0]).log_prob(x), atol=1e-5)


def test_default_gaussian_prior_costs_only_the_terminal_signal():
    # the N(0, (1 + sigma_max^2) I) prior ignores that alpha_bar_{T-1} = 2e-5 > 0: an error of ~1e-3 nats here
    s = NoiseSchedule.linear(T=100)
    x = MIX.sample(5, rng=1)
    res = ode_nll(GaussianMixtureDenoiser(MIX, s), x, s)
    np.testing.assert_allclose(res.nll, -smoothed(MIX, s.sigmas[0]).log_prob(x), atol=5e-3)


def test_a_plain_callable_is_interpolated_in_time_with_finite_difference_divergence():
    # a model(x_t, t) with integer t only: time-interpolated outputs and D Jacobian columns by central differences
    s = NoiseSchedule.linear(T=1000)
    model = GaussianMixtureDenoiser(MIX, s, "v_prediction")
    x = MIX.sample(4, rng=2)
    res = ode_nll(lambda x_t, t: model(x_t, t), x, s, prediction_type="v_prediction", rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(res.nll, -smoothed(MIX, s.sigmas[0]).log_prob(x), atol=0.01)


def test_hutchinson_estimate_is_unbiased():
    s = NoiseSchedule.cosine(T=100)
    model = GaussianMixtureDenoiser(MIX, s)
    x = np.repeat(MIX.sample(1, rng=3), 400, axis=0)  # one point, 400 independent probes
    est = ode_nll(model, x, s, divergence="hutchinson", rng=0, rtol=1e-5, atol=1e-5).nll
    exact = ode_nll(model, x[:1], s, rtol=1e-5, atol=1e-5).nll[0]
    assert est.std() > 0.05  # one probe is noisy ...
    assert abs(est.mean() - exact) < 4 * est.std() / np.sqrt(len(est))  # ... but right on average


def test_bits_per_dim_is_nats_over_d_log_2():
    s = NoiseSchedule.cosine(T=100)
    res = ode_nll(GaussianMixtureDenoiser(GAUSS, s), GAUSS.sample(3, rng=4), s)
    np.testing.assert_allclose(res.bits_per_dim, res.nll / (3 * np.log(2)))
    assert bits_per_dim(np.log(2) * 6, 3) == pytest.approx(2.0)


def test_unknown_divergence_is_rejected():
    s = NoiseSchedule.cosine(T=100)
    with pytest.raises(ValueError, match="'exact', 'hutchinson'"):
        ode_nll(GaussianMixtureDenoiser(GAUSS, s), GAUSS.sample(2, rng=0), s, divergence="skilling")
