"""Exercises 9.1 (Euler step of the probability-flow ODE), 9.2 (Heun) and the lab 9.3 (the order of a sampler)
(chapters/09_score_and_ode.py). Heun's step uses Euler's (9.1): with 9.1 a stub its tests say "needs Exercise 9.1"."""

import numpy as np
import pytest

from tinydiff.analytic import GaussianMixture, GaussianMixtureDenoiser
from tinydiff.exercises.checks import expect_close, expect_true
from tinydiff.labs.sampler_order import measure_order
from tinydiff.samplers import euler_step, sample
from tinydiff.schedules import NoiseSchedule

SCHEDULE = NoiseSchedule.linear(100)
AB = SCHEDULE.alphas_cumprod
MIX = GaussianMixture([0.5, 0.5], [[-1.0, 0.0], [1.0, 0.5]], [np.eye(2) * 0.3, np.eye(2) * 0.2])


# ---- 9.1 Euler -----------------------------------------------------------------------------------------------
@pytest.mark.ex9_1
def test_euler_step_moves_along_eps_in_the_sigma_frame():
    rng = np.random.default_rng(0)
    x_t, eps = rng.standard_normal((2, 3, 2))
    ab_t, ab_p = AB[60], AB[30]
    sig = lambda ab: np.sqrt((1 - ab) / ab)  # noqa: E731
    expected = np.sqrt(ab_p) * (x_t / np.sqrt(ab_t) + (sig(ab_p) - sig(ab_t)) * eps)
    expect_close("ex9_1", "x_prev", euler_step(x_t, eps, ab_t, ab_p), expected, likely=[
        (x_t / np.sqrt(ab_t) + (sig(ab_p) - sig(ab_t)) * eps, "that is z' = x'/sqrt(ab'): multiply back by sqrt(ab')"),
        (np.sqrt(ab_p) * (x_t / np.sqrt(ab_t) + (sig(ab_t) - sig(ab_p)) * eps),
         "the step goes the wrong way: sigma' < sigma, so z' = z + (sigma' - sigma) eps moves *against* eps"),
        (np.sqrt(ab_p) * (x_t / np.sqrt(ab_t) + (np.sqrt(1 - ab_p) - np.sqrt(1 - ab_t)) * eps),
         "the sigma of the frame z = x / sqrt(ab) is sqrt((1 - ab) / ab), not sqrt(1 - ab)"),
    ], hint="z = x_t / sqrt(ab_t);  z' = z + (sigma' - sigma) eps with sigma = sqrt((1 - ab) / ab);  x' = sqrt(ab') z'")


@pytest.mark.ex9_1
def test_euler_step_equals_deterministic_ddim():
    rng = np.random.default_rng(1)
    x_t, eps = rng.standard_normal((2, 3, 2))
    x0 = (x_t - np.sqrt(1 - AB[50]) * eps) / np.sqrt(AB[50])
    expect_close("ex9_1", "the Euler step", euler_step(x_t, eps, AB[50], AB[20]),
                 np.sqrt(AB[20]) * x0 + np.sqrt(1 - AB[20]) * eps,
                 hint="in the sigma frame Euler's step and DDIM with eta = 0 are the same map (chapter 8)")


# ---- 9.2 Heun ------------------------------------------------------------------------------------------------
@pytest.mark.ex9_2
def test_heun_beats_euler_at_equal_steps_on_the_exact_denoiser():
    model = GaussianMixtureDenoiser(MIX, SCHEDULE)
    x_T = np.random.default_rng(2).standard_normal((128, 2))
    run = lambda m, k: sample(model, (128, 2), SCHEDULE, method=m, steps=k, x_T=x_T, rng=0, sigma_max=20)  # noqa: E731
    ref = run("heun", 70)
    e_euler = np.sqrt(np.mean((run("euler", 10) - ref) ** 2))
    e_heun = np.sqrt(np.mean((run("heun", 10) - ref) ** 2))
    expect_true("ex9_2", e_heun < 0.5 * e_euler,
                f"with 10 steps Heun's error is {e_heun:.3g} and Euler's {e_euler:.3g}: Heun (second order) should be "
                "well below half. Average eps and the eps at the Euler guess, evaluated at s.t_prev.")


@pytest.mark.ex9_2
def test_heun_step_averages_the_two_slopes():
    from tinydiff.samplers import Heun, Step

    model = GaussianMixtureDenoiser(MIX, SCHEDULE)
    stepper = Heun()
    calls = []

    def denoise(x, t):
        calls.append(int(np.asarray(t).reshape(-1)[0]))
        eps = model(x, np.full(len(x), t))
        return (x - np.sqrt(1 - AB[t]) * eps) / np.sqrt(AB[t]), eps

    stepper.start(AB, denoise)
    x = np.random.default_rng(3).standard_normal((4, 2))
    x0, eps = denoise(x, 60)
    calls.clear()
    step = Step(i=1, n=5, t=60, t_prev=30, ab_t=AB[60], ab_prev=AB[30])
    got = stepper.step(x, step, x0, eps, None)
    guess = euler_step(x, eps, AB[60], AB[30])
    eps2 = model(guess, np.full(4, 30))
    expect_close("ex9_2", "the Heun step", got, euler_step(x, 0.5 * (eps + eps2), AB[60], AB[30]), likely=[
        (guess, "that is the Euler guess: correct it with the average of eps and the eps at the guess"),
        (euler_step(x, eps2, AB[60], AB[30]), "use the *average* of the two slopes, (eps + eps') / 2"),
    ])
    expect_true("ex9_2", calls == [30], f"the model was called at steps {calls}; Heun calls it once more, at the "
                                        "Euler guess and the previous step t_prev (= 30 here)")


# ---- 9.3 lab: the order of a sampler -------------------------------------------------------------------------
def _order(method):
    model = GaussianMixtureDenoiser(MIX, NoiseSchedule.linear(1000))
    return measure_order(model, model.schedule, method, reference_steps=300, n=128)


@pytest.mark.ex9_3(part="the errors")
def test_lab_errors_are_positive_and_shrink_with_more_steps():
    errors, _ = _order("euler")
    expect_true("ex9_3", np.shape(errors) == (3,), f"errors has shape {np.shape(errors)}; expected one per step count (3,)")
    expect_true("ex9_3", bool(np.all(np.asarray(errors) > 0) and np.all(np.diff(errors) < 0)),
                f"Euler's errors at 8, 16, 32 steps are {np.round(errors, 4)}: they should be positive and shrink. "
                "Did every run start from the same x_T as the reference?")


@pytest.mark.ex9_3(part="the fitted order")
def test_lab_measures_order_one_for_euler_and_near_two_for_dpm_solver():
    p1, p2 = _order("euler")[1], _order("dpm++2m")[1]
    expect_true("ex9_3", 0.8 < p1 < 1.25, f"Euler's measured order is {p1:.3g}; expected about 1 (0.8 to 1.25). "
                "The order is minus the slope of log(error) against log(steps).")
    expect_true("ex9_3", 1.5 < p2 < 2.6, f"DPM-Solver++(2M)'s measured order is {p2:.3g}; expected near 2 (1.5 to 2.6).")
