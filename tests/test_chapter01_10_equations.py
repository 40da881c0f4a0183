"""Equations chapters 1-10 state that the module tests do not already check (one section per chapter)."""

import numpy as np
import pytest

from tinydiff.analytic import GaussianMixture, GaussianMixtureDenoiser
from tinydiff.diffusion import q_sample
from tinydiff.schedules import NoiseSchedule


# ---- chapter 6: the floor of the simple loss for one Gaussian mode ----------------------------------------------
@pytest.mark.parametrize("t", [0, 20, 100, 400])
def test_one_mode_leaves_s2_over_s2_plus_sigma2_of_the_noise_unpredictable(t):
    """Var(eps | x_t) = s^2 / (s^2 + sigma_t^2) per coordinate, sigma_t^2 = (1 - ab_t) / ab_t, for x0 ~ N(mu, s^2 I)."""
    schedule, s = NoiseSchedule.cosine(1000), 0.07
    mode = GaussianMixture(np.ones(1), np.array([[0.5, -1.0]]), np.array([s**2 * np.eye(2)]))
    exact = GaussianMixtureDenoiser(mode, schedule)
    rng = np.random.default_rng(0)
    x0, eps = mode.sample(200_000, rng), rng.standard_normal((200_000, 2))
    tt = np.full(len(x0), t)
    measured = np.mean((exact(q_sample(schedule, x0, tt, eps), tt) - eps) ** 2)
    ab = schedule.alphas_cumprod[t]
    sigma2 = (1 - ab) / ab
    assert measured == pytest.approx(s**2 / (s**2 + sigma2), rel=0.01, abs=1e-4)


# ---- chapter 8: DPM-Solver's lambda is half the log-SNR --------------------------------------------------------
def test_dpm_solver_lambda_is_half_the_log_snr_and_minus_log_sigma():
    """lambda = log(alpha / sigma), alpha = sqrt(ab), sigma = sqrt(1 - ab) (Lu et al. 2022): log_snr = 2 lambda."""
    schedule = NoiseSchedule.cosine(1000)
    ab = schedule.alphas_cumprod[:-1]
    lam = np.log(np.sqrt(ab) / np.sqrt(1 - ab))
    np.testing.assert_allclose(2 * lam, schedule.log_snr[:-1], rtol=1e-12)
    np.testing.assert_allclose(np.exp(-lam), schedule.sigmas[:-1], rtol=1e-12)   # the ODE frame's sigma


# ---- chapter 9: how steep the score is near a mode ---------------------------------------------------------------
@pytest.mark.parametrize("t", [0, 20, 150])
def test_score_slope_at_a_mode_is_one_over_ab_s2_plus_1_minus_ab(t):
    """For one mode N(mu, s^2 I): grad log q_t(x) = -(x - sqrt(ab) mu) / (ab s^2 + 1 - ab), bounded by ~1 / s^2."""
    schedule, s = NoiseSchedule.cosine(1000), 0.1
    mode = GaussianMixture(np.ones(1), np.array([[2.0, 0.0]]), np.array([s**2 * np.eye(2)]))
    exact = GaussianMixtureDenoiser(mode, schedule)
    ab = schedule.alphas_cumprod[t]
    x = np.sqrt(ab) * np.array([[2.0, 0.0]]) + np.array([[0.03, -0.02]])
    expected = -(x - np.sqrt(ab) * np.array([[2.0, 0.0]])) / (ab * s**2 + 1 - ab)
    np.testing.assert_allclose(exact.score(x, np.array([t])), expected, rtol=1e-9)
    assert 1 / (ab * s**2 + 1 - ab) <= 1 / s**2 + 1e-9


# ---- chapter 3: how each target weighs the steps -----------------------------------------------------------------
def test_eps_error_is_snr_times_x0_error_and_v_error_is_snr_plus_one_times_it():
    """||eps - eps_hat||^2 = snr_t ||x0 - x0_hat||^2 and ||v - v_hat||^2 = (snr_t + 1) ||x0 - x0_hat||^2 (fixed x_t)."""
    from tinydiff.diffusion import convert_prediction

    schedule, rng = NoiseSchedule.linear(1000), np.random.default_rng(0)
    t = np.array([5, 300, 900])
    x0, eps = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    x_t = q_sample(schedule, x0, t, eps)
    eps_hat = eps + 0.1 * rng.standard_normal((3, 4))
    x0_err = ((convert_prediction(schedule, x_t, t, eps_hat, "epsilon", "sample") - x0) ** 2).sum(1)
    v_err = ((convert_prediction(schedule, x_t, t, eps_hat, "epsilon", "v_prediction")
              - convert_prediction(schedule, x_t, t, eps, "epsilon", "v_prediction")) ** 2).sum(1)
    np.testing.assert_allclose(((eps_hat - eps) ** 2).sum(1), schedule.snr[t] * x0_err, rtol=1e-9)
    np.testing.assert_allclose(v_err, (schedule.snr[t] + 1) * x0_err, rtol=1e-9)


# ---- chapter 8: the final-step shrinkage of one mode ------------------------------------------------------------
def test_posterior_mean_of_one_mode_has_std_s_sqrt_snr_s2_over_1_plus_snr_s2():
    """x_t ~ q_t exactly, then E[x0 | x_t]: its spread around the mode is s sqrt(snr s^2 / (1 + snr s^2))."""
    schedule, s, t = NoiseSchedule.cosine(1000), 0.1, 150
    mode = GaussianMixture(np.ones(1), np.array([[2.0, 0.0]]), np.array([s**2 * np.eye(2)]))
    ab = schedule.alphas_cumprod[t]
    x_t = mode.marginal(ab).sample(100_000, rng=np.random.default_rng(0))
    x0_hat = GaussianMixtureDenoiser(mode, schedule).posterior(x_t, ab)["x0"]
    snr = ab / (1 - ab)
    assert (x0_hat - [2.0, 0.0]).std(0) == pytest.approx([s * np.sqrt(snr * s**2 / (1 + snr * s**2))] * 2, rel=0.01)
