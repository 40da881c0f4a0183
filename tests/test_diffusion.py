"""The forward chain, the posterior, prediction-type conversions and the loss (tinydiff.diffusion)."""

import numpy as np
import pytest

from tinydiff.diffusion import (
    convert_prediction, diffusion_loss, elbo_weights, gaussian_kl, min_snr_weights, predict_x0_and_eps, q_chain, q_posterior, q_sample,
    q_step, sample_timesteps, training_target,
)
from tinydiff.nn.gradcheck import central_differences
from tinydiff.schedules import NoiseSchedule

SCHEDULES = {
    "linear": NoiseSchedule.linear(T=100),
    "cosine": NoiseSchedule.cosine(T=100),
    "linear+ztsnr": NoiseSchedule.linear(T=100).rescale_zero_terminal_snr(),
}


def randn(rng, *shape):
    return rng.standard_normal(shape)


# ---- q(x_t | x_0) ------------------------------------------------------------------------------------------------
def test_q_sample_is_the_closed_form():
    s = NoiseSchedule.linear(T=100)
    rng = np.random.default_rng(0)
    x0, eps = randn(rng, 3, 2), randn(rng, 3, 2)
    t = np.array([0, 50, 99])
    ab = s.alphas_cumprod[t][:, None]
    np.testing.assert_allclose(q_sample(s, x0, t, eps), np.sqrt(ab) * x0 + np.sqrt(1 - ab) * eps)


def test_q_sample_broadcasts_over_image_axes_and_keeps_float32():
    s = NoiseSchedule.cosine(T=10)
    rng = np.random.default_rng(0)
    x0 = randn(rng, 4, 1, 5, 5).astype(np.float32)
    xt = q_sample(s, x0, np.array([0, 3, 6, 9]), np.zeros_like(x0))
    assert xt.dtype == np.float32 and xt.shape == x0.shape
    np.testing.assert_allclose(xt[2], np.sqrt(s.alphas_cumprod[6]) * x0[2], rtol=1e-6)


def test_closed_form_matches_iterating_the_markov_chain():
    """Statistical test: x0 fixed, 20,000 chains. The chain's x_t has mean sqrt(ab) x0 and variance 1 - ab.

    With n = 20,000 the standard error of a sample mean is <= 1/sqrt(n) = 0.007 and of a sample variance
    <= sqrt(2/n) = 0.01; we allow 5 standard errors.
    """
    s = NoiseSchedule.linear(T=50)
    rng = np.random.default_rng(1)
    n = 20_000
    x0 = np.tile([[1.5, -2.0]], (n, 1))
    traj = q_chain(s, x0, rng)
    assert traj.shape == (51, n, 2)
    for t in (0, 10, 49):
        xt = traj[t + 1]
        ab = s.alphas_cumprod[t]
        np.testing.assert_allclose(xt.mean(0), np.sqrt(ab) * x0[0], atol=5 / np.sqrt(n))
        np.testing.assert_allclose(xt.var(0), 1 - ab, atol=5 * np.sqrt(2 / n))
        # and against an independent draw from the closed form (two-sample: means agree)
        direct = q_sample(s, x0, np.full(n, t), randn(rng, n, 2))
        np.testing.assert_allclose(xt.mean(0), direct.mean(0), atol=5 * np.sqrt(2 / n))


@pytest.mark.ex1_2   # a debugging exercise's planted bug fails this test in a student copy
def test_q_step_is_one_markov_step():
    s = NoiseSchedule.linear(T=10)
    x, eps = np.ones((2, 3)), np.full((2, 3), 0.5)
    t = np.array([0, 9])
    expected = np.sqrt(1 - s.betas[t])[:, None] * x + np.sqrt(s.betas[t])[:, None] * eps
    np.testing.assert_allclose(q_step(s, x, t, eps), expected)


