"""Samplers (tinydiff.samplers), checked against the exact denoiser of the 8-Gaussian mixture.

With the exact denoiser the only errors left are the discretisation of each method and sampling noise; the step
counts are chosen so that the first is below the resolution of the checks (n = 1000 points: an MMD permutation test
at level 0.01, mode weights within 0.04 (~3.7 standard errors), within-mode standard deviation (pooled over the
modes, standard error ~1.6%) within 15%).

The within-mode std of these narrow modes (0.1, against sigma_0 ~ 0.03) is where discretisation shows first:
first-order methods (ddim, euler) at 100 steps give ~0.091-0.094, dpm++2m at 50 steps 0.093-0.098 (T = 100,
measured with n = 4000). Two effects are larger still and are avoided here:
- the last step returns E[x0 | x_{t_last}], which shrinks each mode by about s / sqrt(s^2 + sigma_{t_last}^2): with
  "trailing" spacing and 50 of 100 steps t_last = 1 and the modes come out ~10% too narrow, so the few-step methods
  use "linspace" (t_last = 0);
- DDPM with the fixed_small variance under-disperses when its steps are coarse (within-mode std 0.081 / 0.089 / 0.091
  / 0.098 for T = 100 / 200 / 400 / 1000, measured), so the DDPM check uses T = 400.
"""

import numpy as np
import pytest

from tinydiff.analytic import GaussianMixture, GaussianMixtureDenoiser
from tinydiff.data.toy2d import gaussian_mixture_params
from tinydiff.diffusion import q_posterior
from tinydiff.metrics.points import mmd_test
from tinydiff.samplers import (
    ddim_sigma, ddim_step, dpmpp_2m_step, euler_step, invert, respace, sample, threshold_x0, timesteps,
)
from tinydiff.schedules import NoiseSchedule

MIX = GaussianMixture.from_params(gaussian_mixture_params("8gaussians"))  # std 0.1 around 8 centres at radius 2
REFERENCE = MIX.sample(1000, rng=12345)
SCHEDULES = {"linear": NoiseSchedule.linear(T=100), "cosine": NoiseSchedule.cosine(T=100)}
STEPS = {"ddpm": None, "ddim": 100, "dpm++2m": 50, "heun": 50, "euler": None}  # euler: every step with sigma <= 80


def mode_stats(x):
    """Fraction of points nearest each centre, and the within-mode standard deviation pooled over modes and axes."""
    k = np.argmin(((x[:, None, :] - MIX.means[None]) ** 2).sum(-1), axis=1)
    weights = np.bincount(k, minlength=8) / len(x)
    return weights, float(np.sqrt(np.mean((x - MIX.means[k]) ** 2)))


# ---- time steps -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("spacing, expected", [
    ("linspace", [999, 888, 777, 666, 555, 444, 333, 222, 111, 0]),
    ("leading", [900, 800, 700, 600, 500, 400, 300, 200, 100, 0]),
    ("trailing", [999, 899, 799, 699, 599, 499, 399, 299, 199, 99]),
])
def test_spacing_is_lin_et_al_table_2_minus_one(spacing, expected):
    # Lin et al. (2023), Table 2, T = 1000, 10 steps, in their 1-based indices: linspace 1, 112, ..., 1000;
    # leading 1, 101, ..., 901; trailing 100, 200, ..., 1000.
    np.testing.assert_array_equal(timesteps(NoiseSchedule.linear(1000), 10, spacing), expected)


@pytest.mark.parametrize("spacing", ["linspace", "leading", "trailing"])
def test_steps_none_visits_every_step(spacing):
    np.testing.assert_array_equal(timesteps(SCHEDULES["linear"], None, spacing), np.arange(99, -1, -1))


