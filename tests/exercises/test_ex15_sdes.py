"""Exercises 15.1 (one Euler-Maruyama step of the reverse-time SDE, Song et al. 2021, eq. 6) and 15.2 (the Langevin
corrector of their Alg. 5) (chapters/15_sdes.py), graded against the formulas and against Gaussian data, whose exact
denoiser is known in closed form. 15.2's corrector calls 14.2's langevin_step: with 14.2 a stub, its loop tests say
"needs Exercise 14.2"."""

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


# ---- 15.2 the Langevin corrector -------------------------------------------------------------------------------------
def _step_size(score, xi, r, norm=lambda a: np.linalg.norm(a.reshape(len(a), -1), axis=1)):
    return 2 * (r * np.mean(norm(xi)) / np.mean(norm(score))) ** 2


@pytest.mark.ex15_2(part="the step size (Alg. 5)", points=1)
def test_snr_step_size_makes_the_drift_r_times_the_noise():
    from tinydiff.samplers import snr_step_size

    rng = np.random.default_rng(3)
    score = rng.standard_normal((4, 2, 3)) * np.array([1.0, 2.0, 5.0, 0.5])[:, None, None]   # (B, ...)
    xi = rng.standard_normal((4, 2, 3))
    r = 0.16
    whole = lambda a: np.full(len(a), np.linalg.norm(a) / np.sqrt(len(a)))  # noqa: E731
    expect_close("ex15_2", "delta", snr_step_size(score, xi, r), _step_size(score, xi, r), likely=[
        (_step_size(score, xi, r) / 2, "delta = 2 (r ||xi|| / ||score||)^2: the factor 2 is missing (Langevin's "
                                       "noise is sqrt(2 delta) xi)"),
        (np.sqrt(_step_size(score, xi, r) / 2) * 2, "the ratio is squared: delta = 2 (r ||xi|| / ||score||)^2"),
        (_step_size(xi, score, r), "the ratio is upside down: ||xi|| on top, ||score|| below"),
        (_step_size(score, xi, r, norm=lambda a: np.linalg.norm(a.reshape(-1)) * np.ones(1)),
         "norms are per sample (over each sample's coordinates), then averaged over the batch"),
        (_step_size(score, xi, r, norm=whole), "norms are per sample, then averaged over the batch"),
    ], hint="delta = 2 (r * mean_b ||xi_b|| / mean_b ||score_b||)^2")


def _gaussian_level(ab):
    """Data N(mu, 0.25 I) in 2D: the exact (x0, eps) at VP level ab, a counter of calls, and the noisy marginal."""
    from tinydiff.samplers import PredictorCorrector

    data = GaussianMixture([1.0], [[0.5, -0.5]], [np.eye(2) * 0.25])
    model = GaussianMixtureDenoiser(data, NoiseSchedule.linear(10))
    calls = []

    def denoise(x, t):
        calls.append(t)
        post = model.posterior(x, ab)
        return post["x0"], post["eps"]

    mean, var = np.sqrt(ab) * np.array([0.5, -0.5]), ab * 0.25 + 1 - ab                # q(x_t) = N(mean, var I)
    return denoise, calls, mean, var, PredictorCorrector


def _correct(ab, x, corrector_steps, snr, monkeypatch):
    """The corrector alone: the predictor (Exercise 15.1) replaced by one that returns (x, eps) as they are."""
    import tinydiff.samplers as samplers
    from tinydiff.samplers import Step

    denoise, calls, mean, var, PC = _gaussian_level(ab)
    monkeypatch.setattr(samplers, "reverse_sde_step", lambda x, eps, ab_t, ab_prev, noise: (x, eps))
    stepper = PC(snr=snr, corrector_steps=corrector_steps)
    stepper.start(np.array([ab, 1.0]), denoise)
    stepper.rng = np.random.default_rng(5)
    x0, eps = denoise(x, 7)
    calls.clear()
    x_out, eps_out = stepper.step(x, Step(i=0, n=1, t=7, t_prev=None, ab_t=ab, ab_prev=1.0), x0, eps,
                                  np.zeros_like(x))
    return x_out, eps_out, calls, denoise, mean, var


@pytest.mark.ex15_2(part="the corrector loop", points=2)
def test_corrector_pulls_a_too_wide_cloud_onto_the_noisy_marginal(monkeypatch):
    ab = 0.5
    _, _, mean, var, _ = _gaussian_level(ab)
    x = mean + 2.0 * np.sqrt(var) * np.random.default_rng(6).standard_normal((4000, 2))   # 4x the variance
    x_out, *_ = _correct(ab, x, 40, 0.3, monkeypatch)
    m, v = x_out.mean(axis=0), x_out.var(axis=0)
    expect_true("ex15_2", bool(np.all(np.isfinite(x_out))), "the corrector's output contains NaN or inf")
    expect_true("ex15_2", bool(np.all(np.abs(m - mean) < 0.05) and np.all(np.abs(v / var - 1) < 0.1)),
                f"40 corrector steps (snr 0.3) at alpha_bar = 0.5, from a cloud 2x too wide, end with mean {np.round(m, 3)} "
                f"and variance {np.round(v, 3)}; the noisy marginal has mean {np.round(mean, 3)} and variance {var:.3f}. "
                "Langevin steps run in the sigma frame z = x / sqrt(ab) with score = -eps / sigma, with the score "
                "of the *current* x at every step, and the result goes back to x = sqrt(ab) z.")


@pytest.mark.ex15_2(part="the corrector loop", points=2)
def test_corrector_calls_the_model_once_per_step_and_hands_the_predictor_the_eps_of_its_result(monkeypatch):
    x = np.random.default_rng(7).standard_normal((16, 2))
    x_out, eps_out, calls, denoise, _, _ = _correct(0.3, x, 3, 0.16, monkeypatch)
    expect_true("ex15_2", len(calls) == 3, f"with 3 corrector steps the model was called {len(calls)} times in the "
                "step; expected 3: the eps handed in serves the first Langevin step, each later one needs the eps at "
                "the new x, and the predictor needs the eps at the corrector's result (NFE = steps (1 + corrector_steps))")
    expect_close("ex15_2", "eps handed to the predictor", eps_out, denoise(x_out, 7)[1],
                 hint="after the last Langevin step, evaluate the model again: eps = self.denoise(x, s.t)[1]")
