"""Flow matching (tinydiff.flow): the target, the loss, couplings, straightness, the exact velocity field, the
ODE samplers in t, training, checkpoints and reflow."""

import itertools

import numpy as np
import pytest

from tinydiff.analytic import GaussianMixture, GaussianMixtureDenoiser
from tinydiff.flow import (FlowNetwork, FlowTrainer, flow_matching_loss, generate_pairs, load_flow, ot_pairing,
                           reflow, straightness, velocity_target)
from tinydiff.nn.gradcheck import central_differences
from tinydiff.processes import EDMProcess, LinearInterpolant, VEProcess, VPProcess, to_x0_eps
from tinydiff.samplers import ddim_sigma, ddim_step, sample
from tinydiff.train import TrainConfig, Trainer

PROCESSES = [VPProcess(), VEProcess(), EDMProcess(), LinearInterpolant()]
IDS = [type(p).__name__ for p in PROCESSES]
MIX = GaussianMixture(weights=[0.3, 0.7], means=[[-2.0, 0.5], [1.5, -1.0]],
                      covs=[[[0.3, 0.1], [0.1, 0.2]], [[0.1, 0.0], [0.0, 0.4]]])


def _times(p, n=5):
    return np.linspace(p.t_min + 0.1 * (p.t_max - p.t_min), p.t_max - 0.1 * (p.t_max - p.t_min), n)


# ---- the target and the loss ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("p", PROCESSES, ids=IDS)
def test_velocity_target_is_the_time_derivative_of_the_path(p):
    rng = np.random.default_rng(0)
    x0, eps = rng.standard_normal((2, 5, 3))
    t, h = _times(p), 1e-6 * (p.t_max - p.t_min)
    fd = (p.q_sample(x0, t + h, eps) - p.q_sample(x0, t - h, eps)) / (2 * h)
    np.testing.assert_allclose(velocity_target(p, x0, eps, t), fd, rtol=1e-5, atol=1e-6)


def test_linear_interpolant_target_is_eps_minus_x0():
    rng = np.random.default_rng(1)
    x0, eps = rng.standard_normal((2, 4, 2))
    np.testing.assert_allclose(velocity_target(LinearInterpolant(), x0, eps, rng.random(4)), eps - x0)


def test_flow_matching_loss_gradient_matches_finite_differences():
    rng = np.random.default_rng(2)
    out, target = rng.standard_normal((2, 3, 2))
    loss, grad, per_sample = flow_matching_loss(out, target)
    assert np.isclose(loss, np.mean((out - target) ** 2)) and np.isclose(per_sample.mean(), loss)
    z = out.copy()
    fd = central_differences(lambda: flow_matching_loss(z, target)[0], z)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-9)


# ---- couplings and straightness -------------------------------------------------------------------------------------
def test_ot_pairing_is_the_cheapest_permutation():
    rng = np.random.default_rng(3)
    x0, eps = rng.standard_normal((2, 6, 2))
    cost = lambda perm: np.sum((x0 - eps[list(perm)]) ** 2)                   # noqa: E731
    best = min(itertools.permutations(range(6)), key=cost)
    pi = ot_pairing(x0, eps)
    assert sorted(pi) == list(range(6))
    assert np.isclose(cost(pi), cost(best))


def test_straightness_is_zero_for_straight_paths_at_constant_speed():
    ts = np.linspace(1, 0, 11)
    a, b = np.random.default_rng(4).standard_normal((2, 7, 2))
    xs = ts[:, None, None] * a + (1 - ts[:, None, None]) * b                   # straight, constant speed
    assert straightness(ts, xs) < 1e-24


def test_straightness_of_a_half_circle_is_its_known_integral():
    """x(t) = (cos(pi t), sin(pi t)): x(1) - x(0) = (-2, 0) per unit time, dx/dt = pi (-sin, cos);
    S = int_0^1 |(-2, 0) - dx/dt|^2 dt = 4 + pi^2 - 4 pi int sin(pi t) dt = pi^2 - 4."""
    ts = np.linspace(1, 0, 20001)
    xs = np.stack([np.cos(np.pi * ts), np.sin(np.pi * ts)], axis=1)[:, None, :]   # (S+1, 1, 2)
    assert abs(straightness(ts, xs) - (np.pi ** 2 - 4)) < 1e-4


