"""Exercise 17.1: the flow-matching target and loss (Lipman et al. 2023, eq. 15 and Thm. 2) (chapters/17_flow_matching.py)."""

import numpy as np
import pytest

from tinydiff.analytic import GaussianMixture, GaussianMixtureDenoiser
from tinydiff.exercises.checks import expect_close, expect_true
from tinydiff.flow import flow_matching_loss, velocity_target
from tinydiff.nn.gradcheck import central_differences
from tinydiff.processes import LinearInterpolant, VPProcess

MIX = GaussianMixture([0.5, 0.5], [[-1.0, 0.0], [1.0, 0.5]], [np.eye(2) * 0.3, np.eye(2) * 0.2])


# ---- the target ------------------------------------------------------------------------------------------------
@pytest.mark.ex17_1(part="the conditional velocity u", points=1)
def test_target_of_the_linear_interpolant_is_eps_minus_x0():
    rng = np.random.default_rng(0)
    x0, eps = rng.standard_normal((2, 3, 1, 4, 4)).astype(np.float32)     # (B, C, H, W) each
    t = np.array([0.1, 0.5, 0.9])
    u = velocity_target(LinearInterpolant(), x0, eps, t)
    x_t = (1 - t)[:, None, None, None] * x0 + t[:, None, None, None] * eps
    expect_close("ex17_1", "u for x_t = (1 - t) x0 + t eps", u, eps - x0, rtol=1e-6, atol=1e-6, likely=[
        (x0 - eps, "the velocity points from the data (t = 0) to the noise (t = 1): d x_t / dt = eps - x0"),
        (x_t, "that is x_t itself: the target is its time derivative, alpha'(t) x0 + sigma'(t) eps"),
        (eps, "that is DDPM's target: the velocity also moves away from x0, u = eps - x0"),
    ], hint="u = alpha'(t) x0 + sigma'(t) eps with alpha = 1 - t, sigma = t")
    expect_true("ex17_1", u.dtype == np.float32, f"u is {u.dtype} for float32 batches; keep the batch's dtype")


@pytest.mark.ex17_1(part="the conditional velocity u", points=1)
def test_target_of_any_process_is_the_time_derivative_of_its_path():
    """On the VP process alpha' and sigma' depend on t: u must be d x_t / dt, here by central differences."""
    rng = np.random.default_rng(1)
    p = VPProcess()
    x0, eps = rng.standard_normal((2, 4, 2))
    t = np.array([0.05, 0.3, 0.6, 0.95])
    h = 1e-6
    fd = (p.q_sample(x0, t + h, eps) - p.q_sample(x0, t - h, eps)) / (2 * h)
    a, s = (v[:, None] for v in p.alpha_sigma(t))
    expect_close("ex17_1", "u on the VP process", velocity_target(p, x0, eps, t), fd, rtol=1e-5, atol=1e-6, likely=[
        (a * x0 + s * eps, "that is x_t: use the derivatives, process.derivatives(t) -> (alpha'(t), sigma'(t))"),
        (eps - x0, "eps - x0 is the velocity of the linear interpolant only: in general u = alpha'(t) x0 + sigma'(t) eps"),
    ], hint="u = alpha'(t) x0 + sigma'(t) eps, one t per sample (reshape the (B,) coefficients to (B, 1, ...))")


@pytest.mark.ex17_1(part="the conditional velocity u", points=1)
def test_the_exact_marginal_velocity_minimises_the_regression_to_u():
    """Lipman et al. Thm. 2: E[u | x_t] = v(x_t, t) minimises E || v_theta(x_t, t) - u ||^2 (mixture data, exact v)."""
    rng = np.random.default_rng(2)
    p = LinearInterpolant()
    x0 = MIX.sample(4000, rng)
    eps = rng.standard_normal(x0.shape)
    t = rng.uniform(0.05, 0.95, len(x0))
    v = GaussianMixtureDenoiser(MIX, p, "velocity")(p.q_sample(x0, t, eps), t)
    u = velocity_target(p, x0, eps, t)
    mse = {k: float(np.mean((f - u) ** 2)) for k, f in [("the exact v", v), ("0.9 v", 0.9 * v), ("1.1 v", 1.1 * v),
                                                         ("-v", -v)]}
    best = min(mse, key=mse.get)
    expect_true("ex17_1", best == "the exact v", f"the regression to your target is smallest for {best}, not for the "
                "exact marginal velocity: " + ", ".join(f"{k}: {m:.4f}" for k, m in mse.items()))


# ---- the loss --------------------------------------------------------------------------------------------------
def _batch(dtype=np.float64):
    rng = np.random.default_rng(3)
    return [a.astype(dtype) for a in rng.standard_normal((2, 4, 3, 5))]       # out, target: (B, 3, 5)


@pytest.mark.ex17_1(part="the loss and its gradient", points=2)
def test_loss_is_the_mean_squared_error_and_per_sample_its_rows():
    out, u = _batch()
    loss, _, per_sample = flow_matching_loss(out, u)
    d2 = (out - u) ** 2
    expect_close("ex17_1", "the loss", loss, d2.mean(), likely=[
        (d2.sum() / 4, "average over the coordinates too: 1/B sum_b mean_i (out - u)^2"),
        (d2.sum(), "the loss is a mean, not a sum"),
        (np.sqrt(d2.mean()), "no square root: the mean of the squares"),
    ])
    expect_true("ex17_1", isinstance(loss, float), f"the loss is a {type(loss).__name__}; return float(...)")
    expect_close("ex17_1", "per_sample", per_sample, d2.reshape(4, -1).mean(axis=1), likely=[
        (d2.reshape(4, -1).sum(axis=1), "per_sample[b] is the mean over sample b's coordinates, not the sum"),
    ], hint="per_sample: (B,), the mean of (out - u)^2 over each sample's coordinates; the loss is their mean")


@pytest.mark.ex17_1(part="the loss and its gradient", points=2)
def test_gradient_matches_finite_differences_and_keeps_the_dtype():
    out, u = _batch()
    _, grad, _ = flow_matching_loss(out, u)
    z = out.copy()
    fd = central_differences(lambda: flow_matching_loss(z, u)[0], z)
    diff = out - u
    expect_close("ex17_1", "dL/d out", grad, fd, rtol=1e-5, atol=1e-9, likely=[
        (2 * diff / 4, "the loss also averages over the 15 coordinates of a sample: dL/d out = 2 (out - u) / (B n)"),
        (diff / diff.size, "the derivative of a square brings a factor 2"),
        (-2 * diff / diff.size, "the sign: dL/d out = +2 (out - u) / (B n)"),
    ], hint="L = 1/(B n) sum (out - u)^2, so dL/d out = 2 (out - u) / (B n), n the coordinates per sample")
    out32, u32 = _batch(np.float32)
    expect_true("ex17_1", flow_matching_loss(out32, u32)[1].dtype == np.float32,
                "the gradient of a float32 output must be float32 (the network's backward pass runs in float32)")
