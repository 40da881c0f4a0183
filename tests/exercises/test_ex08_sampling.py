"""Exercises 8.1 (the DDIM step, Song et al. 2021) and 10.1 (classifier-free guidance, Ho & Salimans 2022)."""

import numpy as np
import pytest

from tinydiff.exercises.checks import expect_close, exercise_name
from tinydiff.samplers import _Denoiser, ddim_sigma, ddim_step, dpmpp_2m_step, respace, timesteps
from tinydiff.schedules import NoiseSchedule

SCHEDULE = NoiseSchedule.linear(100)
AB = SCHEDULE.alphas_cumprod


# ---- 8.1 DDIM ------------------------------------------------------------------------------------------------
@pytest.mark.ex8_1(part="sigma (eq. 16)", points=1)
def test_ddim_sigma_with_eta_1_is_the_ddpm_posterior_std_and_0_with_eta_0():
    t = np.array([1, 10, 50, 99])
    got = np.array([ddim_sigma(AB[k], AB[k - 1], 1.0) for k in t])
    expect_close("ex8_1", "ddim_sigma(eta=1)", got, np.sqrt(SCHEDULE.posterior_variance[t]), likely=[
        (SCHEDULE.posterior_variance[t], "that is sigma^2: eq. 16 gives sigma itself, take the square root"),
    ], hint="sigma = eta sqrt((1 - ab_prev) / (1 - ab_t)) sqrt(1 - ab_t / ab_prev); with eta = 1 it is DDPM's std")
    expect_close("ex8_1", "ddim_sigma(eta=0)", ddim_sigma(AB[10], AB[9], 0.0), 0.0,
                 hint="eta scales sigma: eta = 0 is the deterministic DDIM sampler")


@pytest.mark.ex8_1(part="the step (eq. 12), eta = 0 and eta > 0", points=2)
def test_ddim_step_is_eq12():
    rng = np.random.default_rng(0)
    x0, eps, z = rng.standard_normal((3, 2, 4))
    ab_prev, sigma = AB[39], 0.1
    expected = np.sqrt(ab_prev) * x0 + np.sqrt(1 - ab_prev - sigma**2) * eps + sigma * z
    expect_close("ex8_1", "x_prev", ddim_step(x0, eps, ab_prev, sigma, z), expected, likely=[
        (np.sqrt(ab_prev) * x0 + np.sqrt(1 - ab_prev) * eps + sigma * z,
         "the eps coefficient is sqrt(1 - ab_prev - sigma^2): the fresh noise takes its share of the variance"),
        (np.sqrt(ab_prev) * x0 + np.sqrt(1 - ab_prev - sigma**2) * eps, "the fresh noise sigma * z is missing"),
    ], hint="x_prev = sqrt(ab_prev) x0 + sqrt(1 - ab_prev - sigma^2) eps + sigma z  (Song et al. 2021, eq. 12)")


@pytest.mark.ex8_1(part="the step (eq. 12), eta = 0 and eta > 0", points=2)
def test_deterministic_ddim_step_lands_on_the_forward_process():
    rng = np.random.default_rng(1)
    x0, eps = rng.standard_normal((2, 3, 4))
    got = ddim_step(x0, eps, AB[20], 0.0, np.zeros_like(x0))
    expect_close("ex8_1", "x_prev with sigma = 0", got, np.sqrt(AB[20]) * x0 + np.sqrt(1 - AB[20]) * eps,
                 hint="with sigma = 0, x_prev is q_sample's formula at the previous step with the same eps")


# ---- 10.1 classifier-free guidance -----------------------------------------------------------------------------
NULL = 10


def _model(x, t, y):
    """A fake epsilon model: label k predicts eps = k + 1 everywhere (so cond = 4 for y = 3, uncond = 11)."""
    return np.ones_like(x) * (y[:, None] + 1.0)


@pytest.mark.ex10_1
@pytest.mark.parametrize("scale", [0.0, 3.0])
def test_guided_output_is_uncond_plus_scale_times_the_difference(scale):
    x = np.zeros((2, 5))
    _, eps = _Denoiser(_model, SCHEDULE, "epsilon", None, 3, scale, NULL, 2)(x, 50)
    cond, uncond = np.full_like(x, 4.0), np.full_like(x, 11.0)
    expect_close("ex10_1", f"the guided eps at scale {scale:g}", eps, uncond + scale * (cond - uncond), likely=[
        (cond + scale * (cond - uncond), "guidance starts from the unconditional output: uncond + s (cond - uncond)"),
        (uncond + scale * (uncond - cond), "the direction is reversed: move from uncond towards cond"),
        (scale * cond, "guidance mixes both outputs: uncond + s (cond - uncond)"),
    ], hint="eps_guided = eps_uncond + s (eps_cond - eps_uncond); s = 0 is unconditional, s = 1 conditional")


