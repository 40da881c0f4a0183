"""The equations chapters 17-19 state (flow matching; straight paths and few steps; flow matching on digits), each
checked on its own."""

import numpy as np
import pytest

from tinydiff.analytic import GaussianMixture, GaussianMixtureDenoiser
from tinydiff.flow import ot_pairing, straightness, velocity_target
from tinydiff.processes import LinearInterpolant, VPProcess, from_x0_eps, to_x0_eps
from tinydiff.samplers import sample
from tinydiff.schedules import NoiseSchedule

MIX = GaussianMixture(weights=[0.5, 0.5], means=[[-1.5, 0.0], [1.5, 0.5]], covs=[np.eye(2) * 0.2] * 2)
LIN = LinearInterpolant()


# ---- chapter 17 ----------------------------------------------------------------------------------------------------
def test_linear_interpolant_moves_each_pair_on_a_straight_line_at_constant_velocity():
    """x_t = (1 - t) x0 + t eps, u = d x_t/dt = eps - x0 at every t."""
    rng = np.random.default_rng(0)
    x0, eps = rng.standard_normal((2, 3, 2))
    ts = np.linspace(0, 1, 6)
    xs = np.stack([LIN.q_sample(x0, np.full(3, t), eps) for t in ts])        # (6, 3, 2)
    np.testing.assert_allclose(np.diff(xs, axis=0) / np.diff(ts)[:, None, None], np.broadcast_to(eps - x0, (5, 3, 2)))
    np.testing.assert_allclose(velocity_target(LIN, x0, eps, np.full(3, 0.3)), eps - x0)


def test_marginal_velocity_is_the_conditional_mean_of_the_target():
    """v(x, t) = E[eps - x0 | x_t = x]: a Monte-Carlo average over pairs landing near x agrees with the exact field."""
    rng = np.random.default_rng(1)
    n, t = 400_000, 0.5
    x0 = MIX.sample(n, rng=rng)
    eps = rng.standard_normal(x0.shape)
    x_t = LIN.q_sample(x0, np.full(n, t), eps)
    point = np.array([[0.3, 0.2]])
    near = np.linalg.norm(x_t - point, axis=1) < 0.05
    mc = (eps - x0)[near].mean(axis=0)
    exact = GaussianMixtureDenoiser(MIX, LIN, "velocity")(point, np.array([t]))[0]
    np.testing.assert_allclose(mc, exact, atol=0.08)


def test_conditional_loss_is_minimised_by_the_marginal_velocity():
    """L_CFM(v_theta) = L_CFM(v) + E||v_theta - v||^2: a perturbed field has a larger conditional loss, by exactly
    the squared perturbation (Lipman et al. 2023, Thm. 2), up to Monte-Carlo error."""
    rng = np.random.default_rng(2)
    n = 200_000
    x0 = MIX.sample(n, rng=rng)
    eps = rng.standard_normal(x0.shape)
    t = rng.random(n)
    x_t = LIN.q_sample(x0, t, eps)
    v = GaussianMixtureDenoiser(MIX, LIN, "velocity")(x_t, t)
    u = eps - x0
    delta = np.array([0.3, -0.2])
    gap = np.mean(np.sum((v + delta - u) ** 2, 1)) - np.mean(np.sum((v - u) ** 2, 1))
    assert abs(gap - np.sum(delta ** 2)) < 0.02


def test_linear_interpolant_sde_coefficients():
    """f = alpha'/alpha = -1/(1 - t), g^2 = d sigma^2/dt - 2 f sigma^2 = 2t/(1 - t)."""
    t = np.array([0.1, 0.5, 0.9])
    f, g2 = LIN.sde(t)
    np.testing.assert_allclose(f, -1 / (1 - t))
    np.testing.assert_allclose(g2, 2 * t / (1 - t))


def test_linear_interpolant_log_snr():
    t = np.array([0.1, 0.5, 0.9])
    np.testing.assert_allclose(LIN.log_snr(t), 2 * np.log((1 - t) / t))


