"""Equations chapters 1-10 state that the module tests do not already check (one section per chapter)."""

import numpy as np
import pytest

from tinydiff.analytic import GaussianMixture, GaussianMixtureDenoiser
from tinydiff.diffusion import q_sample
from tinydiff.schedules import NoiseSchedule


# ---- chapter 6: the floor of the simple loss for one Gaussian mode ----------------------------------------------
@pytest.mark.parametrize("t", [0, 20, 100, 400])
def test_one_mode_leaves_s2_over_s2_plus_sigma2_of_the_noise_unpredictable(t):
    """Var(eps | x_t) = s^2 / (s^2 + sigma_t^2) per coordinate, sigma_t^2 = (1 - ab_t) / ab_t, for x0 ~ N(mu, s^2 I)."""
    schedule, s = NoiseSchedule.cosine(1000), 0.07
    mode = GaussianMixture(np.ones(1), np.array([[0.5, -1.0]]), np.array([s**2 * np.eye(2)]))
    exact = GaussianMixtureDenoiser(mode, schedule)
    rng = np.random.default_rng(0)
    x0, eps = mode.sample(200_000, rng), rng.standard_normal((200_000, 2))
    tt = np.full(len(x0), t)
    measured = np.mean((exact(q_sample(schedule, x0, tt, eps), tt) - eps) ** 2)
    ab = schedule.alphas_cumprod[t]
    sigma2 = (1 - ab) / ab
    assert measured == pytest.approx(s**2 / (s**2 + sigma2), rel=0.01, abs=1e-4)
