"""Exercises 14.1 (the denoising score matching loss, Vincent 2011) and 14.2 (a Langevin step, Roberts & Tweedie
1996) (chapters/14_score_matching_and_langevin.py). Both are graded against the exact score of a Gaussian mixture."""

import numpy as np
import pytest

from tinydiff.analytic import GaussianMixture, GaussianMixtureDenoiser
from tinydiff.exercises.checks import expect_close, expect_true
from tinydiff.preconditioning import dsm_loss
from tinydiff.processes import VEProcess
from tinydiff.samplers import langevin_step

MIX = GaussianMixture([0.4, 0.6], [[-1.0, 0.0], [1.0, 0.5]], [np.eye(2) * 0.3, np.diag([0.2, 0.5])])


# ---- 14.1 denoising score matching -----------------------------------------------------------------------------
@pytest.mark.ex14_1
def test_dsm_loss_is_the_weighted_squared_error_to_the_conditional_score():
    rng = np.random.default_rng(0)
    x0, n, score = rng.standard_normal((3, 5, 3))                       # (B, D) each
    sigma = np.array([0.05, 0.3, 1.0, 2.0, 8.0])                         # (B,)
    x = x0 + sigma[:, None] * n
    s2 = sigma[:, None] ** 2

    def loss(target, weight=s2, half=0.5, reduce=np.mean):
        return reduce(half * weight[:, 0] * np.sum((score - target) ** 2, axis=1))

    expect_close("ex14_1", "the DSM loss", dsm_loss(score, x0, x, sigma), loss(-(x - x0) / s2), likely=[
        (loss((x - x0) / s2), "the target has the wrong sign: grad log N(x; x0, sigma^2 I) = -(x - x0) / sigma^2 "
                              "points from x back towards x0"),
        (loss(-(x - x0) / np.sqrt(s2)), "the target divides by sigma^2, not sigma: it is -(x - x0) / sigma^2 = -n / sigma"),
        (loss(-(x - x0) / s2, weight=np.ones_like(s2)), "the weight lambda(sigma) = sigma^2 is missing (Song & Ermon "
                                                       "2019, eq. 6): without it the small sigmas dominate the loss"),
        (loss(-(x - x0) / s2, weight=np.sqrt(s2)), "the weight is sigma^2, not sigma"),
        (loss(-(x - x0) / s2, half=1.0), "the loss has a factor 1/2: sigma^2 || s - target ||^2 / 2"),
        (loss(-(x - x0) / s2, reduce=np.sum), "average over the batch (mean over b), do not sum"),
    ], hint="L = mean_b sigma_b^2 || s(x_b) + (x_b - x0_b) / sigma_b^2 ||^2 / 2 (sum over the coordinates)")


@pytest.mark.ex14_1
def test_dsm_loss_is_smallest_at_the_exact_score_of_the_noisy_mixture():
    """Vincent (2011): the minimiser of DSM over functions is the score of the noisy data, here known exactly."""
    rng = np.random.default_rng(1)
    process = VEProcess(0.01, 10.0)
    x0 = MIX.sample(4000, rng)                                                       # (N, 2)
    sigma = np.exp(rng.uniform(np.log(0.1), np.log(2.0), size=len(x0)))             # (N,)
    x = x0 + sigma[:, None] * rng.standard_normal(x0.shape)
    exact = GaussianMixtureDenoiser(MIX, process, "score")(x, process.t_of_noise_level(sigma))
    loss = {name: dsm_loss(s, x0, x, sigma) for name, s in
            [("the exact score", exact), ("0.9 x it", 0.9 * exact), ("1.1 x it", 1.1 * exact),
             ("it shifted by 0.2 / sigma", exact + 0.2 / sigma[:, None])]}
    expect_true("ex14_1", all(np.isfinite(v) for v in loss.values()), f"the loss is not finite: {loss}")
    best = min(loss, key=loss.get)
    expect_true("ex14_1", best == "the exact score",
                f"among score fields the loss should be smallest at the exact score of the noisy mixture, but it is "
                f"smallest for {best}: " + ", ".join(f"{k}: {v:.4f}" for k, v in loss.items()) +
                ". Check the target's sign and which noisy point it compares to.")


# ---- 14.2 Langevin step ----------------------------------------------------------------------------------------
@pytest.mark.ex14_2
def test_langevin_step_is_drift_plus_scaled_noise():
    rng = np.random.default_rng(2)
    z, score, xi = rng.standard_normal((3, 4, 2))
    delta = 0.03
    expect_close("ex14_2", "z'", langevin_step(z, score, delta, xi), z + delta * score + np.sqrt(2 * delta) * xi,
                 likely=[
                     (z + delta * score + np.sqrt(delta) * xi, "the noise is sqrt(2 delta) xi: with sqrt(delta) the "
                                                              "chain samples p at half its variance"),
                     (z - delta * score + np.sqrt(2 * delta) * xi, "the drift climbs the log-density: + delta score"),
                     (z + 0.5 * delta * score + np.sqrt(delta) * xi, "that is Song & Ermon's form with alpha = delta: "
                                                                     "here delta is the drift's step, alpha = 2 delta"),
                     (z + delta * score + 2 * delta * xi, "the noise's standard deviation is sqrt(2 delta)"),
                     (z + delta * score, "the noise term sqrt(2 delta) xi is missing: that is gradient ascent, which "
                                         "collapses onto a mode"),
                 ], hint="z' = z + delta grad log p(z) + sqrt(2 delta) xi")


@pytest.mark.ex14_2
def test_langevin_chains_started_at_the_mixture_stay_at_the_mixture():
    """p is (nearly, for small delta) stationary: chains started at exact samples keep its moments."""
    rng = np.random.default_rng(3)
    model = GaussianMixtureDenoiser(MIX, VEProcess())
    z = MIX.sample(4000, rng)                                                    # (N, 2) ~ p
    delta = 0.005
    for _ in range(200):
        z = langevin_step(z, model.posterior(z, 1.0)["score"], delta, rng.standard_normal(z.shape))
    ref = MIX.sample(200_000, np.random.default_rng(4))
    mean, var = z.mean(axis=0), z.var(axis=0)
    expect_true("ex14_2", bool(np.all(np.isfinite(z))), "the chains diverged (NaN or inf): does the drift follow "
                                                        "+ score, towards higher density?")
    expect_true("ex14_2", bool(np.all(np.abs(mean - ref.mean(0)) < 0.08) and np.all(np.abs(var / ref.var(0) - 1) < 0.1)),
                f"after 200 steps from exact samples of p the chains have mean {np.round(mean, 3)} and variance "
                f"{np.round(var, 3)}; p has mean {np.round(ref.mean(0), 3)} and variance {np.round(ref.var(0), 3)}. "
                "Langevin dynamics leaves p in place: a variance that shrinks means too little noise (it is "
                "sqrt(2 delta) xi), one that grows too much.")
