"""The score-based samplers (edm, sde, pc, langevin in tinydiff.samplers) and the forward SDEs (tinydiff.sde),
checked with the exact denoiser of the 8-Gaussian mixture (std 0.1 around 8 centres at radius 2).

Checks on n = 1000 points: every mode weight within 0.04 of 1/8 (~3.7 standard errors) and the pooled within-mode
std within 0.015 of 0.1 (the step counts are chosen so that discretisation stays below that; measured 0.098-0.104)."""

import numpy as np
import pytest

from tinydiff.analytic import GaussianMixture, GaussianMixtureDenoiser
from tinydiff.data.toy2d import gaussian_mixture_params
from tinydiff.processes import EDMProcess, VEProcess, VPProcess
from tinydiff.samplers import churn_level, langevin_step, sample, snr_step_size
from tinydiff.schedules import NoiseSchedule
from tinydiff.sde import euler_maruyama_forward

MIX = GaussianMixture.from_params(gaussian_mixture_params("8gaussians"))
PROCESSES = {"edm": EDMProcess(), "ve": VEProcess(0.01, 10.0)}
RUNS = {"edm": (18, {}), "edm-churn": (18, {"churn": 10}), "sde": (200, {}), "pc": (100, {}),
        "langevin": (30, {"n_steps": 10})}


def mode_stats(x):
    k = np.argmin(((x[:, None, :] - MIX.means[None]) ** 2).sum(-1), axis=1)
    return np.bincount(k, minlength=8) / len(x), float(np.sqrt(np.mean((x - MIX.means[k]) ** 2)))


@pytest.mark.parametrize("process", list(PROCESSES))
@pytest.mark.parametrize("run", list(RUNS))
def test_method_with_exact_denoiser_reproduces_the_mixture(run, process):
    steps, options = RUNS[run]
    p = PROCESSES[process]
    x = sample(GaussianMixtureDenoiser(MIX, p, "epsilon"), (1000, 2), p, method=run.split("-")[0], steps=steps,
               rng=0, sampler_options=options)
    weights, std = mode_stats(x)
    assert np.all(np.abs(weights - 1 / 8) < 0.04), weights
    assert abs(std - 0.1) < 0.015, std


def test_edm_without_churn_is_heun_bit_for_bit():
    p = EDMProcess()
    den = GaussianMixtureDenoiser(MIX, p, "sample")
    a = sample(den, (50, 2), p, method="edm", steps=12, rng=3, prediction_type="sample")
    b = sample(den, (50, 2), p, method="heun", steps=12, rng=3, prediction_type="sample")
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("method, options, nfe", [
    ("edm", {}, 2 * 18 - 1), ("edm", {"churn": 40}, 2 * 18 - 1), ("sde", {}, 18),
    ("pc", {"corrector_steps": 2}, 18 * 3), ("langevin", {"n_steps": 5}, 18 * 5 + 1),
])
def test_number_of_model_calls(method, options, nfe):
    p = EDMProcess()
    _, traj = sample(GaussianMixtureDenoiser(MIX, p), (10, 2), p, method=method, steps=18, rng=0,
                     sampler_options=options, return_trajectory=True)
    assert traj.nfe == nfe


def test_churn_level_is_karras_alg_2():
    assert churn_level(1.0, 10, 2.0, 0.0, np.inf) == pytest.approx(1.2)              # gamma = S_churn / N
    assert churn_level(1.0, 10, 100.0, 0.0, np.inf) == pytest.approx(np.sqrt(2))     # gamma capped at sqrt(2) - 1
    assert churn_level(1.0, 10, 5.0, 0.0, 0.5) == 1.0                                 # outside [S_tmin, S_tmax]


def test_churn_on_a_noise_schedule_is_refused():
    s = NoiseSchedule.cosine(100)
    with pytest.raises(ValueError, match="churn > 0 needs a continuous process"):
        sample(GaussianMixtureDenoiser(MIX, s), (5, 2), s, method="edm", steps=10, sampler_options={"churn": 5})


def test_unknown_sampler_option_names_the_options():
    p = EDMProcess()
    with pytest.raises(ValueError, match="takes the options.*churn"):
        sample(GaussianMixtureDenoiser(MIX, p), (5, 2), p, method="edm", steps=5, sampler_options={"snr": 1})


def test_langevin_on_a_gaussian_has_the_discretised_stationary_variance():
    # x' = (1 - delta / s^2) x + sqrt(2 delta) z has stationary variance s^2 / (1 - delta / (2 s^2)): -> s^2 as
    # delta -> 0 (unadjusted Langevin's bias, Roberts & Tweedie 1996)
    rng = np.random.default_rng(0)
    s2, delta = 1.0, 0.2
    x = rng.standard_normal((20_000, 1))
    for _ in range(200):
        x = langevin_step(x, -x / s2, delta, rng.standard_normal(x.shape))
    assert abs(x.var() / (s2 / (1 - delta / (2 * s2))) - 1) < 0.03


def test_snr_rule_makes_the_drift_r_times_the_noise():
    rng = np.random.default_rng(0)
    score, noise = rng.standard_normal((2, 64, 2))
    delta = snr_step_size(score, noise, 0.16)
    drift = delta * np.mean(np.linalg.norm(score, axis=1))
    added = np.sqrt(2 * delta) * np.mean(np.linalg.norm(noise, axis=1))
    assert drift / added == pytest.approx(0.16)


def test_plain_langevin_with_the_exact_score_misses_the_mode_weights():
    # Song & Ermon (2019), Sec. 3.2: two well-separated modes with weights 0.8 / 0.2; Langevin at one small noise
    # level from uniform starts keeps the starts' split (each chain stays in its basin), annealing recovers 0.8
    mix = GaussianMixture([0.8, 0.2], [[-4.0, 0.0], [4.0, 0.0]], [np.eye(2) * 0.25] * 2)
    p = VEProcess(0.05, 20.0)
    den = GaussianMixtureDenoiser(mix, p, "epsilon")
    x_T = np.random.default_rng(0).uniform(-8, 8, (2000, 2))
    plain = sample(den, (2000, 2), p, method="langevin", steps=1, x_T=x_T, rng=1, sigma_max=0.05,
                   sampler_options={"n_steps": 500, "eps": 0.5 * 0.05 ** 2}, timestep_spacing="uniform")
    annealed = sample(den, (2000, 2), p, method="langevin", steps=30, rng=1, sampler_options={"n_steps": 20})
    assert abs(np.mean(plain[:, 0] < 0) - 0.5) < 0.05                 # the starts' 50/50, not 80/20
    assert abs(np.mean(annealed[:, 0] < 0) - 0.8) < 0.03


@pytest.mark.parametrize("process, t0, t1", [(VPProcess(), 1e-3, 1.0), (VEProcess(0.01, 10.0), 0.0, 1.0)])
def test_euler_maruyama_matches_the_closed_form_marginal(process, t0, t1):
    # start at x(t0) = alpha(t0) x0 + sigma(t0) eps with x0 = 1.5: x(t1) ~ N(alpha(t1) x0, sigma(t1)^2)
    rng = np.random.default_rng(0)
    a0, s0 = (float(v) for v in process.alpha_sigma(t0))
    a1, s1 = (float(v) for v in process.alpha_sigma(t1))
    x = euler_maruyama_forward(process, a0 * 1.5 + s0 * rng.standard_normal((40_000, 1)), t0, t1, 500, rng=1)
    assert abs(x.mean() - a1 * 1.5) < 4 * s1 / np.sqrt(len(x)) + 0.01 * s1
    assert abs(x.std() / s1 - 1) < 0.02
