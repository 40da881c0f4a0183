"""Exercise 7.1: the DDPM ancestral step (Ho et al. 2020, Alg. 2) (chapters/07_sampling_with_ddpm.py).

The step uses the posterior of Exercise 3.1 (q_posterior); in a copy where 3.1 is still a stub these tests are
reported as "needs Exercise 3.1".
"""

import numpy as np
import pytest

from tinydiff.diffusion import q_posterior
from tinydiff.exercises.checks import expect_close
from tinydiff.samplers import ddpm_step, respace
from tinydiff.schedules import NoiseSchedule

SCHEDULE = NoiseSchedule.linear(100)
RNG = np.random.default_rng(0)
X_T, X0, Z = RNG.standard_normal((3, 4, 2))


@pytest.mark.ex7_1(part="the variance", points=1)
@pytest.mark.parametrize("variance", ["fixed_small", "fixed_large"])
def test_ddpm_step_adds_noise_of_the_chosen_variance(variance):
    j = 40
    mean, var_small = q_posterior(SCHEDULE, X0, X_T, np.full(4, j))
    var = var_small if variance == "fixed_small" else SCHEDULE.betas[j]
    got = ddpm_step(SCHEDULE, j, X_T, X0, Z, variance)
    other = SCHEDULE.betas[j] if variance == "fixed_small" else var_small
    expect_close("ex7_1", f"x_(t-1) with variance {variance}", got, mean + np.sqrt(var) * Z, likely=[
        (mean + var * Z, "the noise is scaled by the standard deviation sqrt(variance), not the variance"),
        (mean + np.sqrt(other) * Z, "the two variances are swapped: fixed_small is the posterior's beta_tilde "
                                    "(q_posterior's variance), fixed_large is beta_t"),
        (mean, "no noise was added: only the last step (j = 0) is noise-free"),
    ], hint="x_{t-1} = mean + sqrt(var) z, the mean and beta_tilde from q_posterior(schedule, x0_hat, x_t, t)")


@pytest.mark.ex7_1(part="the mean and the last step", points=1)
def test_last_step_returns_the_mean_without_noise():
    mean, _ = q_posterior(SCHEDULE, X0, X_T, np.zeros(4, dtype=int))
    expect_close("ex7_1", "x_0 from the last step (j = 0)", ddpm_step(SCHEDULE, 0, X_T, X0, Z), mean, likely=[
        (mean + np.sqrt(SCHEDULE.betas[0]) * Z, "at j = 0 no noise is added (Alg. 2: z = 0 when t = 1)"),
    ])


@pytest.mark.ex7_1(part="the mean and the last step", points=1)
def test_respaced_step_uses_the_respaced_chain():
    respaced = respace(SCHEDULE, np.arange(0, 100, 10))                  # 10 steps: j indexes this chain
    j = 5
    mean, var = q_posterior(respaced, X0, X_T, np.full(4, j))
    expect_close("ex7_1", "a step of the respaced chain (j = 5 of 10)", ddpm_step(respaced, j, X_T, X0, Z),
                 mean + np.sqrt(var) * Z, hint="everything comes from the schedule passed in (the respaced one) at "
                                                "index j, not from the original T-step chain")
