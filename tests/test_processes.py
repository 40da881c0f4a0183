"""Noising processes (tinydiff.processes) and the samplers on top of them.

The discrete VP path must give the same bits as the samplers did before processes existed (a stored reference); every
continuous process must have the marginals, derivatives and SDE coefficients its docstring states; every sampler must
walk every process to the right distribution with the exact mixture denoiser.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

from tinydiff.analytic import GaussianMixture, GaussianMixtureDenoiser
from tinydiff.processes import (PREDICTIONS, EDMProcess, LinearInterpolant, VEProcess, VPProcess, as_process,
                                from_x0_eps, grid, to_x0_eps)
from tinydiff.samplers import METHODS, SAMPLERS, TIME_METHODS, Stepper, ddim_step, sample
from tinydiff.schedules import NoiseSchedule

DATA = Path(__file__).parent / "data"
PROCESSES = [VPProcess(), VEProcess(), EDMProcess(), LinearInterpolant()]
IDS = [type(p).__name__ for p in PROCESSES]
MIX = GaussianMixture(weights=[0.5, 0.5], means=[[-2.0, 0.0], [2.0, 0.0]], covs=[np.eye(2) * 0.1] * 2)


def _times(p, n=7):
    return np.linspace(p.t_min + 0.05 * (p.t_max - p.t_min), p.t_max - 0.05 * (p.t_max - p.t_min), n)


# ---- the discrete path is unchanged -------------------------------------------------------------------------------
def test_discrete_samplers_give_the_same_bits_as_before_processes():
    sys.path.insert(0, str(DATA))
    try:
        import make_sampler_reference
    finally:
        sys.path.remove(str(DATA))
    ref = np.load(DATA / "sampler_reference.npz")
    new = make_sampler_reference.run()
    assert sorted(new) == sorted(ref.files)
    differ = [k for k in ref.files if not np.array_equal(new[k], ref[k])]
    assert not differ, f"{len(differ)} of {len(ref.files)} cases changed, e.g. {differ[:3]}"


def test_noise_schedule_is_a_variance_preserving_process():
    s = NoiseSchedule.cosine(100)
    t = np.array([0, 10, 99])
    alpha, sigma = s.alpha_sigma(t)
    np.testing.assert_array_equal(alpha**2 + sigma**2 - 1.0 < 1e-15, True)
    np.testing.assert_array_equal(s.alpha_bar(t), s.alphas_cumprod[t])
    assert s.discrete and s.variance_preserving


# ---- each process ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("p", PROCESSES, ids=IDS)
def test_derivatives_match_finite_differences(p):
    t, h = _times(p), 1e-6 * (p.t_max - p.t_min)
    (a1, s1), (a0, s0) = p.alpha_sigma(t + h), p.alpha_sigma(t - h)
    da, ds = p.derivatives(t)
    np.testing.assert_allclose(da, (a1 - a0) / (2 * h), rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(ds, (s1 - s0) / (2 * h), rtol=1e-5, atol=1e-8)


def test_vp_process_sde_is_song_et_al_eq_11():
    """f = -beta(t)/2 and g^2 = beta(t), beta(t) = beta_min + t (beta_max - beta_min)."""
    p, t = VPProcess(), np.linspace(0.01, 1.0, 9)
    f, g2 = p.sde(t)
    beta = 0.1 + t * (20.0 - 0.1)
    np.testing.assert_allclose(f, -beta / 2, rtol=1e-12)
    np.testing.assert_allclose(g2, beta, rtol=1e-9)


def test_ve_process_sde_has_no_drift_and_g2_is_d_sigma2_dt():
    p, t = VEProcess(0.01, 50.0), np.linspace(0.0, 1.0, 5)
    f, g2 = p.sde(t)
    sigma = p.alpha_sigma(t)[1]
    np.testing.assert_array_equal(f, 0.0)
    np.testing.assert_allclose(g2, 2 * sigma**2 * np.log(50.0 / 0.01), rtol=1e-12)


@pytest.mark.parametrize("p", PROCESSES, ids=IDS)
def test_q_sample_has_the_stated_marginal(p):
    rng = np.random.default_rng(0)
    n, t = 200_000, p.t_min + 0.3 * (p.t_max - p.t_min)
    x0 = np.full((n, 1), 1.5)
    x_t = p.q_sample(x0, np.full(n, t), rng.standard_normal((n, 1)))
    alpha, sigma = (float(v) for v in p.alpha_sigma(np.float64(t)))
    assert abs(x_t.mean() - 1.5 * alpha) < 5 * sigma / np.sqrt(n)
    assert abs(x_t.std() / sigma - 1) < 0.01


@pytest.mark.parametrize("p", PROCESSES, ids=IDS)
def test_noise_level_inverse(p):
    t = _times(p)
    np.testing.assert_allclose(p.t_of_noise_level(p.noise_level(t)), t, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("p", PROCESSES, ids=IDS)
def test_process_round_trips_through_a_dict(p):
    q = as_process(p.to_dict())
    t = _times(p)
    np.testing.assert_array_equal(q.alpha_sigma(t)[1], p.alpha_sigma(t)[1])


# ---- the conversions, once for any (alpha, sigma) ----------------------------------------------------------------------
@pytest.mark.parametrize("p", PROCESSES, ids=IDS)
@pytest.mark.parametrize("kind", PREDICTIONS)
def test_every_prediction_type_converts_back_to_x0_and_eps(p, kind):
    rng = np.random.default_rng(1)
    t = _times(p, 5)
    x0, eps = rng.standard_normal((2, 5, 3))
    col = lambda v: v[:, None]  # noqa: E731
    alpha, sigma = (col(v) for v in p.alpha_sigma(t))
    da, ds = (col(v) for v in p.derivatives(t))
    r = np.hypot(alpha, sigma)
    x = alpha * x0 + sigma * eps
    out = from_x0_eps(x0, eps, kind, alpha, sigma, da, ds, r)
    got_x0, got_eps = to_x0_eps(x, out, kind, alpha, sigma, da, ds, r)
    np.testing.assert_allclose(got_x0, x0, atol=1e-9)
    np.testing.assert_allclose(got_eps, eps, atol=1e-9)


def test_flow_velocity_is_eps_minus_x0():
    p, t = LinearInterpolant(), np.array([0.2, 0.7])
    x0, eps = np.ones((2, 2)), np.full((2, 2), 3.0)
    u = from_x0_eps(x0, eps, "velocity", *(v[:, None] for v in p.alpha_sigma(t)),
                    *(v[:, None] for v in p.derivatives(t)))
    np.testing.assert_array_equal(u, eps - x0)


def test_velocity_needs_a_continuous_process():
    with pytest.raises(ValueError, match="continuous process"):
        to_x0_eps(np.ones(2), np.ones(2), "velocity", 0.5, 0.5)


def test_exact_denoiser_velocity_is_the_time_derivative_of_the_flow():
    """The exact velocity moves the marginal along: E[u | x_t] = d/dt E[x_t | ...]; checked by transporting a sample
    with a fine Euler integration of u and comparing its moments with the exact marginal at the end time."""
    p = LinearInterpolant()
    v = GaussianMixtureDenoiser(MIX, p, "velocity")
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4000, 2))                                       # x_1 ~ N(0, I)
    ts = np.linspace(1.0, 0.5, 501)
    for t, t_next in zip(ts[:-1], ts[1:]):
        x = x + (t_next - t) * v(x, np.full(len(x), t))
    exact = MIX.sample(200_000, rng=3) * 0.5 + 0.5 * rng.standard_normal((200_000, 2))  # x_0.5 = x0/2 + eps/2
    assert abs(np.abs(x[:, 0]).mean() - np.abs(exact[:, 0]).mean()) < 0.03
    assert abs(x[:, 1].std() - exact[:, 1].std()) < 0.03


# ---- grids ----------------------------------------------------------------------------------------------------------
def test_karras_grid_is_eq_5():
    p = EDMProcess()
    ts = grid(p, 5, "karras")
    i = np.arange(5)
    expect = (80 ** (1 / 7) + i / 4 * (0.002 ** (1 / 7) - 80 ** (1 / 7))) ** 7
    np.testing.assert_allclose(ts, expect, rtol=1e-12)


def test_lambda_grid_is_uniform_in_log_snr():
    p = VPProcess()
    ts = grid(p, 6, "lambda")
    assert np.ptp(np.diff(p.log_snr(ts))) < 1e-8


def test_grid_stops_short_of_the_data_when_the_process_reaches_it():
    np.testing.assert_allclose(grid(LinearInterpolant(), 4, "uniform"), [1.0, 0.75, 0.5, 0.25])
    assert grid(EDMProcess(), 4, "uniform")[-1] == 0.002


def test_karras_grid_needs_a_finite_noise_range():
    with pytest.raises(ValueError, match="sigma_max"):
        grid(LinearInterpolant(), 4, "karras")
    ts = grid(LinearInterpolant(), 4, "karras", sigma_max=80.0)
    np.testing.assert_allclose(LinearInterpolant().noise_level(ts[[0, -1]]), [80.0, 0.002])


# ---- samplers on every process ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("p", PROCESSES, ids=IDS)
@pytest.mark.parametrize("method", METHODS + TIME_METHODS)
def test_every_sampler_walks_every_process_to_the_mixture(p, method):
    kind = "velocity" if isinstance(p, LinearInterpolant) else "sample"
    steps = {"ddpm": 200, "sde": 200, "euler-t": 500}.get(method, 60)   # stochastic first-order steps need more
                                                                        # levels; Euler in t on VE's sigma(t) ~500
    flow = isinstance(p, LinearInterpolant)
    # methods in the sigma frame cannot start at the flow's t = 1 (sigma = inf): they start at sigma_max = 80;
    # annealed Langevin uses Song & Ermon's geometric levels (uniform in log sigma)
    spacing = "karras" if method in ("euler", "heun", "edm", "sde", "pc") and flow else "trailing"
    spacing = "lambda" if method == "langevin" else spacing
    sigma_max = 80.0 if spacing in ("karras", "lambda") and flow else None
    x = sample(GaussianMixtureDenoiser(MIX, p, kind), (2000, 2), p, method=method, steps=steps, rng=0,
               prediction_type=kind, timestep_spacing=spacing, sigma_max=sigma_max)
    assert abs(np.abs(x[:, 0]).mean() - 2.0) < 0.05                          # the modes sit at +-2
    assert abs(x[:, 1].std() - np.sqrt(0.1)) < 0.03                          # within-mode std sqrt(0.1)
    assert abs((x[:, 0] > 0).mean() - 0.5) < 0.05                            # equal weights


def test_flow_euler_is_ddim_on_the_linear_interpolant():
    """x_{t'} = x_t + (t' - t) u equals DDIM's alpha' x0 + sigma' eps (Gao et al. 2024)."""
    p = LinearInterpolant()
    rng = np.random.default_rng(4)
    x0, eps = rng.standard_normal((2, 6, 2))
    t, t_next = 0.8, 0.55
    x = (1 - t) * x0 + t * eps
    euler = x + (t_next - t) * (eps - x0)
    ab_next, r_next = p.alpha_bar(t_next), p.scale(t_next)                  # DDIM works in the VP frame x / r
    ddim = r_next * ddim_step(x0, eps, ab_next, 0.0, None)
    np.testing.assert_allclose(euler, ddim, atol=1e-12)
    v = GaussianMixtureDenoiser(MIX, p, "velocity")
    a = sample(v, (50, 2), p, method="euler", steps=10, prediction_type="velocity", rng=1)
    b = sample(v, (50, 2), p, method="ddim", steps=10, prediction_type="velocity", rng=1)
    np.testing.assert_allclose(a, b, atol=1e-12)


