"""Exercises 3.1 (the posterior q(x_{t-1} | x_t, x0)) and 3.2 (training targets) (chapters/03_reverse_process.py)."""

import numpy as np
import pytest

from tinydiff.diffusion import q_posterior, training_target
from tinydiff.exercises.checks import expect_close, expect_true
from tinydiff.schedules import NoiseSchedule

T = 100
STEPS = np.array([0, 1, 40, 99])


def _data(shape=(4, 3), dtype=np.float64):
    rng = np.random.default_rng(0)
    return rng.standard_normal(shape).astype(dtype), rng.standard_normal(shape).astype(dtype)


def _eq7(schedule, t, prev):
    """Posterior coefficients (Ho et al. eq. 7) with alpha_bar_{t-1} taken from ``prev``."""
    b, ab = schedule.betas[t], schedule.alphas_cumprod[t]
    return (np.sqrt(prev) * b / (1 - ab), np.sqrt(1 - b) * (1 - prev) / (1 - ab), b * (1 - prev) / (1 - ab))


@pytest.mark.ex3_1(part="the variance", points=1)
def test_posterior_variance_is_eq7_and_below_beta():
    schedule = NoiseSchedule.linear(T)
    x0, xt = _data()
    _, var = q_posterior(schedule, x0, xt, STEPS)
    var = np.asarray(var).reshape(-1)
    beta = schedule.betas[STEPS]
    expect_true("ex3_1", bool(np.all(var <= beta * (1 + 1e-9))),
                f"posterior variance exceeds beta_t (variance {var}, beta_t {beta}): did you use alphas_cumprod[t-1] "
                "for the previous step? At t = 0 it wraps around to the last step; alpha_bar_{t-1} is "
                "alphas_cumprod_prev[t] (= 1 at t = 0).")
    expect_close("ex3_1", "posterior variance", var, _eq7(schedule, STEPS, schedule.alphas_cumprod_prev[STEPS])[2],
                 hint="beta_tilde_t = beta_t (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t)")


@pytest.mark.ex3_1(part="the mean coefficients", points=2)
def test_posterior_mean_is_eq7():
    schedule = NoiseSchedule.linear(T)
    x0, xt = _data()
    mean, _ = q_posterior(schedule, x0, xt, STEPS)
    c0, ct, _ = _eq7(schedule, STEPS, schedule.alphas_cumprod_prev[STEPS])
    w0, wt, _ = _eq7(schedule, STEPS, schedule.alphas_cumprod[STEPS - 1])
    expect_close("ex3_1", "posterior mean", mean, c0[:, None] * x0 + ct[:, None] * xt, likely=[
        (w0[:, None] * x0 + wt[:, None] * xt, "alphas_cumprod[t-1] wraps around at t = 0; use alphas_cumprod_prev[t]"),
        (ct[:, None] * x0 + c0[:, None] * xt, "the coefficients of x0 and x_t are swapped"),
    ], hint="mean = sqrt(ab_{t-1}) beta_t / (1 - ab_t) x0 + sqrt(alpha_t) (1 - ab_{t-1}) / (1 - ab_t) x_t")


@pytest.mark.ex3_1(part="the mean coefficients", points=2)
def test_posterior_at_step_0_is_the_data():
    schedule = NoiseSchedule.linear(T)
    x0, xt = _data((2, 3))
    mean, var = q_posterior(schedule, x0, xt, np.zeros(2, dtype=np.int64))
    expect_close("ex3_1", "posterior variance at t = 0", np.asarray(var).reshape(-1), np.zeros(2),
                 hint="before step 0 is the data itself: alpha_bar_{-1} = 1, so the variance is 0")
    expect_close("ex3_1", "posterior mean at t = 0", mean, x0, hint="with alpha_bar_{-1} = 1 the mean is x0")


### BEGIN HIDDEN TESTS
@pytest.mark.ex3_1(part="the mean coefficients", points=2)
def test_posterior_is_the_product_of_the_two_gaussians():
    # q(x_{t-1} | x_t, x0) is proportional to q(x_t | x_{t-1}) q(x_{t-1} | x0): add the precisions (Bayes)
    schedule = NoiseSchedule.cosine(50)
    x0, xt = _data()
    t = np.array([1, 5, 20, 49])
    b, prev = schedule.betas[t][:, None], schedule.alphas_cumprod_prev[t][:, None]
    var = 1 / (1 / (1 - prev) + (1 - b) / b)
    mean = var * (np.sqrt(prev) * x0 / (1 - prev) + np.sqrt(1 - b) * xt / b)
    m, v = q_posterior(schedule, x0, xt, t)
    expect_close("ex3_1", "posterior mean", m, mean)
    expect_close("ex3_1", "posterior variance", np.asarray(v).reshape(-1, 1), var)
### END HIDDEN TESTS


@pytest.mark.ex3_2(part="epsilon and sample targets")
def test_epsilon_and_sample_targets_are_the_noise_and_the_data():
    schedule = NoiseSchedule.linear(T)
    x0, eps = _data()
    expect_close("ex3_2", "the epsilon target", training_target(schedule, x0, STEPS, eps, "epsilon"), eps,
                 hint="an epsilon-prediction model learns the noise that was added")
    expect_close("ex3_2", "the sample target", training_target(schedule, x0, STEPS, eps, "sample"), x0,
                 hint="a sample-prediction model learns the clean data x0")


@pytest.mark.ex3_2(part="the v target")
def test_v_target_is_salimans_and_ho():
    schedule = NoiseSchedule.linear(T)
    x0, eps = _data()
    s, c = np.sqrt(schedule.alphas_cumprod[STEPS])[:, None], np.sqrt(1 - schedule.alphas_cumprod[STEPS])[:, None]
    expect_close("ex3_2", "the v target", training_target(schedule, x0, STEPS, eps, "v_prediction"),
                 s * eps - c * x0, likely=[
                     (c * x0 - s * eps, "the sign is flipped: v = sqrt(ab) eps - sqrt(1 - ab) x0"),
                     (c * eps - s * x0, "the coefficients are swapped: eps gets sqrt(alpha_bar), x0 sqrt(1 - alpha_bar)"),
                     (s**2 * eps - c**2 * x0, "the coefficients are square roots of alpha_bar and 1 - alpha_bar"),
                 ], hint="v = sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t) x0 (Salimans & Ho 2022)")