# ---- the exact velocity field ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("p", PROCESSES, ids=IDS)
def test_exact_velocity_is_the_probability_flow_of_the_exact_score(p):
    """v(x, t) = f(t) x - g(t)^2 / 2 * grad log p_t(x), with f = alpha'/alpha, g^2 = d sigma^2/dt - 2 f sigma^2."""
    x = np.random.default_rng(5).standard_normal((40, 2)) * 2
    for t in _times(p):
        tt = np.full(len(x), t)
        v = GaussianMixtureDenoiser(MIX, p, "velocity")(x, tt)
        score = GaussianMixtureDenoiser(MIX, p, "score")(x, tt)
        f, g2 = p.sde(np.float64(t))
        np.testing.assert_allclose(v, f * x - 0.5 * g2 * score, rtol=1e-8, atol=1e-8)


def _marginal(p, t) -> GaussianMixture:
    """p_t of x_t = alpha x0 + sigma eps: means alpha mu_k, covariances alpha^2 S_k + sigma^2 I."""
    a, s = (float(v) for v in p.alpha_sigma(np.float64(t)))
    return GaussianMixture(MIX.weights, a * MIX.means, a * a * MIX.covs + s * s * np.eye(2))


@pytest.mark.parametrize("p", PROCESSES, ids=IDS)
def test_exact_velocity_satisfies_the_continuity_equation(p):
    """d p_t / dt + div(p_t v) = 0 at every x: the flow of v carries p_1 to p_0 through the path's marginals
    (finite differences in t and in x of the exact mixture density)."""
    v_field = GaussianMixtureDenoiser(MIX, p, "velocity")
    x = np.random.default_rng(6).standard_normal((30, 2))
    for t in _times(p, 3):
        dt, dx = 1e-5 * (p.t_max - p.t_min), 1e-5
        dp_dt = (np.exp(_marginal(p, t + dt).log_prob(x)) - np.exp(_marginal(p, t - dt).log_prob(x))) / (2 * dt)
        flux = lambda y: np.exp(_marginal(p, t).log_prob(y))[:, None] * v_field(y, np.full(len(y), t))  # noqa
        div = sum((flux(x + dx * e)[:, i] - flux(x - dx * e)[:, i]) / (2 * dx) for i, e in enumerate(np.eye(2)))
        scale = np.abs(dp_dt).max() + np.abs(div).max()
        np.testing.assert_allclose(dp_dt + div, 0.0, atol=1e-5 * scale)


def test_the_flow_of_the_exact_velocity_has_the_path_marginals():
    """Integrating dx/dt = v from N(0, I) at t = 1 (Heun in t, 100 steps) gives the data at t = 0 and, on the way,
    the marginal p_t of the path: means and covariances of the mixture (alpha mu_k, alpha^2 S_k + sigma^2 I)."""
    p = LinearInterpolant()
    x, traj = sample(GaussianMixtureDenoiser(MIX, p, "velocity"), (20000, 2), p, method="heun-t", steps=100,
                     prediction_type="velocity", rng=7, return_trajectory=True)
    for k in (40, 100):                                                        # t = 0.6, and the data (t = 0)
        t = 0.0 if k == 100 else traj.t[k]
        m = _marginal(p, t)
        mean = m.weights @ m.means
        cov = sum(w * (c + np.outer(mu - mean, mu - mean)) for w, mu, c in zip(m.weights, m.means, m.covs))
        np.testing.assert_allclose(traj.x[k].mean(0), mean, atol=0.03)
        np.testing.assert_allclose(np.cov(traj.x[k].T), cov, atol=0.06)


# ---- the ODE samplers in t ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("method, order", [("euler-t", 1), ("midpoint-t", 2), ("heun-t", 2)])
def test_ode_samplers_in_t_converge_at_their_order(method, order):
    """With the exact velocity, the RMS error of K uniform steps from t = 1 to the data falls like K^-order
    (measured against Heun with 2000 steps; from K = 32 to 64: 1.00 for Euler, 1.84 for midpoint and Heun)."""
    p = LinearInterpolant()
    v = GaussianMixtureDenoiser(MIX, p, "velocity")
    z = np.random.default_rng(8).standard_normal((200, 2))
    run = lambda m, K: sample(v, (200, 2), p, method=m, steps=K, x_T=z, prediction_type="velocity")  # noqa: E731
    ref = run("heun-t", 2000)
    e1, e2 = (np.sqrt(np.mean((run(method, K) - ref) ** 2)) for K in (32, 64))
    assert abs(np.log2(e1 / e2) - order) < 0.25


