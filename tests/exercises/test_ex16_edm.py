"""Exercise 16.1: EDM's preconditioning (Karras et al. 2022, Table 1 and App. B.6) (chapters/16_edm_design_space.py).
Each coefficient is checked against its formula and against the property it was derived from."""

import numpy as np
import pytest

from tinydiff.exercises.checks import expect_close, expect_true
from tinydiff.preconditioning import edm_precondition

SIGMA = np.array([0.002, 0.1, 0.5, 1.0, 3.0, 80.0])
SD = 0.5                                          # sigma_data != 1, so sd and sd^2 differ
S2, SD2 = SIGMA ** 2, SD ** 2


def _get(sigma=SIGMA, sd=SD):
    out = edm_precondition(sigma, sd)
    expect_true("ex16_1", isinstance(out, tuple) and len(out) == 4,
                "edm_precondition returns a tuple of four arrays: (c_skip, c_out, c_in, lam)")
    return [np.asarray(c, dtype=np.float64) for c in out]


@pytest.mark.ex16_1(part="c_skip and c_out", points=2)
def test_c_skip_and_c_out_are_table_1():
    c_skip, c_out, _, _ = _get()
    expect_close("ex16_1", "c_skip", c_skip, SD2 / (S2 + SD2), likely=[
        (SD / (S2 + SD2), "c_skip = sigma_data^2 / (sigma^2 + sigma_data^2): sigma_data squared in the numerator"),
        (S2 / (S2 + SD2), "that is 1 - c_skip: the skip connection carries x at *small* sigma (c_skip -> 1)"),
        (SD / np.sqrt(S2 + SD2), "c_skip has no square root: sigma_data^2 / (sigma^2 + sigma_data^2)"),
    ], hint="c_skip = sigma_data^2 / (sigma^2 + sigma_data^2)")
    expect_close("ex16_1", "c_out", c_out, SIGMA * SD / np.sqrt(S2 + SD2), likely=[
        (SIGMA * SD / (S2 + SD2), "c_out divides by sqrt(sigma^2 + sigma_data^2), not by its square"),
        (SIGMA * SD2 / np.sqrt(S2 + SD2), "c_out = sigma sigma_data / sqrt(...): sigma_data to the first power"),
        (SD / np.sqrt(S2 + SD2), "c_out carries a factor sigma: the network's output matters less as sigma -> 0"),
    ], hint="c_out = sigma sigma_data / sqrt(sigma^2 + sigma_data^2)")


@pytest.mark.ex16_1(part="c_skip and c_out", points=2)
def test_the_effective_target_has_unit_variance_and_c_skip_minimises_it():
    """App. B.6: for x = x0 + sigma n with Var x0 = sd^2, the target (x0 - c_skip x) / c_out has variance
    ((1 - c_skip)^2 sd^2 + c_skip^2 sigma^2) / c_out^2 = 1, and c_skip minimises the numerator."""
    c_skip, c_out, _, _ = _get()
    num = (1 - c_skip) ** 2 * SD2 + c_skip ** 2 * S2
    expect_close("ex16_1", "Var[(x0 - c_skip x) / c_out] (the effective target's variance)", num / c_out ** 2,
                 np.ones_like(SIGMA), rtol=1e-9, hint="eq. 138: c_out^2 = (1 - c_skip)^2 sd^2 + c_skip^2 sigma^2")
    for bump in (0.99, 1.01):
        c = bump * c_skip
        expect_true("ex16_1", bool(np.all((1 - c) ** 2 * SD2 + c ** 2 * S2 >= num - 1e-15)),
                    "your c_skip does not minimise the target's variance (1 - c_skip)^2 sd^2 + c_skip^2 sigma^2 "
                    "(eq. 131): set its derivative in c_skip to zero")


@pytest.mark.ex16_1(part="c_in and lambda", points=1)
def test_c_in_gives_unit_variance_input_and_lambda_cancels_c_out():
    _, c_out, c_in, lam = _get()
    expect_close("ex16_1", "c_in", c_in, 1 / np.sqrt(S2 + SD2), likely=[
        (1 / (S2 + SD2), "c_in = 1 / sqrt(sigma^2 + sigma_data^2): the square root makes Var(c_in x) = 1"),
        (1 / np.sqrt(S2 + SD), "sigma_data is squared inside the root: 1 / sqrt(sigma^2 + sigma_data^2)"),
    ], hint="Var(x) = sigma_data^2 + sigma^2, so c_in = 1 / sqrt(sigma^2 + sigma_data^2)")
    expect_close("ex16_1", "lambda", lam, (S2 + SD2) / (S2 * SD2), likely=[
        (1 / c_out, "lambda = 1 / c_out^2 (squared), so that lambda c_out^2 = 1 (eq. 144)"),
        (c_out ** 2, "lambda is the *inverse* of c_out^2"),
    ], hint="lambda = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2 = 1 / c_out^2")


