"""NoiseSchedule: the betas, the derived arrays, the four schedules and the zero-terminal-SNR rescale."""

import math
import warnings

import numpy as np
import pytest

from tinydiff.schedules import NoiseSchedule

ALL = {
    "linear": NoiseSchedule.linear,
    "cosine": NoiseSchedule.cosine,
    "sigmoid": NoiseSchedule.sigmoid,
    "scaled_linear": NoiseSchedule.scaled_linear,
}


@pytest.mark.parametrize("name", ALL)
def test_derived_arrays_follow_the_definitions(name):
    s = ALL[name](T=200)
    assert s.T == 200
    for attr in ("betas", "alphas", "alphas_cumprod", "alphas_cumprod_prev", "snr"):
        a = getattr(s, attr)
        assert a.shape == (200,) and a.dtype == np.float64, attr
    np.testing.assert_allclose(s.alphas, 1 - s.betas)
    np.testing.assert_allclose(s.alphas_cumprod, np.cumprod(1 - s.betas))
    assert s.alphas_cumprod_prev[0] == 1.0
    np.testing.assert_allclose(s.alphas_cumprod_prev[1:], s.alphas_cumprod[:-1])
    np.testing.assert_allclose(s.snr, s.alphas_cumprod / (1 - s.alphas_cumprod))
    assert np.all(np.diff(s.alphas_cumprod) < 0), "alpha_bar must decrease: every step adds noise"


def test_linear_at_T_1000_is_ho_et_al():
    s = NoiseSchedule.linear()
    np.testing.assert_allclose(s.betas, np.linspace(1e-4, 0.02, 1000))
    assert s.alphas_cumprod[-1] == pytest.approx(4.04e-5, rel=0.01)


def test_linear_with_few_steps_is_scaled_so_it_still_ends_in_noise():
    s = NoiseSchedule.linear(T=50)
    np.testing.assert_allclose(s.betas[[0, -1]], [1e-4 * 20, 0.02 * 20])
    assert s.terminal_snr < 1e-3


def test_linear_without_scaling_warns_that_it_does_not_reach_noise():
    with pytest.warns(UserWarning, match="far from pure noise"):
        s = NoiseSchedule.linear(T=50, scale_to_T=False)
    assert s.alphas_cumprod[-1] == pytest.approx(0.6, abs=0.01)
    assert s.terminal_snr > 1


def test_default_schedules_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for make in ALL.values():
            make()


def test_cosine_matches_hand_computed_values():
    # Nichol & Dhariwal eq. 17 with T = 4, s = 0.008:  f(u) = cos^2((u + s)/(1 + s) * pi/2)
    T, s = 4, 0.008
    f = [math.cos((k / T + s) / (1 + s) * math.pi / 2) ** 2 for k in range(T + 1)]
    expected_ab = [f[k + 1] / f[0] for k in range(T)]
    sched = NoiseSchedule.cosine(T=T, s=s)
    np.testing.assert_allclose(sched.alphas_cumprod[:3], expected_ab[:3], rtol=1e-12)
    assert sched.betas[0] == pytest.approx(1 - f[1] / f[0], rel=1e-12)
    # the last ratio would be 1 - 0/f[3] = 1; it is capped at max_beta
    assert sched.betas[-1] == 0.999


def test_cosine_at_T_1000_ends_near_1e_minus_9():
    assert NoiseSchedule.cosine().alphas_cumprod[-1] == pytest.approx(2.4e-9, rel=0.05)


def test_scaled_linear_is_linear_in_sqrt_beta():
    s = NoiseSchedule.scaled_linear()
    np.testing.assert_allclose(np.diff(np.sqrt(s.betas)), np.diff(np.sqrt(s.betas))[0], rtol=1e-9)
    assert s.alphas_cumprod[-1] == pytest.approx(0.0047, abs=2e-4)


def test_sigmoid_starts_near_one_and_ends_near_zero():
    s = NoiseSchedule.sigmoid()
    assert s.alphas_cumprod[0] > 0.999
    assert s.alphas_cumprod[-1] < 1e-5


@pytest.mark.parametrize("name", ALL)
def test_zero_terminal_snr_rescale_ends_in_pure_noise_and_keeps_the_start(name):
    s = ALL[name](T=100)
    z = s.rescale_zero_terminal_snr()
    assert z.alphas_cumprod[-1] == 0.0
    assert z.terminal_snr == 0.0 and z.zero_terminal_snr
    assert z.alphas_cumprod[0] == pytest.approx(s.alphas_cumprod[0], rel=1e-12)
    assert z.betas[-1] == 1.0
    assert np.all(np.diff(z.alphas_cumprod) < 0)


def test_zero_terminal_snr_follows_lin_et_al_algorithm_1():
    s = NoiseSchedule.linear(T=10)
    sab = np.sqrt(s.alphas_cumprod)
    expected = ((sab - sab[-1]) * sab[0] / (sab[0] - sab[-1])) ** 2
    np.testing.assert_allclose(s.rescale_zero_terminal_snr().alphas_cumprod, expected, atol=1e-15)


def test_posterior_variance_is_below_beta_and_zero_at_t0():
    for make in ALL.values():
        s = make(T=300)
        assert s.posterior_variance[0] == 0.0
        assert np.all(s.posterior_variance <= s.betas + 1e-15)


def test_sigmas_are_the_inverse_sqrt_snr():
    s = NoiseSchedule.cosine(T=100)
    np.testing.assert_allclose(s.sigmas, 1 / np.sqrt(s.snr))


def test_arrays_are_read_only():
    s = NoiseSchedule.linear(T=10)
    with pytest.raises(ValueError):
        s.betas[0] = 0.5


@pytest.mark.parametrize(
    "betas, match",
    [
        ([0.1, -0.2, 0.3], r"betas\[1\] = -0.2"),
        ([0.1, 1.5], r"betas\[1\] = 1.5"),
        ([1.0, 0.1], r"betas\[0\] = 1.0"),
        ([0.1, 0.0], r"betas\[1\] = 0.0"),
        ([0.1, np.nan], "NaN"),
        (np.zeros((2, 2)) + 0.1, "1-D"),
        ([], "non-empty"),
    ],
)
def test_bad_betas_raise_a_clear_error(betas, match):
    with pytest.raises(ValueError, match=match):
        NoiseSchedule(betas)


def test_final_beta_of_one_needs_the_zero_terminal_snr_flag():
    with pytest.raises(ValueError, match="rescale_zero_terminal_snr"):
        NoiseSchedule([0.1, 0.2, 1.0])
    assert NoiseSchedule([0.1, 0.2, 1.0], zero_terminal_snr=True).alphas_cumprod[-1] == 0


def test_bad_T_raises():
    with pytest.raises(ValueError, match="positive integer"):
        NoiseSchedule.cosine(T=0)
    with pytest.raises(ValueError, match="positive integer"):
        NoiseSchedule.linear(T=10.5)


def test_from_name_and_round_trip_through_dict():
    s = NoiseSchedule.from_name("cosine+ztsnr", T=50)
    assert s.zero_terminal_snr
    r = NoiseSchedule.from_dict(s.to_dict())
    np.testing.assert_array_equal(r.alphas_cumprod, s.alphas_cumprod)
    with pytest.raises(ValueError, match="unknown schedule 'cosin'"):
        NoiseSchedule.from_name("cosin")