def test_ode_samplers_in_t_step_as_written():
    """One sample() step of each t-stepper from t = 1 equals the formula on its docstring."""
    p = LinearInterpolant()
    v = GaussianMixtureDenoiser(MIX, p, "velocity")
    z = np.random.default_rng(9).standard_normal((50, 2))
    t1 = lambda t: np.full(50, float(t))  # noqa: E731
    # steps=1 goes from t = 1 straight to the data t = 0: h = -1
    u = v(z, t1(1.0))
    expect = {"euler-t": z - u, "midpoint-t": z - v(z - 0.5 * u, t1(0.5)),
              "heun-t": z - 0.5 * (u + v(z - u, t1(0.0)))}
    for method, want in expect.items():
        got = sample(v, (50, 2), p, method=method, steps=1, x_T=z, prediction_type="velocity")
        np.testing.assert_allclose(got, want, atol=1e-10, err_msg=method)


def test_ode_samplers_in_t_refuse_a_discrete_schedule():
    from tinydiff.schedules import NoiseSchedule

    s = NoiseSchedule.cosine(50)
    with pytest.raises(ValueError, match="continuous process"):
        sample(GaussianMixtureDenoiser(MIX, s), (4, 2), s, method="midpoint-t", steps=5)


@pytest.mark.parametrize("kind", ["epsilon", "v_prediction"])
def test_ddim_on_a_diffusion_model_is_euler_on_the_flow_of_the_same_path(kind):
    """Gao et al. (2024); Kingma & Gao (2023): a VP diffusion x_t = a x0 + s eps is the linear interpolant
    y_u = (1 - u) x0 + u eps rescaled, y = x / (a + s) at u = s / (a + s). One DDIM (eta = 0) step of the eps (or v)
    model from t to t' equals one Euler step in u of the exact flow-matching velocity model, mapped back."""
    vp, lin = VPProcess(), LinearInterpolant()
    diff, flow = GaussianMixtureDenoiser(MIX, vp, kind), GaussianMixtureDenoiser(MIX, lin, "velocity")
    x = np.random.default_rng(10).standard_normal((64, 2))
    for t, t2 in [(0.9, 0.7), (0.5, 0.45), (0.3, 0.05)]:
        (a, s), (a2, s2) = vp.alpha_sigma(np.float64(t)), vp.alpha_sigma(np.float64(t2))
        x0, eps = to_x0_eps(x, diff(x, np.full(64, t)), kind, a, s)
        ddim = ddim_step(x0, eps, a2 ** 2, ddim_sigma(a ** 2, a2 ** 2, 0.0), None)
        u, u2 = s / (a + s), s2 / (a2 + s2)
        y = x / (a + s)
        y2 = y + (u2 - u) * flow(y, np.full(64, u))                           # Euler in u on the flow model
        np.testing.assert_allclose(y2 * (a2 + s2), ddim, atol=1e-10)


def test_ddim_and_euler_in_t_give_the_same_samples_on_the_linear_interpolant():
    p = LinearInterpolant()
    v = GaussianMixtureDenoiser(MIX, p, "velocity")
    a = sample(v, (100, 2), p, method="euler-t", steps=8, prediction_type="velocity", rng=11)
    b = sample(v, (100, 2), p, method="ddim", steps=8, prediction_type="velocity", rng=11)
    np.testing.assert_allclose(a, b, atol=1e-10)


# ---- training, checkpoints, reflow -------------------------------------------------------------------------------
def _config(**kw):
    base = dict(data="moons", objective="flow", steps=60, batch_size=128, n_train=2000, width=32, n_blocks=1,
                emb_dim=16, checkpoint_every=30, warmup_steps=5)
    return TrainConfig(**{**base, **kw})


