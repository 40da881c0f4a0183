"""Exercise 19.1: the Euler and midpoint steps in t that sample a flow model (chapters/19_*.py, flow matching on
digits; the steppers are introduced in chapters/17_flow_matching.py). Euler in t on the linear interpolant is DDIM
(Gao et al. 2024); graded with the exact velocity of a Gaussian mixture, no trained model needed."""

import numpy as np
import pytest

from tinydiff.analytic import GaussianMixture, GaussianMixtureDenoiser
from tinydiff.exercises.checks import expect_close, expect_true
from tinydiff.processes import LinearInterpolant, grid
from tinydiff.samplers import EulerT, MidpointT, sample

MIX = GaussianMixture([0.5, 0.5], [[-1.0, 0.0], [1.0, 0.5]], [np.eye(2) * 0.3, np.eye(2) * 0.2])
PATH = LinearInterpolant()
MODEL = GaussianMixtureDenoiser(MIX, PATH, "velocity")
X_T = np.random.default_rng(0).standard_normal((256, 2))


def _run(method, steps):
    return sample(MODEL, X_T.shape, PATH, method=method, steps=steps, x_T=X_T, prediction_type="velocity")


# ---- Euler -------------------------------------------------------------------------------------------------------
@pytest.mark.ex19_1(part="Euler in t")
def test_euler_step_moves_by_h_times_u():
    rng = np.random.default_rng(1)
    x, u = rng.standard_normal((2, 3, 2))
    expect_close("ex19_1", "EulerT.ode_step(x, t = 0.8, t_prev = 0.6, u)", EulerT().ode_step(x, 0.8, 0.6, u), x - 0.2 * u,
                 likely=[(x + 0.2 * u, "sampling runs t backwards, from noise (t = 1) to data (t = 0): h = t_prev - t < 0"),
                         (x - 0.6 * u, "the step is h = t_prev - t, not t_prev"),
                         (x - 0.8 * u, "the step is h = t_prev - t, not t")],
                 hint="x' = x + (t_prev - t) u")


def _ddim_on_the_path(steps):
    """DDIM (eta = 0) on x_t = (1 - t) x0 + t eps, written out: at each grid time the model's velocity v gives
    x0 = x - t v and eps = x + (1 - t) v, and the step re-noises x0 to the next time with the same eps."""
    ts = np.append(grid(PATH, steps), 0.0)                                  # descending, then the data at t = 0
    x = X_T
    for t, t_prev in zip(ts[:-1], ts[1:]):
        v = MODEL(x, np.full(len(x), t))
        x0, eps = x - t * v, x + (1 - t) * v
        x = (1 - t_prev) * x0 + t_prev * eps
    return x


@pytest.mark.ex19_1(part="Euler in t")
def test_euler_in_t_on_the_straight_path_is_ddim():
    """Gao et al. (2024): x + h (eps - x0) = (1 - t') x0 + t' eps, DDIM's update with the same (x0, eps)."""
    expect_close("ex19_1", "8 Euler steps in t against 8 DDIM steps (eta = 0) on the same grid", _run("euler-t", 8),
                 _ddim_on_the_path(8), rtol=1e-9, atol=1e-9,
                 hint="on the linear interpolant one Euler step in t lands where DDIM does: check the sign of h")


# ---- midpoint ----------------------------------------------------------------------------------------------------
@pytest.mark.ex19_1(part="the midpoint rule")
def test_midpoint_step_evaluates_u_once_at_the_half_step():
    calls = []

    def u_of(x, t):                                       # dx/dt = t x + 1, standing in for the model
        calls.append(float(t))
        return t * x + 1.0

    stepper = MidpointT()
    stepper.velocity = u_of                               # the instance's velocity: no model needed
    x = np.array([[0.5, -1.0], [2.0, 0.0]])
    t, t_prev = 0.8, 0.5
    h = t_prev - t
    got = stepper.ode_step(x, t, t_prev, t * x + 1.0)
    mid = lambda xm, tm: x + h * (tm * xm + 1.0)          # noqa: E731
    expect_close("ex19_1", "MidpointT.ode_step(x, 0.8, 0.5, u)", got, mid(x + 0.5 * h * (t * x + 1), t + 0.5 * h), likely=[
        (mid(x + 0.5 * h * (t * x + 1), t - 0.5 * h), "the half step goes towards t_prev: t + h/2 with h = t_prev - t < 0"),
        (mid(x + h * (t * x + 1), t + 0.5 * h), "the midpoint is half a step away: x + (h/2) u"),
        (mid(x + 0.5 * h * (t * x + 1), t), "evaluate u at the midpoint's time t + h/2, not at t"),
        (x + h * (t * x + 1), "that is Euler's step: the midpoint rule steps with the velocity at the midpoint"),
    ], hint="x_mid = x + (h/2) u(x, t);  x' = x + h u(x_mid, t + h/2);  h = t_prev - t")
    expect_true("ex19_1", len(calls) == 1 and abs(calls[0] - (t + 0.5 * h)) < 1e-12,
                f"self.velocity was called at t = {calls}; the midpoint rule calls it once, at t + h/2 = {t + 0.5 * h:g}")


@pytest.mark.ex19_1(part="the midpoint rule")
def test_midpoint_sampling_is_second_order():
    ref = _run("midpoint-t", 256)
    err = [float(np.sqrt(np.mean((_run("midpoint-t", k) - ref) ** 2))) for k in (8, 16)]
    expect_true("ex19_1", err[0] / err[1] > 3.0,
                f"the midpoint sampler's error is {err[0]:.3g} with 8 steps and {err[1]:.3g} with 16: a ratio of "
                f"{err[0] / err[1]:.2f}; a second-order method divides it by about 4 when the steps double "
                "(Euler by 2)")