def test_a_new_sampler_is_one_class_and_one_table_entry():
    class HalfEuler(Stepper):
        def step(self, x, s, x0, eps, noise):
            return ddim_step(x0, eps, s.ab_prev, 0.0, noise)

    SAMPLERS["half-euler"] = HalfEuler
    try:
        s = NoiseSchedule.cosine(100)
        m = GaussianMixtureDenoiser(MIX, s)
        np.testing.assert_array_equal(sample(m, (10, 2), s, method="half-euler", steps=5, rng=0),
                                      sample(m, (10, 2), s, method="ddim", steps=5, rng=0))
    finally:
        del SAMPLERS["half-euler"]


# ---- options that do not apply are errors ----------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, match", [(dict(method="ddpm", eta=0.5), "'ddim' only"),
                                           (dict(method="ddim", eta=1.5), r"\[0, 1\]"),
                                           (dict(method="ddim", variance="fixed_large"), "'ddpm' only"),
                                           (dict(method="foo"), "unknown method")])
def test_meaningless_options_are_refused(kwargs, match):
    s = NoiseSchedule.cosine(50)
    with pytest.raises(ValueError, match=match):
        sample(GaussianMixtureDenoiser(MIX, s), (4, 2), s, steps=5, **kwargs)


def test_empty_shape_is_refused():
    s = NoiseSchedule.cosine(50)
    with pytest.raises(ValueError, match="batch size"):
        sample(GaussianMixtureDenoiser(MIX, s), (), s, steps=5)


def test_continuous_process_needs_steps():
    p = EDMProcess()
    with pytest.raises(ValueError, match="steps is required"):
        sample(GaussianMixtureDenoiser(MIX, p, "sample"), (4, 2), p, prediction_type="sample")