@pytest.mark.parametrize("spacing", ["linspace", "leading", "trailing"])
def test_spaced_steps_are_distinct_and_descending(spacing):
    for T in (7, 100, 1000):
        for steps in (1, 2, 3, T // 3 + 1, T - 1, T):
            ts = timesteps(T, steps, spacing)
            assert len(ts) == steps and np.all(np.diff(ts) < 0) and ts.min() >= 0 and ts.max() < T


@pytest.mark.ex8_3   # a debugging exercise's planted bug fails this test in a student copy
def test_respacing_all_steps_keeps_the_schedule():
    s = SCHEDULES["cosine"]
    np.testing.assert_allclose(respace(s, np.arange(s.T)).betas, s.betas, rtol=1e-10)


@pytest.mark.ex8_3   # a debugging exercise's planted bug fails this test in a student copy
def test_respaced_chain_has_the_alpha_bars_of_the_visited_steps():
    s, ts = SCHEDULES["linear"], timesteps(SCHEDULES["linear"], 7, "trailing")
    np.testing.assert_allclose(respace(s, ts).alphas_cumprod, s.alphas_cumprod[np.sort(ts)], rtol=1e-12)


# ---- each method reproduces the data ----------------------------------------------------------------------------
@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize("method", list(STEPS))
def test_method_with_exact_denoiser_reproduces_the_mixture(method, schedule):
    s = NoiseSchedule.from_name(schedule, T=400) if method == "ddpm" else SCHEDULES[schedule]
    x = sample(GaussianMixtureDenoiser(MIX, s), (1000, 2), s, method=method, steps=STEPS[method],
               timestep_spacing="linspace", rng=1)
    _, p = mmd_test(x, REFERENCE, n_permutations=100, rng=0)
    weights, std = mode_stats(x)
    assert p > 0.01, f"MMD test rejects: p = {p}"
    np.testing.assert_allclose(weights, 1 / 8, atol=0.04)
    np.testing.assert_allclose(std, 0.1, rtol=0.15)


@pytest.mark.parametrize("method", list(STEPS))
def test_samples_do_not_depend_on_the_prediction_type(method):
    s = SCHEDULES["cosine"]
    runs = [sample(GaussianMixtureDenoiser(MIX, s, p), (64, 2), s, method=method, steps=20, prediction_type=p, rng=3)
            for p in ("epsilon", "sample", "v_prediction")]
    np.testing.assert_allclose(runs[1], runs[0], atol=1e-8)
    np.testing.assert_allclose(runs[2], runs[0], atol=1e-8)


def test_zero_terminal_snr_with_v_prediction_samples_finite_points():
    s = NoiseSchedule.linear(T=100).rescale_zero_terminal_snr()
    model = GaussianMixtureDenoiser(MIX, s, "v_prediction")
    for method in STEPS:
        x = sample(model, (200, 2), s, method=method, steps=20, prediction_type="v_prediction", rng=0)
        assert np.all(np.isfinite(x)), method


@pytest.mark.parametrize("method", ["euler", "heun"])
@pytest.mark.parametrize("sigma_max", [None, np.inf])
def test_cosine_schedule_ode_samplers_stay_finite(method, sigma_max):
    s = NoiseSchedule.cosine(T=1000)  # ends at alpha_bar ~ 1e-9, sigma ~ 3e4
    x = sample(GaussianMixtureDenoiser(MIX, s), (500, 2), s, method=method, steps=25, sigma_max=sigma_max, rng=0)
    assert np.all(np.isfinite(x))
    np.testing.assert_allclose(mode_stats(x)[0], 1 / 8, atol=0.06)


def test_euler_and_heun_start_at_the_largest_step_below_sigma_max():
    s = NoiseSchedule.cosine(T=1000)
    _, traj = sample(GaussianMixtureDenoiser(MIX, s), (4, 2), s, method="euler", steps=10, rng=0,
                     return_trajectory=True)
    t0 = traj.t[0]
    assert s.sigmas[t0] <= 80.0 < s.sigmas[t0 + 1]


# ---- identities between methods ---------------------------------------------------------------------------------
def test_ddim_with_eta_one_is_ddpm_with_fixed_small_variance():
    s = SCHEDULES["linear"]
    model = GaussianMixtureDenoiser(MIX, s)
    for steps in (None, 10):
        ddpm = sample(model, (50, 2), s, method="ddpm", steps=steps, rng=5, return_trajectory=True)[1]
        ddim = sample(model, (50, 2), s, method="ddim", eta=1.0, steps=steps, rng=5, return_trajectory=True)[1]
        np.testing.assert_allclose(ddim.x, ddpm.x, atol=1e-10)


def test_ddim_eta_one_variance_is_the_posterior_variance():
    s = SCHEDULES["linear"]
    for t in (1, 50, 99):
        _, var = q_posterior(s, np.zeros((1, 1)), np.zeros((1, 1)), np.array([t]))
        assert np.isclose(ddim_sigma(s.alphas_cumprod[t], s.alphas_cumprod[t - 1], 1.0) ** 2, var.item())


def test_one_step_of_ddim_euler_and_first_order_dpm_solver_agree():
    rng = np.random.default_rng(6)
    ab_t, ab_prev = 0.2, 0.7
    x0, eps = rng.standard_normal((5, 2)), rng.standard_normal((5, 2))
    x_t = np.sqrt(ab_t) * x0 + np.sqrt(1 - ab_t) * eps
    ddim = ddim_step(x0, eps, ab_prev, 0.0, None)
    np.testing.assert_allclose(euler_step(x_t, eps, ab_t, ab_prev), ddim, rtol=1e-12)
    np.testing.assert_allclose(dpmpp_2m_step(x_t, x0, None, ab_t, ab_prev, None), ddim, rtol=1e-12)


def test_last_step_returns_the_x0_estimate():
    s = SCHEDULES["linear"]
    for method in STEPS:
        x, traj = sample(GaussianMixtureDenoiser(MIX, s), (8, 2), s, method=method, steps=10, rng=0,
                         return_trajectory=True)
        np.testing.assert_allclose(x, traj.x0[-1], atol=1e-12)
        assert traj.t[-1] == -1 and traj.x.shape == (11, 8, 2) and traj.x0.shape == (10, 8, 2)


def test_final_step_none_stops_at_the_last_sampled_step():
    s = SCHEDULES["linear"]
    x, traj = sample(GaussianMixtureDenoiser(MIX, s), (8, 2), s, method="ddim", steps=10, final_step="none", rng=0,
                     return_trajectory=True)
    assert traj.t[-1] == timesteps(s, 10)[-1] and traj.nfe == 9
    np.testing.assert_array_equal(x, traj.x[-1])


def test_heun_calls_the_model_twice_per_step_except_the_last():
    s = SCHEDULES["linear"]
    _, traj = sample(GaussianMixtureDenoiser(MIX, s), (8, 2), s, method="heun", steps=10, rng=0, return_trajectory=True)
    assert traj.nfe == 19


# ---- guidance ---------------------------------------------------------------------------------------------------
def test_guidance_scale_one_is_the_conditional_model():
    s = SCHEDULES["linear"]
    model = GaussianMixtureDenoiser(MIX, s)
    x = sample(model, (200, 2), s, method="ddim", y=np.full(200, 3), guidance_scale=1.0, rng=0)  # all 100 steps
    np.testing.assert_allclose(x.mean(0), MIX.means[3], atol=0.03)
    np.testing.assert_allclose(x.std(0), 0.1, rtol=0.2)


def test_guidance_scale_zero_is_the_unconditional_model():
    s = SCHEDULES["linear"]
    model = GaussianMixtureDenoiser(MIX, s)
    guided = sample(model, (50, 2), s, method="ddim", steps=20, y=np.full(50, 3), guidance_scale=0.0, rng=0)
    np.testing.assert_allclose(guided, sample(model, (50, 2), s, method="ddim", steps=20, rng=0), atol=1e-10)


def test_guidance_is_one_batched_call_and_independent_of_prediction_type():
    s = SCHEDULES["cosine"]
    runs = []
    for p in ("epsilon", "sample", "v_prediction"):
        model = GaussianMixtureDenoiser(MIX, s, p)
        runs.append(sample(model, (30, 2), s, method="dpm++2m", steps=15, prediction_type=p, y=np.arange(30) % 8,
                           guidance_scale=3.0, rng=0))
        assert model.calls == 15
    np.testing.assert_allclose(runs[1], runs[0], atol=1e-8)
    np.testing.assert_allclose(runs[2], runs[0], atol=1e-8)


# ---- inversion, clipping ----------------------------------------------------------------------------------------
def test_ddim_inversion_then_sampling_returns_the_input():
    # the fixed-point iterations contract slowly where one step spans a huge range of sigma (trailing spacing on a
    # cosine schedule starts at sigma ~ 3e4 and stalls near 1e-4); with leading spacing 16 iterations reach 1e-9
    s = SCHEDULES["cosine"]
    model = GaussianMixtureDenoiser(MIX, s)
    x0 = MIX.sample(20, rng=7)
    noise = invert(model, x0, s, method="ddim", steps=50, timestep_spacing="leading", fixed_point_iters=16)
    back = sample(model, x0.shape, s, method="ddim", steps=50, timestep_spacing="leading", x_T=noise)
    np.testing.assert_allclose(back, x0, atol=1e-6)


def test_plain_ddim_inversion_is_approximate_and_fixed_point_iterations_refine_it():
    s = SCHEDULES["cosine"]
    model = GaussianMixtureDenoiser(MIX, s)
    x0 = MIX.sample(20, rng=7)
    errors = [np.abs(sample(model, x0.shape, s, method="ddim", steps=50,
                            x_T=invert(model, x0, s, steps=50, fixed_point_iters=k)) - x0).max() for k in (0, 2)]
    assert errors[0] < 0.1 and errors[1] < errors[0] / 10


@pytest.mark.parametrize("clip", [1.0, "dynamic"])
def test_clipping_keeps_the_x0_estimate_in_range(clip):
    s = SCHEDULES["linear"]
    x = sample(GaussianMixtureDenoiser(MIX, s), (100, 2), s, method="ddim", steps=10, clip=clip, rng=0)
    assert np.abs(x).max() <= 1.0 + 1e-12


def test_dynamic_thresholding_rescales_by_the_percentile():
    x0 = np.array([[0.5, 3.0, -4.0, 1.0]])
    s = np.quantile(np.abs(x0), 0.995)
    np.testing.assert_allclose(threshold_x0(x0, "dynamic"), np.clip(x0, -s, s) / s)
    np.testing.assert_array_equal(threshold_x0(np.array([[0.5, -0.2]]), "dynamic"), [[0.5, -0.2]])  # s = max(., 1)


# ---- errors -----------------------------------------------------------------------------------------------------
S = SCHEDULES["linear"]
MODEL = GaussianMixtureDenoiser(MIX, S)


@pytest.mark.parametrize("kwargs, match", [
    ({"steps": 101}, r"1\.\.100"),
    ({"steps": 0}, r"1\.\.100"),
    ({"method": "plms"}, r"'ddpm', 'ddim', 'dpm\+\+2m', 'euler', 'heun'"),
    ({"timestep_spacing": "even"}, "'linspace', 'leading', 'trailing'"),
    ({"prediction_type": "noise"}, "'epsilon', 'sample', 'v_prediction'"),
    ({"variance": "learned"}, "fixed_small"),
    ({"x_T": np.zeros((3, 2))}, r"x_T has shape \(3, 2\) but shape=\(4, 2\)"),
    ({"clip": -1.0}, "clip must be"),
    ({"y": np.zeros(4, dtype=np.int64), "guidance_scale": 2.0, "null_label": None, "model": lambda x, t, y: x},
     "null_label"),
])
def test_bad_arguments_raise_errors_that_name_the_valid_values(kwargs, match):
    model = kwargs.pop("model", MODEL)
    with pytest.raises(ValueError, match=match):
        sample(model, (4, 2), S, **{"method": "ddim", "steps": 5, **kwargs})


def test_model_returning_the_wrong_shape_is_named():
    with pytest.raises(ValueError, match=r"returned shape \(4, 3\).*expected \(4, 2\)"):
        sample(lambda x, t: np.zeros((4, 3)), (4, 2), S, method="ddim", steps=5)


def test_model_returning_nan_is_caught():
    with pytest.raises(FloatingPointError, match="NaN"):
        sample(lambda x, t: np.full_like(x, np.nan), (4, 2), S, method="ddim", steps=5)


def test_zero_terminal_snr_heun_without_sigma_max_is_refused():
    s = NoiseSchedule.linear(T=100).rescale_zero_terminal_snr()
    with pytest.raises(ValueError, match="sigma_max"):
        sample(GaussianMixtureDenoiser(MIX, s, "v_prediction"), (4, 2), s, method="heun", steps=5,
               prediction_type="v_prediction", sigma_max=np.inf)


def test_nfe_table_reports_one_row_per_method_and_step_count():
    from tinydiff.bench_nfe import nfe_table
    s = SCHEDULES["linear"]
    rows = nfe_table(GaussianMixtureDenoiser(MIX, s), REFERENCE[:100], s, ["ddim", "heun"], [2, 4], n=100, mixture=MIX)
    assert [(r["method"], r["steps"], r["nfe"]) for r in rows] == [("ddim", 2, 2), ("ddim", 4, 4), ("heun", 2, 3),
                                                                   ("heun", 4, 7)]
    assert all(np.isfinite([r["mmd2"], r["w2"], r["mode_std"], r["weight_tv"]]).all() for r in rows)