# ---- q(x_{t-1} | x_t, x_0) ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", SCHEDULES)
def test_posterior_equals_gaussian_conditioning(name):
    """Condition the joint Gaussian of (x_{t-1}, x_t) given x0 directly:

    x_{t-1} = a x0 + sqrt(1 - a^2) e1 with a = sqrt(ab_{t-1});  x_t = sqrt(alpha_t) x_{t-1} + sqrt(beta_t) e2.
    Cov(x_{t-1}, x_t) = sqrt(alpha_t) (1 - ab_{t-1}),  Var(x_t) = 1 - ab_t, so
    E[x_{t-1} | x_t] = a x0 + Cov / Var (x_t - sqrt(ab_t) x0) and Var[x_{t-1} | x_t] = (1 - ab_{t-1}) - Cov^2 / Var.
    """
    s = SCHEDULES[name]
    rng = np.random.default_rng(2)
    t = np.arange(1, s.T)
    x0, xt = randn(rng, t.size, 3), randn(rng, t.size, 3)
    ab, ab_prev, alpha = s.alphas_cumprod[t][:, None], s.alphas_cumprod_prev[t][:, None], s.alphas[t][:, None]
    cov = np.sqrt(alpha) * (1 - ab_prev)
    var = 1 - ab
    expected_mean = np.sqrt(ab_prev) * x0 + cov / var * (xt - np.sqrt(ab) * x0)
    expected_var = (1 - ab_prev) - cov**2 / var
    mean, variance = q_posterior(s, x0, xt, t)
    np.testing.assert_allclose(mean, expected_mean, atol=1e-12)
    np.testing.assert_allclose(variance, expected_var, atol=1e-12)


def test_posterior_variance_is_at_most_beta_t():
    s = NoiseSchedule.cosine(T=1000)
    t = np.arange(1000)
    _, var = q_posterior(s, np.zeros((1000, 1)), np.zeros((1000, 1)), t)
    assert np.all(var[:, 0] <= s.betas + 1e-15)


def test_posterior_at_t0_is_the_data_itself():
    s = NoiseSchedule.linear(T=100)
    x0, xt = np.array([[1.0, 2.0]]), np.array([[-3.0, 4.0]])
    mean, var = q_posterior(s, x0, xt, np.array([0]))
    np.testing.assert_allclose(mean, x0, atol=1e-12)
    assert var.shape == (1, 1) and var[0, 0] == 0.0


def test_posterior_variance_broadcasts_to_the_mean():
    s = NoiseSchedule.linear(T=100)
    x = np.zeros((2, 1, 4, 4), dtype=np.float32)
    mean, var = q_posterior(s, x, x, np.array([5, 7]))
    assert mean.shape == (2, 1, 4, 4) and var.shape == (2, 1, 1, 1)
    assert mean.dtype == np.float32
    assert np.broadcast_shapes(mean.shape, var.shape) == mean.shape


# ---- conversions ----------------------------------------------------------------------------------------------------
def _consistent_triple(s, t, rng, shape=(2,)):
    x0, eps = randn(rng, t.size, *shape), randn(rng, t.size, *shape)
    return x0, eps, q_sample(s, x0, t, eps)


@pytest.mark.parametrize("name", SCHEDULES)
@pytest.mark.parametrize("kind", ["epsilon", "sample", "v_prediction", "score"])
def test_conversions_round_trip_at_every_step(name, kind):
    """Every t, including t = T-1 of a zero-terminal-SNR schedule except where x0 must come from eps (impossible)."""
    s = SCHEDULES[name]
    rng = np.random.default_rng(3)
    for other in ("epsilon", "sample", "v_prediction", "score"):
        eps_to_x0 = {kind, other} & {"epsilon", "score"} and {kind, other} & {"sample", "v_prediction"}
        t = np.arange(s.T - 1) if s.zero_terminal_snr and eps_to_x0 else np.arange(s.T)
        x0, eps, xt = _consistent_triple(s, t, rng)
        truth = {
            "epsilon": eps,
            "sample": x0,
            "v_prediction": training_target(s, x0, t, eps, "v_prediction"),
            "score": -eps / np.sqrt(1 - s.alphas_cumprod[t])[:, None],
        }
        got = convert_prediction(s, xt, t, truth[kind], kind, other)
        np.testing.assert_allclose(got, truth[other], atol=1e-7, err_msg=f"{kind} -> {other}")
        back = convert_prediction(s, xt, t, got, other, kind)
        np.testing.assert_allclose(back, truth[kind], atol=1e-7, err_msg=f"{kind} -> {other} -> {kind}")