def test_flow_training_lowers_the_loss_towards_the_conditional_variance():
    trainer = FlowTrainer(_config(steps=300, lr=3e-3))
    trainer.train(progress=False)
    first, last = np.mean(trainer.log.loss[:20]), np.mean(trainer.log.loss[-50:])
    assert last < 0.8 * first


def test_ot_coupling_trains_and_pairs_closer_points():
    trainer = FlowTrainer(_config(coupling="ot", steps=5))
    trainer.train(progress=False)
    rng = np.random.default_rng(0)
    x0, eps = trainer.x[:256], rng.standard_normal((256, 2))
    assert np.sum((x0 - eps[ot_pairing(x0, eps)]) ** 2) < 0.5 * np.sum((x0 - eps) ** 2)


def test_unknown_coupling_is_refused():
    with pytest.raises(ValueError, match="coupling"):
        FlowTrainer(_config(coupling="sinkhorn"))


def test_flow_checkpoint_records_the_objective_and_resumes_bit_for_bit(tmp_path):
    full = FlowTrainer(_config(), tmp_path / "full")
    full.train(progress=False)
    half = FlowTrainer(_config(), tmp_path / "half")
    half.train(progress=False, until=30)
    resumed = Trainer.resume(tmp_path / "half")
    assert isinstance(resumed, FlowTrainer)
    resumed.train(progress=False)
    np.testing.assert_array_equal(full.log.loss, resumed.log.loss)
    m = load_flow(tmp_path / "full" / "model.npz")
    assert m.config.objective == "flow" and m.prediction_type == "velocity" and isinstance(m.process, LinearInterpolant)
    x = m.sample(20, steps=3)
    assert x.shape == (20, 2) and np.all(np.isfinite(x))
    np.testing.assert_array_equal(x, full.trained().sample(20, steps=3))


def test_reflow_trains_on_the_flows_own_pairs(tmp_path):
    FlowTrainer(_config(), tmp_path / "a").train(progress=False)
    m = load_flow(tmp_path / "a" / "model.npz")
    model, process = m.network, m.process
    x, z = generate_pairs(model, process, 30, rng=0, steps=4)
    np.testing.assert_allclose(x, sample(model, (30, 2), process, method="midpoint-t", steps=4, x_T=z,
                                         prediction_type="velocity"))
    trainer = reflow(tmp_path / "a" / "model.npz", tmp_path / "b", n_pairs=500, steps=10, ode_steps=4,
                     progress=False)
    assert trainer.config.reflow == 1 and trainer.z is not None
    assert load_flow(tmp_path / "b" / "model.npz").config.reflow == 1


def test_flow_network_feeds_the_objective_time_input():
    calls = []
    net = FlowNetwork(lambda x, t, y=None: calls.append(t) or x)
    net(np.zeros((2, 2)), np.array([0.25, 1.0]))
    np.testing.assert_allclose(calls[0], [250.0, 1000.0])


def test_progressive_distillation_halves_the_steps_each_round():
    from tinydiff.distill import progressive_distillation
    from tinydiff.models import MLPDenoiser

    p = LinearInterpolant()
    exact = GaussianMixtureDenoiser(MIX, p, "velocity")
    data = MIX.sample(500, rng=0)
    students = progressive_distillation(exact, MLPDenoiser(width=16, n_blocks=1, emb_dim=8), data, teacher_steps=4,
                                        iters=5, batch=32, rng=0, progress=None)
    assert sorted(students) == [1, 2]
    x = sample(students[1], (10, 2), p, method="euler-t", steps=1, prediction_type="velocity", rng=0)
    assert x.shape == (10, 2) and np.all(np.isfinite(x))


def test_ot_pairing_in_blocks_pairs_within_each_block():
    rng = np.random.default_rng(12)
    x0, eps = rng.standard_normal((2, 10, 2))
    pi = ot_pairing(x0, eps, block=4)
    assert sorted(pi) == list(range(10))
    assert set(pi[:4]) == {0, 1, 2, 3} and set(pi[4:8]) == {4, 5, 6, 7} and set(pi[8:]) == {8, 9}
    np.testing.assert_array_equal(pi[4:8], 4 + ot_pairing(x0[4:8], eps[4:8]))


def test_a_reflow_run_cannot_train_without_its_pairs():
    with pytest.raises(ValueError, match="pairs"):
        FlowTrainer(_config(reflow=1))
