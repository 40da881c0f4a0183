"""Exercise 15.1: one Euler-Maruyama step of the reverse-time SDE (Song et al. 2021, eq. 6) (chapters/15_sdes.py),
graded against the formula and against Gaussian data, whose exact denoiser is known in closed form."""

import numpy as np
import pytest

from tinydiff.analytic import GaussianMixture, GaussianMixtureDenoiser
from tinydiff.exercises.checks import expect_close, expect_true
from tinydiff.samplers import reverse_sde_step, sample
from tinydiff.schedules import NoiseSchedule


def _sig(ab):
    return np.sqrt((1 - ab) / ab)


def _step(x_t, eps, ab_t, ab_p, xi, drift=1.0, noise=lambda d: np.sqrt(d)):
    s, s_p = _sig(ab_t), _sig(ab_p)
    dvar = s * s - s_p * s_p
    return np.sqrt(ab_p) * (x_t / np.sqrt(ab_t) - drift * dvar / s * eps + noise(dvar) * xi)


@pytest.mark.ex15_1(part="the step: drift g^2 score and noise", points=2)
def test_reverse_sde_step_in_the_sigma_frame():
    rng = np.random.default_rng(0)
    x_t, eps, xi = rng.standard_normal((3, 4, 2))
    ab_t, ab_p = 0.3, 0.6
    s, s_p = _sig(ab_t), _sig(ab_p)
    expect_close("ex15_1", "x_prev", reverse_sde_step(x_t, eps, ab_t, ab_p, xi), _step(x_t, eps, ab_t, ab_p, xi), likely=[
        (_step(x_t, eps, ab_t, ab_p, xi, drift=0.5), "the drift is the probability-flow ODE's, g^2 score / 2: the "
         "reverse SDE takes the full g^2 score (Song et al. eq. 6), twice the ODE's, because its noise spreads the samples"),
        (_step(x_t, eps, ab_t, ab_p, xi, drift=-1.0), "the score is -eps / sigma: the drift moves against eps"),
        (_step(x_t, eps, ab_t, ab_p, xi, noise=lambda d: d), "the noise's std is sqrt(sigma^2 - sigma'^2), the square "
                                                              "root of the variance the step removes"),
        (_step(x_t, eps, ab_t, ab_p, xi, noise=lambda d: 0 * d), "the noise sqrt(sigma^2 - sigma'^2) xi is missing: "
                                                                  "without it, use the ODE's drift (half of this one)"),
        (np.sqrt(ab_p) * (x_t / np.sqrt(ab_t) - (s - s_p) * eps + np.sqrt(s - s_p) * xi),
         "in the time tau = sigma^2 the step is dtau = sigma^2 - sigma'^2, not sigma - sigma'"),
        (x_t / np.sqrt(ab_t) - (s * s - s_p * s_p) / s * eps + np.sqrt(s * s - s_p * s_p) * xi,
         "that is z' in the sigma frame: multiply by sqrt(ab_prev) to return to x"),
    ], hint="z = x_t / sqrt(ab_t); z' = z + (sigma^2 - sigma'^2) (-eps / sigma) + sqrt(sigma^2 - sigma'^2) xi; "
            "x' = sqrt(ab_prev) z'; sigma = sqrt((1 - ab) / ab)")


@pytest.mark.ex15_1(part="the step: drift g^2 score and noise", points=2)
def test_reverse_sde_samples_gaussian_data_with_the_right_mean_and_variance():
    """Data N(mu, diag(s^2)): the exact denoiser is linear, and 200 steps of the reverse SDE must give mean mu and
    variance s^2 (the ODE's drift with this noise, or this drift without it, misses the variance by far)."""
    data = GaussianMixture([1.0], [[0.5, -1.0]], [np.diag([0.25, 1.0])])
    schedule = NoiseSchedule.linear(1000)
    x = sample(GaussianMixtureDenoiser(data, schedule), (4000, 2), schedule, method="sde", steps=200, rng=1)
    mean, var = x.mean(axis=0), x.var(axis=0)
    expect_true("ex15_1", bool(np.all(np.isfinite(x))), "the samples contain NaN or inf")
    expect_true("ex15_1", bool(np.all(np.abs(mean - [0.5, -1.0]) < 0.06) and np.all(np.abs(var / [0.25, 1.0] - 1) < 0.1)),
                f"samples of N(mu = [0.5, -1], diag(0.25, 1)) drawn with your step have mean {np.round(mean, 3)} and "
                f"variance {np.round(var, 3)}. Too large a variance: the drift is too weak for the noise (it is the "
                "full (sigma^2 - sigma'^2) score, not half); too small: the noise is too weak or missing.")


@pytest.mark.ex15_1(part="the last step: Tweedie's x0, no noise", points=1)
def test_last_step_to_the_data_is_tweedies_estimate_without_noise():
    rng = np.random.default_rng(2)
    x_t, eps, xi = rng.standard_normal((3, 4, 2))
    ab_t = 0.9
    tweedie = x_t / np.sqrt(ab_t) - _sig(ab_t) * eps
    expect_close("ex15_1", "the last step (ab_prev = 1, sigma' = 0)", reverse_sde_step(x_t, eps, ab_t, 1.0, xi), tweedie,
                 likely=[(tweedie + _sig(ab_t) * xi, "the last step adds no noise: at sigma' = 0 it returns "
                                                     "Tweedie's x0 = z - sigma eps (noise there would stay in the samples)")],
                 hint="with sigma' = 0: z' = z - sigma eps, and no noise term")