# ---- 8.2 DPM-Solver++(2M) ------------------------------------------------------------------------------------
def _dpm_reference(x_t, x0, x0_last, ab_t, ab_prev, ab_last):
    a_t, s_t, a_p, s_p = np.sqrt(ab_t), np.sqrt(1 - ab_t), np.sqrt(ab_prev), np.sqrt(1 - ab_prev)
    lam = lambda ab: np.log(np.sqrt(ab) / np.sqrt(1 - ab))  # noqa: E731
    h = lam(ab_prev) - lam(ab_t)
    D = x0
    if x0_last is not None:
        r = (lam(ab_t) - lam(ab_last)) / h
        D = (1 + 1 / (2 * r)) * x0 - x0_last / (2 * r)
    return s_p / s_t * x_t - a_p * (np.exp(-h) - 1) * D


@pytest.mark.ex8_2(part="the first-order step", points=1)
def test_first_dpm_solver_step_is_ddim():
    rng = np.random.default_rng(2)
    x_t, x0 = rng.standard_normal((2, 3, 2))
    ab_t, ab_prev = AB[60], AB[40]
    eps = (x_t - np.sqrt(ab_t) * x0) / np.sqrt(1 - ab_t)
    expect_close("ex8_2", "the first step (x0_last = None)", dpmpp_2m_step(x_t, x0, None, ab_t, ab_prev, None),
                 np.sqrt(ab_prev) * x0 + np.sqrt(1 - ab_prev) * eps, likely=[
                     (np.sqrt(ab_prev) * x0 + np.sqrt(1 - ab_t) * eps, "sigma_prev / sigma_t scales x_t"),
                 ], hint="with D = x0 the update is exactly DDIM (eta = 0): x_prev = (s_p / s_t) x_t + (a_p - a_t s_p / s_t) x0")


@pytest.mark.ex8_2(part="the second-order step", points=2)
@pytest.mark.parametrize("steps", [(60, 40, 80), (30, 10, 70)])
def test_second_order_step_is_lu_et_al_alg2(steps):
    rng = np.random.default_rng(3)
    x_t, x0, x0_last = rng.standard_normal((3, 3, 2))
    t, t_prev, t_last = steps
    args = (AB[t], AB[t_prev], AB[t_last])
    expected = _dpm_reference(x_t, x0, x0_last, *args)
    lam = lambda ab: np.log(np.sqrt(ab) / np.sqrt(1 - ab))  # noqa: E731
    h, h_last = lam(args[1]) - lam(args[0]), lam(args[0]) - lam(args[2])
    r = h_last / h
    expect_close("ex8_2", f"x_prev from steps {steps}", dpmpp_2m_step(x_t, x0, x0_last, *args), expected, likely=[
        (_dpm_reference(x_t, x0, None, *args), "x0_last was ignored: the second-order D mixes x0 and x0_last"),
        (_dpm_reference(x_t, (1 + r / 2) * x0 - r / 2 * x0_last, None, *args) if r else expected,
         "r is h_last / h, so the weights are 1 + 1/(2r) and -1/(2r)"),
    ], hint="D = (1 + 1/(2r)) x0 - 1/(2r) x0_last with r = h_last / h, h = lambda_prev - lambda_t, lambda = log(alpha/sigma)")


@pytest.mark.ex8_2(part="the second-order step", points=2)
def test_second_order_step_after_pure_noise_is_first_order():
    rng = np.random.default_rng(4)
    x_t, x0, x0_last = rng.standard_normal((3, 3, 2))
    got = dpmpp_2m_step(x_t, x0, x0_last, AB[60], AB[40], 0.0)           # the last step started at alpha_bar = 0
    expect_close("ex8_2", "the step after one from alpha_bar = 0", got, dpmpp_2m_step(x_t, x0, None, AB[60], AB[40], None),
                 hint="h_last = inf there, so 1/(2r) = h / (2 h_last) = 0: compute 1/(2r) as h / (2 h_last), not 1 / (2 r)")


# ---- 8.3 debugging respace -----------------------------------------------------------------------------------
@pytest.mark.ex8_3
def test_respaced_chain_of_the_sampler_steps_visits_them_in_order():
    ts = timesteps(SCHEDULE, 10)                                         # descending, as the samplers use them
    try:
        got = respace(SCHEDULE, ts).alphas_cumprod
    except ValueError as e:
        raise AssertionError(f"{exercise_name('ex8_3')}: respace(schedule, timesteps(schedule, 10)) raised "
                             f"ValueError: {e}\nA chain's alpha_bar must fall step after step; in what order are the "
                             "steps the samplers pass in?") from None
    expect_close("ex8_3", "alpha_bar' of respace(schedule, timesteps(schedule, 10))", got, AB[np.sort(ts)], likely=[
        (AB[ts], "the steps were used in the order given (descending): step j of the new chain is the j-th "
                 "*smallest* old step, so sort them first"),
    ], hint="alpha_bar'_j = alpha_bar[s_j] with s = ts sorted ascending")


@pytest.mark.ex8_3
def test_respacing_every_step_gives_back_the_schedule():
    expect_close("ex8_3", "the betas of respace(schedule, all steps descending)",
                 respace(SCHEDULE, np.arange(100)[::-1]).betas, SCHEDULE.betas)
