"""Exercise 10.2: dynamic thresholding (Saharia et al. 2022, Sec. 2.3) (chapters/10_guidance.py)."""

import numpy as np
import pytest

from tinydiff.exercises.checks import expect_close, expect_true
from tinydiff.samplers import threshold_x0


def _reference(x0):
    s = np.maximum(np.quantile(np.abs(x0).reshape(len(x0), -1), 0.995, axis=1), 1.0).reshape(-1, 1, 1, 1)
    return np.clip(x0, -s, s) / s


@pytest.mark.ex10_2
def test_dynamic_threshold_is_per_sample():
    rng = np.random.default_rng(0)
    x0 = rng.standard_normal((3, 1, 8, 8)) * np.array([0.3, 2.0, 5.0])[:, None, None, None]   # (B, C, H, W)
    got = threshold_x0(x0, "dynamic")
    s_all = max(np.quantile(np.abs(x0), 0.995), 1.0)
    expect_close("ex10_2", "the thresholded x0", got, _reference(x0), likely=[
        (np.clip(x0, -s_all, s_all) / s_all, "one s for the whole batch: s is the percentile of each *sample*'s |x0|"),
        (np.clip(x0, -1, 1), "that is static clipping to [-1, 1]: dynamic thresholding clips at s, then divides by s"),
        (np.clip(x0, -np.maximum(np.quantile(np.abs(x0).reshape(3, -1), 0.995, axis=1), 1).reshape(-1, 1, 1, 1),
                 np.maximum(np.quantile(np.abs(x0).reshape(3, -1), 0.995, axis=1), 1).reshape(-1, 1, 1, 1)),
         "after clipping to [-s, s], divide by s so the result lies in [-1, 1]"),
    ], hint="s = max(1, quantile(|x0| of the sample, 0.995)), (B, 1, 1, 1);  x0 = clip(x0, -s, s) / s")


@pytest.mark.ex10_2
def test_dynamic_threshold_leaves_samples_inside_the_unit_box_alone():
    x0 = np.linspace(-0.9, 0.9, 2 * 16).reshape(2, 16)                 # (B, D): every |x0| < 1, so s = 1
    got = threshold_x0(x0, "dynamic")
    expect_close("ex10_2", "x0 already inside [-1, 1]", got, x0,
                 hint="s = max(1, percentile): a sample inside [-1, 1] has s = 1 and is unchanged")
    expect_true("ex10_2", got.shape == x0.shape, f"shape {got.shape}, expected {x0.shape} (any number of axes)")