def test_v_conversions_have_no_division_by_zero_at_zero_terminal_snr():
    s = SCHEDULES["linear+ztsnr"]
    rng = np.random.default_rng(4)
    t = np.array([s.T - 1] * 3)
    x0, eps, xt = _consistent_triple(s, t, rng)
    np.testing.assert_allclose(xt, eps)  # pure noise
    v = training_target(s, x0, t, eps, "v_prediction")
    np.testing.assert_allclose(v, -x0)    # v = -x0 when alpha_bar = 0
    with np.errstate(all="raise"):
        x0_hat, eps_hat = predict_x0_and_eps(s, xt, t, v, "v_prediction")
    np.testing.assert_allclose(x0_hat, x0)
    np.testing.assert_allclose(eps_hat, eps)


def test_epsilon_to_x0_at_zero_terminal_snr_explains_why_it_is_impossible():
    s = SCHEDULES["linear+ztsnr"]
    x = np.zeros((1, 2))
    with pytest.raises(ValueError, match="v_prediction"):
        convert_prediction(s, x, np.array([s.T - 1]), x, "epsilon", "sample")


def test_score_is_tweedie():
    """Tweedie: E[x0 | x_t] = (x_t + (1 - ab) score) / sqrt(ab)."""
    s = NoiseSchedule.cosine(T=100)
    rng = np.random.default_rng(5)
    t = np.arange(0, 100, 7)
    x0, eps, xt = _consistent_triple(s, t, rng)
    score = convert_prediction(s, xt, t, eps, "epsilon", "score")
    ab = s.alphas_cumprod[t][:, None]
    np.testing.assert_allclose((xt + (1 - ab) * score) / np.sqrt(ab), x0, atol=1e-8)


# ---- targets and the loss ---------------------------------------------------------------------------------------
def test_training_targets():
    s = NoiseSchedule.linear(T=100)
    rng = np.random.default_rng(6)
    t = np.array([3, 60])
    x0, eps = randn(rng, 2, 2), randn(rng, 2, 2)
    ab = s.alphas_cumprod[t][:, None]
    np.testing.assert_array_equal(training_target(s, x0, t, eps, "epsilon"), eps)
    np.testing.assert_array_equal(training_target(s, x0, t, eps, "sample"), x0)
    np.testing.assert_allclose(training_target(s, x0, t, eps, "v_prediction"), np.sqrt(ab) * eps - np.sqrt(1 - ab) * x0)


@pytest.mark.parametrize("prediction_type", ["epsilon", "sample", "v_prediction"])
@pytest.mark.parametrize("gamma", [None, 5.0])
def test_loss_value_and_gradient(prediction_type, gamma):
    s = NoiseSchedule.cosine(T=100)
    rng = np.random.default_rng(7)
    t = np.array([0, 10, 50, 99])
    x0, eps, out = randn(rng, 4, 3), randn(rng, 4, 3), randn(rng, 4, 3)
    loss, grad = diffusion_loss(s, out, x0, t, eps, prediction_type, min_snr_gamma=gamma)
    target = training_target(s, x0, t, eps, prediction_type)
    w = np.ones(4) if gamma is None else min_snr_weights(s, t, gamma, prediction_type)
    assert loss == pytest.approx(np.mean(w * ((out - target) ** 2).mean(1)))
    # central differences on the loss
    z = out.copy()
    num = central_differences(lambda: diffusion_loss(s, z, x0, t, eps, prediction_type, gamma)[0], z)
    np.testing.assert_allclose(grad, num, rtol=1e-6, atol=1e-9)


def test_min_snr_weights_follow_hang_et_al():
    s = NoiseSchedule.linear(T=1000).rescale_zero_terminal_snr()
    t = np.array([0, 500, 999])
    snr = s.snr[t]
    np.testing.assert_allclose(min_snr_weights(s, t, 5.0, "sample"), np.minimum(snr, 5))
    np.testing.assert_allclose(min_snr_weights(s, t, 5.0, "v_prediction"), np.minimum(snr, 5) / (snr + 1))
    eps_w = min_snr_weights(s, t, 5.0, "epsilon")
    assert eps_w[0] == pytest.approx(5 / snr[0]) and eps_w[1] == pytest.approx(1.0) and eps_w[2] == 1.0


def test_loss_refuses_nan_model_output():
    s = NoiseSchedule.linear(T=10)
    out = np.array([[np.nan, 0.0]])
    with pytest.raises(FloatingPointError, match="diverged"):
        diffusion_loss(s, out, np.zeros((1, 2)), np.array([1]), np.zeros((1, 2)))


