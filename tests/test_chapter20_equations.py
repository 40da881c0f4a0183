"""The equations chapter 20 states: the VAE's KL term (eq. 1; also tests/test_models_autoencoder.py) and the SNR of
data of standard deviation sigma_data under a VP schedule (eq. 2), which is why the latents are scaled by s."""

import numpy as np
import pytest

from tinydiff.latent import data_snr, half_signal_step
from tinydiff.models.autoencoder import gaussian_kl
from tinydiff.schedules import NoiseSchedule


# ---- eq. (1) -----------------------------------------------------------------------------------------------------
def test_kl_is_zero_at_the_prior_and_grows_with_the_mean_squared():
    assert gaussian_kl(0.0, 0.0) == 0.0
    assert gaussian_kl(2.0, 0.0) == pytest.approx(2.0)            # mu^2 / 2


def test_kl_grows_when_sigma_shrinks_below_one():
    """A small KL weight lets sigma -> 0; each halving of sigma costs log 2 - 3/8 nats more."""
    assert gaussian_kl(0.0, np.log(0.25)) - gaussian_kl(0.0, np.log(1.0)) == pytest.approx(
        0.5 * (0.25 - 1 - np.log(0.25)))


# ---- eq. (2) -----------------------------------------------------------------------------------------------------
def test_snr_of_unit_variance_data_is_the_schedules_own():
    s = NoiseSchedule.from_name("linear", 1000)
    ab = s.alphas_cumprod
    np.testing.assert_allclose(data_snr(ab, 1.0), ab / (1 - ab), rtol=1e-12)


def test_scaling_the_data_by_c_multiplies_the_snr_by_c_squared():
    ab = NoiseSchedule.from_name("linear", 1000).alphas_cumprod
    np.testing.assert_allclose(data_snr(ab, 0.2), 0.04 * data_snr(ab, 1.0), rtol=1e-12)


def test_snr_matches_the_empirical_signal_and_noise_powers():
    rng = np.random.default_rng(0)
    ab, sd = 0.3, 0.5
    x0, eps = sd * rng.standard_normal(200_000), rng.standard_normal(200_000)
    signal, noise = np.sqrt(ab) * x0, np.sqrt(1 - ab) * eps                      # the two parts of x_t
    assert np.var(signal) / np.var(noise) == pytest.approx(float(data_snr(ab, sd)), rel=0.02)


def test_smaller_latents_reach_snr_one_earlier():
    ab = NoiseSchedule.from_name("linear", 1000).alphas_cumprod
    t_small, t_unit, t_big = (half_signal_step(ab, sd) for sd in (0.2, 1.0, 5.0))
    assert t_small < t_unit < t_big
    assert data_snr(ab[t_unit], 1.0) <= 1.0 < data_snr(ab[t_unit - 1], 1.0)


def test_half_signal_step_is_T_when_the_snr_never_reaches_one():
    assert half_signal_step(np.array([0.99, 0.98]), 1.0) == 2
