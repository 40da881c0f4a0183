"""Exercise 1.1: q_sample, x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps (chapters/01_forward_process.py)."""

import numpy as np
import pytest

from tinydiff.diffusion import q_sample, q_step
from tinydiff.exercises.checks import expect_close, expect_true
from tinydiff.schedules import NoiseSchedule


def _setup(dtype=np.float64, shape=(4, 3)):
    schedule = NoiseSchedule.linear(100)
    rng = np.random.default_rng(0)
    x0 = rng.standard_normal(shape).astype(dtype)
    noise = rng.standard_normal(shape).astype(dtype)
    t = np.array([0, 10, 50, 99][: shape[0]])
    return schedule, x0, noise, t


@pytest.mark.ex1_1
def test_q_sample_matches_eq4_for_each_sample_step():
    schedule, x0, noise, t = _setup()
    ab = schedule.alphas_cumprod[t][:, None]                                  # (B, 1)
    expected = np.sqrt(ab) * x0 + np.sqrt(1 - ab) * noise
    a = schedule.alphas[t][:, None]
    ab_prev = schedule.alphas_cumprod[t - 1][:, None]
    expect_close("ex1_1", "x_t", q_sample(schedule, x0, t, noise), expected, likely=[
        (ab * x0 + (1 - ab) * noise, "the coefficients are square roots: sqrt(alpha_bar_t) and sqrt(1 - alpha_bar_t)"),
        (np.sqrt(ab) * noise + np.sqrt(1 - ab) * x0, "x0 and the noise are swapped: the signal gets sqrt(alpha_bar_t)"),
        (np.sqrt(a) * x0 + np.sqrt(1 - a) * noise, "you used alphas[t] (one step); the jump from x0 needs "
                                                    "alphas_cumprod[t] = alpha_bar_t, the product over steps 0..t"),
        (np.sqrt(ab_prev) * x0 + np.sqrt(1 - ab_prev) * noise, "off by one: tinydiff indexes alpha_bar_t as "
                                                               "alphas_cumprod[t], not alphas_cumprod[t - 1]"),
        (np.sqrt(ab[:1]) * x0 + np.sqrt(1 - ab[:1]) * noise, "every sample used the first step t[0]: index the "
                                                             "coefficients with the whole array t, one step per sample"),
    ], hint="x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps with alpha_bar_t = schedule.alphas_cumprod[t]")


@pytest.mark.ex1_1
def test_q_sample_broadcasts_over_images_and_keeps_float32():
    schedule, x0, noise, t = _setup(np.float32, (3, 2, 4, 4))
    xt = q_sample(schedule, x0, t, noise)
    ab = schedule.alphas_cumprod[t].reshape(-1, 1, 1, 1)                      # (B, 1, 1, 1)
    expect_close("ex1_1", "x_t for images (B, C, H, W)", xt, np.sqrt(ab) * x0 + np.sqrt(1 - ab) * noise,
                 rtol=1e-5, atol=1e-6, hint="reshape the (B,) coefficients to (B, 1, 1, 1) so they broadcast per image")
    expect_true("ex1_1", xt.dtype == np.float32,
                f"x_t has dtype {xt.dtype} for float32 inputs; expected float32. The coefficients are float64: cast "
                "them to x0's dtype (the helper _coef does the reshape and the cast).")


### BEGIN HIDDEN TESTS
@pytest.mark.ex1_1
def test_q_sample_has_the_marginal_mean_and_variance():
    schedule = NoiseSchedule.linear(100)
    rng = np.random.default_rng(1)
    x0 = np.full((20000, 1), 2.0)
    t = np.full(20000, 30)
    xt = q_sample(schedule, x0, t, rng.standard_normal(x0.shape))
    ab = schedule.alphas_cumprod[30]
    expect_close("ex1_1", "the mean of x_t over 20000 samples", xt.mean(), 2.0 * np.sqrt(ab), atol=0.03, rtol=0)
    expect_close("ex1_1", "the variance of x_t over 20000 samples", xt.var(), 1 - ab, atol=0.03, rtol=0)
### END HIDDEN TESTS


# ---- 1.2 debugging q_step ------------------------------------------------------------------------------------
@pytest.mark.ex1_2
def test_q_step_is_eq2():
    schedule, x_prev, noise, t = _setup()
    a = schedule.alphas[t][:, None]                                            # (B, 1)
    b = schedule.betas[t][:, None]
    expect_close("ex1_2", "x_t from one step", q_step(schedule, x_prev, t, noise),
                 np.sqrt(a) * x_prev + np.sqrt(b) * noise, likely=[
                     (np.sqrt(a) * x_prev + b * noise, "the noise is scaled by beta_t; eq. 2 adds noise of *variance* "
                                                       "beta_t, so its scale is sqrt(beta_t)"),
                 ], hint="x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) eps (Ho et al. 2020, eq. 2)")


@pytest.mark.ex1_2
def test_q_step_keeps_unit_variance_data_at_unit_variance():
    schedule = NoiseSchedule.linear(100)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((20000, 1))
    for t in range(0, 100, 5):
        x = q_step(schedule, x, np.full(len(x), t), rng.standard_normal(x.shape))
    expect_true("ex1_2", abs(x.var() - 1.0) < 0.05,
                f"after 20 steps the variance of unit-variance data is {x.var():.3f}, expected 1 (the chain is "
                "variance preserving: (1 - beta) * 1 + beta = 1). Which term shrinks the variance?")