def test_sample_timesteps_is_uniform_and_seeded():
    s = NoiseSchedule.linear(T=10)
    t1 = sample_timesteps(s, 10_000, np.random.default_rng(0))
    t2 = sample_timesteps(s, 10_000, np.random.default_rng(0))
    np.testing.assert_array_equal(t1, t2)
    assert t1.dtype == np.int64 and t1.min() == 0 and t1.max() == 9
    assert np.all(np.abs(np.bincount(t1) - 1000) < 150)


# ---- the ELBO ------------------------------------------------------------------------------------------------------
def test_gaussian_kl_matches_the_1d_formula_and_is_zero_for_equal_gaussians():
    m1, v1, m2, v2 = np.array([[0.3]]), 0.5, np.array([[-1.0]]), 2.0
    expected = np.log(np.sqrt(v2) / np.sqrt(v1)) + (v1 + (m1 - m2) ** 2) / (2 * v2) - 0.5
    np.testing.assert_allclose(gaussian_kl(m1, v1, m2, v2), expected[:, 0])
    np.testing.assert_allclose(gaussian_kl(m1, v1, m1, v1), [0.0], atol=1e-15)


@pytest.mark.parametrize("variance", ["fixed_large", "fixed_small"])
def test_elbo_term_is_lambda_t_times_the_noise_error(variance):
    """KL(q(x_{t-1}|x_t,x0) || p_theta) - KL at the perfect eps = lambda_t ||eps - eps_theta||^2 (Ho et al. eq. 12).

    p_theta's mean is the posterior mean with x0 replaced by the x0 that eps_theta implies.
    """
    s = NoiseSchedule.cosine(T=100)
    rng = np.random.default_rng(8)
    t = np.arange(1, 100)
    x0, eps, xt = _consistent_triple(s, t, rng, shape=(3,))
    eps_theta = eps + 0.1 * randn(rng, *eps.shape)
    x0_theta = convert_prediction(s, xt, t, eps_theta, "epsilon", "sample")
    mean_q, var_q = q_posterior(s, x0, xt, t)
    mean_p, _ = q_posterior(s, x0_theta, xt, t)
    sigma2 = (s.betas if variance == "fixed_large" else s.posterior_variance)[t][:, None]
    kl = gaussian_kl(mean_q, var_q, mean_p, sigma2) - gaussian_kl(mean_q, var_q, mean_q, sigma2)
    expected = elbo_weights(s, variance)[t] * ((eps - eps_theta) ** 2).sum(1)
    np.testing.assert_allclose(kl, expected, rtol=1e-6)


def test_elbo_weights_with_fixed_large_variance_equal_beta_over_2_alpha_1_minus_ab():
    s = NoiseSchedule.linear(T=100)
    np.testing.assert_allclose(elbo_weights(s), s.betas / (2 * s.alphas * (1 - s.alphas_cumprod)))


# ---- clear errors ---------------------------------------------------------------------------------------------------
S = NoiseSchedule.linear(T=10)
X = np.zeros((2, 3))


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: q_sample(S, X, np.array([0, 10]), X), IndexError, "out of range.*T=10"),
        (lambda: q_sample(S, X, np.array([-1, 0]), X), IndexError, "t=-1"),
        (lambda: q_sample(S, X, np.array([0.0, 1.0]), X), TypeError, "integers"),
        (lambda: q_sample(S, X, np.array([0, 1, 2]), X), ValueError, "batch size 2"),
        (lambda: q_sample(S, X, np.array([[0, 1]]), X), ValueError, r"shape \(B,\)"),
        (lambda: q_sample(S, X, np.array([0, 1]), np.zeros((2, 4))), ValueError, "same shape"),
        (lambda: q_sample(S, X.astype(int), np.array([0, 1]), X), TypeError, "float"),
        (lambda: q_posterior(S, X, np.zeros((3, 3)), np.array([0, 1])), ValueError, "same shape"),
        (lambda: training_target(S, X, np.array([0, 1]), X, "eps"), ValueError, "unknown prediction_type 'eps'"),
        (lambda: convert_prediction(S, X, np.array([0, 1]), X, "epsilon", "x0"), ValueError, "unknown prediction_type"),
    ],
)
def test_bad_input_raises_a_clear_error(call, error, match):
    with pytest.raises(error, match=match):
        call()