@pytest.mark.ex16_1(part="c_in and lambda", points=1)
def test_coefficients_keep_the_shape_of_sigma_and_survive_sigma_0():
    sigma = np.array([[0.0, 1.0], [2.0, 5.0]])
    with np.errstate(all="raise"):
        try:
            out = _get(sigma, 1.0)
        except FloatingPointError as e:
            raise AssertionError("Exercise 16.1: edm_precondition(sigma = 0) raised FloatingPointError "
                                 f"({e}): lambda is inf there; compute it inside np.errstate(divide='ignore')") from None
    expect_true("ex16_1", all(c.shape == sigma.shape for c in out),
                f"the shapes are {[c.shape for c in out]}; each coefficient is shaped like sigma {sigma.shape}")
    c_skip, c_out, c_in, lam = (c[0, 0] for c in out)
    expect_true("ex16_1", (c_skip, c_out, c_in) == (1.0, 0.0, 1.0) and lam == np.inf,
                f"at sigma = 0 (sigma_data = 1): c_skip, c_out, c_in, lambda = {c_skip}, {c_out}, {c_in}, {lam}; "
                "expected 1, 0, 1, inf (D(x; 0) = x)")


# ---- 16.2 lab: the time grid at equal NFE --------------------------------------------------------------------------
def _grid_errors():
    from tinydiff.analytic import GaussianMixture, GaussianMixtureDenoiser
    from tinydiff.labs.time_grids import grid_errors
    from tinydiff.processes import EDMProcess

    mix = GaussianMixture([0.5, 0.5], [[-1.0, 0.0], [1.0, 0.5]], [np.eye(2) * 0.3, np.eye(2) * 0.2])
    process = EDMProcess()
    return grid_errors(GaussianMixtureDenoiser(mix, process, "sample"), process, "heun", steps=(5, 10, 20),
                       reference_steps=200, n=128)


@pytest.mark.ex16_2(part="the errors")
def test_lab_errors_are_positive_and_shrink_on_the_log_grids():
    errors = _grid_errors()
    expect_true("ex16_2", isinstance(errors, dict) and set(errors) == {"uniform", "lambda", "karras"},
                f"grid_errors returns {type(errors).__name__} with keys {list(errors) if isinstance(errors, dict) else ''}"
                "; expected a dict with one entry per spacing: 'uniform', 'lambda', 'karras'")
    for sp, e in errors.items():
        expect_true("ex16_2", np.shape(e) == (3,), f"errors[{sp!r}] has shape {np.shape(e)}; expected one per step count (3,)")
        expect_true("ex16_2", bool(np.all(np.asarray(e) > 0)), f"errors[{sp!r}] = {np.round(e, 4)}: an RMS error is > 0")
    for sp in ("lambda", "karras"):
        expect_true("ex16_2", bool(np.all(np.diff(errors[sp]) < 0)),
                    f"Heun's errors on the {sp} grid at 5, 10, 20 steps are {np.round(errors[sp], 4)}: they should "
                    "shrink. Did every run, and the reference, start from the same x_T?")


@pytest.mark.ex16_2(part="the verdict: where the steps go")
def test_lab_log_spaced_grids_beat_the_uniform_one_at_equal_nfe():
    errors = _grid_errors()
    u, lam, k = (float(errors[sp][1]) for sp in ("uniform", "lambda", "karras"))
    expect_true("ex16_2", 0.05 < k < 0.5 and float(errors["karras"][2]) < 0.06,
                f"Heun's RMS error on the karras grid is {k:.3g} at 10 steps and {float(errors['karras'][2]):.3g} at 20; "
                "expected about 0.15 and 0.03 (n = 128 points of a 2D mixture, reference 200 steps). Much larger: "
                "the runs did not all start from the reference's x_T (noise of std r(t_max) = sqrt(1 + 80^2)); "
                "much smaller: is it the RMS, sqrt(mean((x - x_ref)^2))?")
    expect_true("ex16_2", k < u / 5 and lam < u / 5 and 0.5 < k / lam < 2,
                f"with 10 Heun steps the errors are uniform {u:.3g}, lambda {lam:.3g}, karras {k:.3g}: expected the "
                "rho = 7 and log-spaced grids at least 5x below the uniform one and within 2x of each other. The "
                "reference is Heun with many steps on the karras grid from the same x_T.")
