"""Exercises 2.1 (cosine schedule) and 2.2 (zero terminal SNR) (chapters/02_noise_schedules.py)."""

import numpy as np
import pytest

from tinydiff.exercises.checks import expect_close, expect_true
from tinydiff.schedules import NoiseSchedule


def _cosine_betas(T, s=0.008, max_beta=0.999, square=True, offset=True):
    u = np.arange(T + 1) / T
    c = np.cos(((u + s) / (1 + s) if offset else u) * np.pi / 2)
    ab = c**2 if square else c
    return np.minimum(1 - ab[1:] / ab[:-1], max_beta)


@pytest.mark.ex2_1
def test_cosine_betas_follow_eq17():
    schedule = NoiseSchedule.cosine(50)
    expect_true("ex2_1", isinstance(schedule, NoiseSchedule),
                f"NoiseSchedule.cosine returned {type(schedule).__name__}; expected a NoiseSchedule (return cls(betas)).")
    expect_close("ex2_1", "betas", schedule.betas, _cosine_betas(50), likely=[
        (_cosine_betas(50, square=False), "f(u) is the *squared* cosine: cos(...) ** 2"),
        (_cosine_betas(50, offset=False), "the offset s is missing: f(u) = cos^2((u + s) / (1 + s) * pi / 2)"),
        (_cosine_betas(50, s=0.0), "the offset s is missing: f(u) = cos^2((u + s) / (1 + s) * pi / 2)"),
    ], hint="alpha_bar(u) = f(u) / f(0) with u = t / T; _betas_from_alpha_bar turns it into betas")


@pytest.mark.ex2_1
def test_cosine_alpha_bar_decreases_from_near_1_to_near_0():
    ab = NoiseSchedule.cosine(1000).alphas_cumprod
    expect_true("ex2_1", bool(np.all(np.diff(ab) < 0)), "alpha_bar must decrease at every step (each step adds noise)")
    expect_true("ex2_1", ab[0] > 0.999 and ab[-1] < 1e-4,
                f"alpha_bar runs from {ab[0]:.4g} to {ab[-1]:.3g}; expected from about 1 (clean) to about 0 (noise). "
                "Is u = t / T in [0, 1]?")


def _rescaled_alpha_bar(schedule):
    sab = np.sqrt(schedule.alphas_cumprod)
    return ((sab - sab[-1]) * sab[0] / (sab[0] - sab[-1])) ** 2


@pytest.mark.ex2_2
def test_zero_terminal_snr_ends_in_pure_noise_and_keeps_the_first_step():
    base = NoiseSchedule.linear(100)
    z = base.rescale_zero_terminal_snr()
    expect_true("ex2_2", z.alphas_cumprod[-1] == 0.0 and z.betas[-1] == 1.0,
                f"the last alpha_bar is {z.alphas_cumprod[-1]:.3g} and the last beta {z.betas[-1]:.6g}; expected 0 and "
                "exactly 1: the shift sqrt(ab) - sqrt(ab_{T-1}) makes the last step pure noise (set betas[-1] = 1).")
    expect_close("ex2_2", "alpha_bar_0", z.alphas_cumprod[0], base.alphas_cumprod[0],
                 hint="the scale sqrt(ab_0) / (sqrt(ab_0) - sqrt(ab_{T-1})) keeps alpha_bar_0 where it was")


@pytest.mark.ex2_2
def test_zero_terminal_snr_shifts_and_scales_sqrt_alpha_bar():
    base = NoiseSchedule.linear(100)
    ab = base.alphas_cumprod
    wrong = (ab - ab[-1]) * ab[0] / (ab[0] - ab[-1])
    expect_close("ex2_2", "alpha_bar after rescaling", base.rescale_zero_terminal_snr().alphas_cumprod,
                 _rescaled_alpha_bar(base), likely=[
                     (wrong, "you shifted and scaled alpha_bar itself; Lin et al. rescale its square root, "
                             "sqrt(alpha_bar), then square it"),
                 ], hint="alphas_t = alpha_bar_t / alpha_bar_{t-1} (and alphas_0 = alpha_bar_0); betas = 1 - alphas")