def test_a_vp_path_is_the_linear_interpolant_rescaled():
    """x_t = a x0 + s eps (VP)  =>  y = x_t / (a + s) = (1 - u) x0 + u eps with u = s / (a + s)."""
    vp = VPProcess()
    rng = np.random.default_rng(3)
    x0, eps = rng.standard_normal((2, 4, 2))
    for t in (0.2, 0.6, 0.95):
        a, s = (float(v) for v in vp.alpha_sigma(np.float64(t)))
        u = s / (a + s)
        np.testing.assert_allclose(vp.q_sample(x0, np.full(4, t), eps) / (a + s), LIN.q_sample(x0, np.full(4, u), eps))


# ---- chapter 18 ----------------------------------------------------------------------------------------------------
def test_ot_pairing_never_costs_more_than_independent_pairs():
    rng = np.random.default_rng(4)
    for _ in range(5):
        x0, eps = MIX.sample(64, rng=rng), rng.standard_normal((64, 2))
        assert np.sum((x0 - eps[ot_pairing(x0, eps)]) ** 2) <= np.sum((x0 - eps) ** 2)


def test_straightness_of_a_straight_path_at_varying_speed_is_positive():
    """S penalises speed changes too: x(t) = t^2 a has x(1) - x(0) = a but dx/dt = 2 t a; S = |a|^2 / 3."""
    a = np.array([[1.0, 2.0]])
    ts = np.linspace(1, 0, 20001)
    xs = ts[:, None, None] ** 2 * a[None]
    assert abs(straightness(ts, xs) - np.sum(a ** 2) / 3) < 1e-6


def test_one_euler_step_is_exact_on_a_straight_flow():
    """If every ODE path is a straight constant-speed line (S = 0), x_0 = x_1 - v(x_1, 1) in one step: a point
    mass's exact field is such a flow (x0 fixed: x_t = (1 - t) m + t eps, v = (x - m) / t)."""
    m = np.array([1.0, -0.5])
    point = GaussianMixture([1.0], [m], [np.zeros((2, 2))])
    v = GaussianMixtureDenoiser(point, LIN, "velocity")
    z = np.random.default_rng(5).standard_normal((10, 2))
    np.testing.assert_allclose(z - v(z, np.ones(10)), np.broadcast_to(m, (10, 2)), atol=1e-12)


@pytest.mark.parametrize("h", [0.5, 0.25])
def test_progressive_distillation_target_reproduces_two_teacher_steps(h):
    """Salimans & Ho (2022) for a velocity model: the student's target velocity over a step 2h is
    (x_t - x_{t - 2h}) / (2h), where x_{t - 2h} is two Euler steps of the teacher; one student step then lands there."""
    from tinydiff.distill import distillation_target

    v = GaussianMixtureDenoiser(MIX, LIN, "velocity")
    x = np.random.default_rng(6).standard_normal((8, 2))
    t = np.full(8, 1.0)
    target = distillation_target(v, x, t, 2 * h)                            # the teacher may be an exact field
    mid = x - h * v(x, t)
    two = mid - h * v(mid, t - h)
    np.testing.assert_allclose(x - 2 * h * target, two, atol=1e-12)


# ---- chapter 19 ----------------------------------------------------------------------------------------------------
def _velocity_of_eps(x, eps, t):
    """u = eps - x0 with x0 = (x - t eps) / (1 - t): the velocity an eps prediction implies on the linear interpolant."""
    x0, eps = to_x0_eps(x, eps, "epsilon", 1 - t, t)
    return from_x0_eps(x0, eps, "velocity", 1 - t, t, -1.0, 1.0)


