"""Exercises 6.2 (the training loss and its gradient) and 6.3 (debugging gradient clipping)
(chapters/06_denoiser_for_points.py)."""

import numpy as np
import pytest

from tinydiff.diffusion import diffusion_loss, min_snr_weights
from tinydiff.exercises.checks import expect_close, expect_true
from tinydiff.nn.gradcheck import central_differences
from tinydiff.nn.optim import clip_grad_norm
from tinydiff.schedules import NoiseSchedule

SCHEDULE = NoiseSchedule.linear(100)


def _batch(dtype=np.float64):
    rng = np.random.default_rng(0)
    x0, noise, out = (rng.standard_normal((4, 3)).astype(dtype) for _ in range(3))
    return x0, noise, out, np.array([0, 10, 50, 99])


# ---- 6.2 loss and gradient -------------------------------------------------------------------------------------
@pytest.mark.ex6_2(part="the loss")
def test_loss_is_the_mean_squared_error_to_the_noise():
    x0, noise, out, t = _batch()
    loss, _ = diffusion_loss(SCHEDULE, out, x0, t, noise)
    d2 = (out - noise) ** 2
    expect_true("ex6_2", isinstance(loss, float), f"the loss is a {type(loss).__name__}; return float(...)")
    expect_close("ex6_2", "the loss", loss, d2.mean(), likely=[
        (d2.sum() / 4, "that is the sum over coordinates: L averages over the batch *and* the coordinates"),
        (d2.sum(), "that is the sum: L is the mean"),
        (np.sqrt(d2.mean()), "that is the RMS: L is the mean of the squares, no square root"),
    ], hint="L = 1/B sum_b w_b mean_i (out - target)^2, w_b = 1 here")


@pytest.mark.ex6_2(part="the gradient")
def test_gradient_matches_finite_differences_and_keeps_the_dtype():
    x0, noise, out, t = _batch()
    _, grad = diffusion_loss(SCHEDULE, out, x0, t, noise)
    z = out.copy()
    fd = central_differences(lambda: diffusion_loss(SCHEDULE, z, x0, t, noise)[0], z)
    expect_close("ex6_2", "dL/d output", grad, fd, rtol=1e-5, atol=1e-9, likely=[
        (fd / 2, "a factor 2 is missing: d/du u^2 = 2u"),
        (fd * 12, "the gradient of the *mean* over B * D = 12 entries divides by 12"),
        (fd * 3, "divide by the number of coordinates as well as the batch"),
    ], hint="dL/d out = 2 w_b (out - target) / (B * D)")
    _, grad32 = diffusion_loss(SCHEDULE, *(a.astype(np.float32) for a in (out, x0)), t, noise.astype(np.float32))
    expect_true("ex6_2", grad32.dtype == np.float32, f"the gradient of a float32 output is {grad32.dtype}: cast the "
                "float64 scale to the output's dtype (the network's backward expects its own dtype)")


@pytest.mark.ex6_2(part="the gradient")
def test_min_snr_weights_multiply_each_sample():
    x0, noise, out, t = _batch()
    loss, grad = diffusion_loss(SCHEDULE, out, x0, t, noise, min_snr_gamma=5.0)
    w = min_snr_weights(SCHEDULE, t, 5.0)
    expect_close("ex6_2", "the min-SNR weighted loss", loss, np.mean(w * ((out - noise) ** 2).mean(axis=1)),
                 hint="weight each sample's mean square by w_b before averaging over the batch")
    expect_close("ex6_2", "its gradient", grad, 2 * w[:, None] * (out - noise) / 12)


# ---- 6.3 debugging clip_grad_norm ----------------------------------------------------------------------------
@pytest.mark.ex6_3
def test_clipping_scales_the_gradients_in_place_to_max_norm():
    grads = {"w": np.full((2, 2), 3.0), "b": np.full(2, 4.0)}               # norm sqrt(4 * 9 + 2 * 16) = sqrt(68)
    before = clip_grad_norm(grads, 1.0)
    expect_close("ex6_3", "the returned norm (before clipping)", before, np.sqrt(68.0))
    after = np.sqrt(sum(float((g**2).sum()) for g in grads.values()))
    expect_true("ex6_3", abs(after - 1.0) < 1e-6,
                f"after clip_grad_norm(grads, 1.0) the gradients still have norm {after:.4g}, expected 1. The "
                "function must change the arrays the optimiser will read: does your loop modify them, or only "
                "rebind a local name? (g = g * s makes a new array; g *= s scales the one in grads)")


@pytest.mark.ex6_3
def test_clipping_leaves_small_gradients_alone():
    grads = [np.array([0.3, 0.4])]
    clip_grad_norm(grads, 1.0)
    expect_close("ex6_3", "a gradient of norm 0.5 after clipping at 1", grads[0], [0.3, 0.4],
                 hint="only a norm above max_norm is scaled down")
