"""Exercises 8.1 (the DDIM step, Song et al. 2021) and 10.1 (classifier-free guidance, Ho & Salimans 2022)."""

import numpy as np
import pytest

from tinydiff.exercises.checks import expect_close
from tinydiff.samplers import _Denoiser, ddim_sigma, ddim_step
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