@pytest.mark.parametrize("s", [0.0, 1.0, 2.0, 5.0])
def test_guiding_the_velocity_is_guiding_eps(s):
    """u~ = u(x, none) + s (u(x, y) - u(x, none)) is the velocity of eps~ = eps(x, none) + s (eps(x, y) - eps(x, none)):
    at fixed (x, t) the velocity is affine in eps, u = (eps - x) / (1 - t), with the same coefficients for both
    halves, so CFG means the same in either parametrisation (and for the score, -eps / sigma)."""
    rng = np.random.default_rng(7)
    x, eps_c, eps_u = rng.standard_normal((3, 5, 4))
    t = 0.6
    guided_eps = eps_u + s * (eps_c - eps_u)
    u_c, u_u = _velocity_of_eps(x, eps_c, t), _velocity_of_eps(x, eps_u, t)
    np.testing.assert_allclose(u_u + s * (u_c - u_u), _velocity_of_eps(x, guided_eps, t), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(_velocity_of_eps(x, eps_c, t), (eps_c - x) / (1 - t), rtol=1e-12)


def test_flow_loss_is_an_eps_loss_weighted_by_one_over_one_minus_t_squared():
    """At the same x_t: |u_hat - u|^2 = |eps_hat - eps|^2 / (1 - t)^2 (u_hat, u the velocities of eps_hat, eps)."""
    rng = np.random.default_rng(8)
    x0, eps, eps_hat = rng.standard_normal((3, 6, 3))
    for t in (0.1, 0.5, 0.9):
        x = LIN.q_sample(x0, np.full(6, t), eps)
        np.testing.assert_allclose(_velocity_of_eps(x, eps, t), eps - x0, atol=1e-12)
        lhs = np.sum((_velocity_of_eps(x, eps_hat, t) - (eps - x0)) ** 2, axis=1)
        np.testing.assert_allclose(lhs, np.sum((eps_hat - eps) ** 2, axis=1) / (1 - t) ** 2, rtol=1e-10)


def test_flow_matching_weighting_in_log_snr_is_half_exp_minus_lambda_over_two():
    """Kingma & Gao (2023): L = E_t[w(lambda_t) (-d lambda/dt) |eps_hat - eps|^2]. With t ~ U[0, 1] on the linear
    interpolant, 1 / (1 - t)^2 = w(lambda) (-d lambda/dt) with w(lambda) = exp(-lambda / 2) / 2, lambda = 2 log((1-t)/t).
    The simple DDPM loss (w (-d lambda/dt) = 1 per unit t) is the other choice of the same family."""
    t = np.linspace(0.05, 0.95, 19)
    h = 1e-6
    dlam = (LIN.log_snr(t + h) - LIN.log_snr(t - h)) / (2 * h)
    w = 0.5 * np.exp(-LIN.log_snr(t) / 2)
    np.testing.assert_allclose(w * -dlam, 1 / (1 - t) ** 2, rtol=1e-6)


def test_a_vp_step_sits_on_the_linear_interpolant_at_the_same_log_snr():
    """Step t of a discrete VP schedule (a = sqrt(ab), s = sqrt(1 - ab)) is the interpolant at u = s / (a + s): both
    have lambda = log(ab / (1 - ab)), and y = x_t / (a + s) is the interpolant's state there."""
    sched = NoiseSchedule.linear(1000)
    ab = sched.alphas_cumprod[[0, 250, 500, 999]]
    a, s = np.sqrt(ab), np.sqrt(1 - ab)
    np.testing.assert_allclose(LIN.log_snr(s / (a + s)), np.log(ab / (1 - ab)), rtol=1e-10)


def test_the_same_gaussian_path_gives_the_same_noise_to_data_map():
    """The exact eps denoiser on a VP schedule (DDIM, many steps) and the exact velocity on the linear interpolant
    (Heun in t) follow one probability-flow ODE: from the same start noise they land on the same points, up to the
    VP start's finite noise level (u = 0.994 at step 999 of the linear schedule) and discretisation."""
    sched = NoiseSchedule.linear(1000)
    z = np.random.default_rng(9).standard_normal((200, 2))
    x_vp = sample(GaussianMixtureDenoiser(MIX, sched, "epsilon"), z.shape, sched, method="ddim", steps=500, x_T=z)
    x_fm = sample(GaussianMixtureDenoiser(MIX, LIN, "velocity"), z.shape, LIN, method="heun-t", steps=200, x_T=z,
                  prediction_type="velocity")
    other = np.roll(x_fm, 1, axis=0)                                        # the flow's samples, paired wrongly
    paired, unpaired = np.linalg.norm(x_vp - x_fm, axis=1), np.linalg.norm(x_vp - other, axis=1)
    assert np.median(paired) < 0.02 < 1.0 < np.median(unpaired)     # measured 0.0035 and 1.3
