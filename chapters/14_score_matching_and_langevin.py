# %% [markdown]
r"""
# Chapter 14 — Score matching and Langevin dynamics

Chapters 3-9 learned to predict the noise. This chapter tells the same story from the other end, the way Song & Ermon
(2019) told it: learn the **score** $\nabla_x \log p(x)$ of the data blurred at many noise levels, then walk uphill on
it with noise added, **Langevin dynamics**. It uses the variance-exploding picture $x = x_0 + \sigma n$ ($\alpha = 1$,
`tinydiff.processes.VEProcess`), where the algebra is shortest.

## The score and Tweedie, again

Blurring the data with $\mathcal{N}(0, \sigma^2 I)$ gives
$p_\sigma(x) = \int \mathcal{N}(x; x_0, \sigma^2 I)\, p(x_0)\, dx_0$. Differentiating under the integral (Efron 2011,
eq. 1.4; chapter 9 did it in the VP frame):

$$\nabla_x \log p_\sigma(x) = \frac{\mathbb{E}[x_0 \mid x] - x}{\sigma^2}, \quad\text{i.e.}\quad
D(x; \sigma) = \mathbb{E}[x_0 \mid x] = x + \sigma^2\, \nabla_x \log p_\sigma(x)$$

A denoiser and a score model are the same thing. For a Gaussian mixture both are exact (`tinydiff.analytic`).

## Denoising score matching

We cannot regress on $\nabla_x \log p_\sigma$: nobody knows it. Vincent (2011, eq. 11-14) showed that regressing on
the score of the *noising kernel* instead, $\nabla_x \log \mathcal{N}(x; x_0, \sigma^2 I) = -(x - x_0) / \sigma^2$,
which we know for every training pair, has the same minimiser:

$$\mathbb{E}_{x_0, x} \left\| s(x) + \frac{x - x_0}{\sigma^2} \right\|^2 =
\mathbb{E}_x \left\| s(x) - \nabla_x \log p_\sigma(x) \right\|^2 + \text{const}$$

because
$\mathbb{E}[-(x - x_0) / \sigma^2 \mid x] = (\mathbb{E}[x_0 \mid x] - x) / \sigma^2 = \nabla_x \log p_\sigma(x)$: each
target is a noisy sample of the score, right on average. Song & Ermon weight $\sigma$ level by
$\lambda(\sigma) = \sigma^2$, and with $s = F / \sigma$ the loss is $\| F + n \|^2$: predicting the noise, chapter 6's
loss (`tinydiff.preconditioning.dsm_loss`, `NCSN`).

*Sliced* score matching (Song et al. 2019) avoids the noise:
$\mathbb{E}_v \big[ v^\top \frac{\partial s}{\partial x} v + \frac{1}{2} (v^\top s)^2 \big]$ on clean data
(Hyvarinen 2005's objective with the trace replaced by random projections $v$). It needs a Jacobian-vector product per
projection, an extra backward pass, and learns the score of the clean data only, where it is poorly defined off the
data; denoising gives every noise level at the cost of a forward pass, which is why it won
(`sliced_score_matching_loss`; tested in tests/test_objectives.py).

## Langevin dynamics

Given a score, the Markov chain (Roberts & Tweedie 1996; Song & Ermon 2019, eq. 4 with $\alpha = 2 \delta$)

$$x' = x + \delta\, \nabla_x \log p(x) + \sqrt{2 \delta}\, z, \qquad z \sim \mathcal{N}(0, I)$$

has $p$ as its stationary distribution as $\delta \to 0$ (`tinydiff.samplers.langevin_step`). On a Gaussian
$\mathcal{N}(0, s^2)$ it is $x' = (1 - \delta / s^2)\, x + \sqrt{2 \delta}\, z$, whose stationary variance is
$s^2 / (1 - \delta / (2 s^2))$: the price of a finite step (checked below).

## Why annealing

Two things break plain Langevin on real data (Song & Ermon 2019, Sec. 3). The score is badly estimated where there
are no data (between modes). And where modes are separated by low-density regions, the chain cannot cross them in any
reasonable time, and the score inside a mode's basin does not depend on the mode's *weight*:
$\nabla_x \log (\pi_1 \mathcal{N}_1 + \pi_2 \mathcal{N}_2) = \nabla_x \log \mathcal{N}_1$ wherever $\mathcal{N}_2$ is
negligible, whatever $\pi_1$. So chains keep whatever split their starts had. Blurring merges the basins: at large
$\sigma$ the weights show in the score. **Annealed Langevin dynamics** (their Alg. 1) runs `n_steps` of Langevin at
each of the geometric levels $\sigma_1 > \dots > \sigma_L$ with step $\alpha_i = \epsilon\, \sigma_i^2 / \sigma_L^2$
(`samplers.AnnealedLangevin`, method "langevin"), so mass is divided among the modes while they still touch.

Figures: `score_fields.png`, `dsm_targets.png`, `langevin_gaussian.png`, `mode_weights.png`, `ncsn_samples.png`.
"""

# %%
import numpy as np

from tinydiff import viz
from tinydiff.claims import claim, finish
from tinydiff.analytic import GaussianMixture, GaussianMixtureDenoiser
from tinydiff.data.toy2d import gaussian_mixture_params, make_dataset
from tinydiff.metrics.points import mmd_test
from tinydiff.preconditioning import dsm_loss
from tinydiff.processes import VEProcess
from tinydiff.samplers import langevin_step, sample
from tinydiff.threads import blas_threads
from tinydiff.train import TrainConfig, train

args = viz.chapter_args(14, "Chapter 14: score matching and Langevin dynamics")

# ---- constants -------------------------------------------------------------------------------------------------
FIELD_SIGMAS = (0.05, 0.3, 1.0, 3.0)          # noise levels whose score field we draw
GRID = 13 if args.quick else 19                 # arrows per side
DSM_SIGMA = 0.5                                 # the level of the denoising score matching check
N_DSM = 20_000 if args.quick else 400_000       # training pairs (x0, x) averaged per bin
N_CHAINS = 500 if args.quick else 4000          # Langevin chains
WEIGHTS = (0.8, 0.2)                            # the two modes of the mode-weight experiment, at x = -4 and x = +4
NCSN_STEPS = 150 if args.quick else 2000        # optimiser steps of the NCSN on moons
N_SAMPLES = 300 if args.quick else 2000         # samples drawn from it
SEED = 0
# -----------------------------------------------------------------------------------------------------------------

rng = np.random.default_rng(SEED)
plt = viz.plt()
ve = VEProcess(0.01, 10.0)                      # alpha = 1, sigma from 0.01 to 10: NCSN's levels
mixture = GaussianMixture.from_params(gaussian_mixture_params("8gaussians"))
data = mixture.sample(2000, rng=rng)
score_model = GaussianMixtureDenoiser(mixture, ve, "score")
denoiser = GaussianMixtureDenoiser(mixture, ve, "sample")
t_of = lambda sigma, n: np.full(n, float(ve.t_of_noise_level(sigma)))       # noqa: E731

# %% [markdown]
# ## The score field, and Tweedie checked
#
# We draw $\sigma^2 \nabla_x \log p_\sigma(x) = D(x; \sigma) - x$, the arrow from $x$ to its denoised guess (the raw
# score grows like $1/\sigma^2$). At $\sigma = 0.05$ each point is pulled into its own narrow mode; at $\sigma = 3$ the
# eight modes have merged into one blob pulling towards the centre. The exact denoiser computes $D$ by Gaussian
# conditioning and the score by differentiating $\log p_\sigma$: Tweedie says $D = x + \sigma^2 \cdot \text{score}$,
# and the two routes agree to rounding error.

# %%
gx, gy = np.meshgrid(np.linspace(-3.2, 3.2, GRID), np.linspace(-3.2, 3.2, GRID))
pts = np.stack([gx.ravel(), gy.ravel()], axis=1)                       # (G G, 2)
fig, axes = plt.subplots(1, len(FIELD_SIGMAS), figsize=(3 * len(FIELD_SIGMAS), 3.1))
gap = 0.0
for ax, sigma in zip(axes, FIELD_SIGMAS):
    s = score_model(pts, t_of(sigma, len(pts)))
    gap = max(gap, float(np.abs(denoiser(pts, t_of(sigma, len(pts))) - (pts + sigma ** 2 * s)).max()))
    ax.scatter(data[:, 0], data[:, 1], s=1, color="0.8", linewidths=0)
    ax.quiver(pts[:, 0], pts[:, 1], *(sigma ** 2 * s).T, angles="xy", scale_units="xy", scale=1, width=0.004,
              color="C0")
    ax.set_title(f"sigma = {sigma}: sigma^2 grad log p", fontsize=9)
    viz.square_axes(ax, 3.4)
fig.tight_layout()
viz.save(fig, args.out / "score_fields.png")
claim(gap < 1e-9, "Tweedie: D(x; sigma) = x + sigma^2 grad log p_sigma(x) to rounding error (max gap {gap:.1e})",
      gap=gap)

# %% [markdown]
# ## Denoising score matching: noisy targets, right on average
#
# At $\sigma = 0.5$ we draw many pairs $(x_0,\ x = x_0 + \sigma n)$ and bin them by $x$. Each pair's target
# $-(x - x_0) / \sigma^2$ points from $x$ back to *its own* $x_0$: a noisy arrow (left, a few of them). Averaged within
# each bin (right, blue) the targets line up with the exact score (orange), as Vincent's identity says. The loss is
# therefore minimised by the exact score: moving it (scaling by 1.1, or shifting it) raises the loss.

# %%
x0 = mixture.sample(N_DSM, rng=rng)
x = x0 + DSM_SIGMA * rng.standard_normal(x0.shape)
target = -(x - x0) / DSM_SIGMA ** 2                                    # (N, 2) the kernel's score
exact_score = score_model(x, t_of(DSM_SIGMA, len(x)))
edges = np.linspace(-3, 3, 13)
ix, iy = np.digitize(x[:, 0], edges), np.digitize(x[:, 1], edges)
cell = ix * 100 + iy
cells, inverse, counts = np.unique(cell, return_inverse=True, return_counts=True)
mean_of = lambda v: np.stack([np.bincount(inverse, v[:, d]) / counts for d in range(2)], axis=1)   # noqa: E731
centre, t_mean, s_mean = mean_of(x), mean_of(target), mean_of(exact_score)
full = counts >= (50 if args.quick else 1000)
rel = np.linalg.norm(t_mean[full] - s_mean[full], axis=1) / np.linalg.norm(s_mean[full], axis=1).clip(0.5)
fig, axes = plt.subplots(1, 2, figsize=(8, 4))
few = rng.choice(len(x), 150, replace=False)
axes[0].quiver(x[few, 0], x[few, 1], *(DSM_SIGMA ** 2 * target[few]).T, angles="xy", scale_units="xy", scale=1,
               width=0.003, color="0.4")
axes[0].set_title("single targets sigma^2 (-(x - x0) / sigma^2)", fontsize=9)
axes[1].quiver(centre[full, 0], centre[full, 1], *(DSM_SIGMA ** 2 * s_mean[full]).T, angles="xy", scale_units="xy",
               scale=1, width=0.006, color="C1", label="exact score")
axes[1].quiver(centre[full, 0], centre[full, 1], *(DSM_SIGMA ** 2 * t_mean[full]).T, angles="xy", scale_units="xy",
               scale=1, width=0.003, color="C0", label="mean target in the bin")
axes[1].legend(fontsize=7, loc="lower right")
axes[1].set_title(f"bin averages (sigma = {DSM_SIGMA})", fontsize=9)
for ax in axes:
    ax.scatter(data[:, 0], data[:, 1], s=1, color="0.85", linewidths=0)
    viz.square_axes(ax, 3.2)
fig.tight_layout()
viz.save(fig, args.out / "dsm_targets.png")
sig = np.full(len(x), DSM_SIGMA)
loss_exact, loss_scaled, loss_shifted = (dsm_loss(s, x0, x, sig) for s in (exact_score, 1.1 * exact_score,
                                                                               exact_score + 0.1))
claim(np.median(rel) < 0.1, "binned mean targets match the exact score: median relative gap {gap:.3f} < 0.1 "
      "over {n} bins", gap=float(np.median(rel)), n=int(full.sum()), quick=False)
claim(loss_exact < min(loss_scaled, loss_shifted), "the DSM loss is lowest at the exact score ({a:.4f} < {b:.4f} "
      "scaled by 1.1, {c:.4f} shifted by 0.1)", a=loss_exact, b=loss_scaled, c=loss_shifted)

# %% [markdown]
# ## Langevin's stationary distribution, and the price of a step
#
# Chains started far away ($x = 5$) on $\mathcal{N}(0, 1)$, with the exact score $-x$: after a few hundred steps their
# histogram is the target's, slightly too wide for a large step, by the factor $1 / (1 - \delta / 2)$ in variance
# derived above.

# %%
fig, ax = plt.subplots(figsize=(5, 3.2))
grid = np.linspace(-4, 4, 200)
ax.plot(grid, np.exp(-grid ** 2 / 2) / np.sqrt(2 * np.pi), "k", lw=1.5, label="N(0, 1)")
variances = {}
for delta in (0.05, 0.5):
    z = np.full((N_CHAINS * 5, 1), 5.0)
    for _ in range(400):
        z = langevin_step(z, -z, delta, rng.standard_normal(z.shape))
    variances[delta] = float(z.var())
    ax.hist(z[:, 0], bins=60, density=True, histtype="step", label=f"delta = {delta}: var {z.var():.3f} "
                                                                      f"(theory {1 / (1 - delta / 2):.3f})")
ax.legend(fontsize=7)
ax.set_title("Langevin chains after 400 steps, from x = 5", fontsize=9)
viz.save(fig, args.out / "langevin_gaussian.png")
claim(abs(variances[0.5] * (1 - 0.25) - 1) < 0.05, "with delta = 0.5 the chains' variance is "
      "{v:.3f}, the predicted 1 / (1 - delta / 2) = 1.333", v=variances[0.5], quick=False)

# %% [markdown]
# ## Plain Langevin gets the mode weights wrong; annealing gets them right
#
# Two modes at $x = -4$ and $x = +4$ (std 0.5) with weights 0.8 and 0.2, and the exact score. Plain Langevin at a small
# noise level ($\sigma = 0.05$), 500 steps from starts spread uniformly over $[-8, 8]^2$: each chain falls into the
# nearer mode and stays, so the split is the starts' 50/50. Annealed Langevin from $\sigma = 20$ (where the blurred
# modes overlap and the score does see the weights) down to 0.05 recovers 80/20. The right panel shows why: along the
# $x$ axis the score at $\sigma = 0.05$ is the same whatever the weights (0.8/0.2 solid, 0.5/0.5 dotted), except in the
# empty region between the modes; at $\sigma = 3$ it differs.

# %%
two = GaussianMixture(list(WEIGHTS), [[-4.0, 0.0], [4.0, 0.0]], [np.eye(2) * 0.25] * 2)
even = GaussianMixture([0.5, 0.5], two.means, two.covs)
ve2 = VEProcess(0.05, 20.0)
exact2 = GaussianMixtureDenoiser(two, ve2, "epsilon")
x_T = rng.uniform(-8, 8, (N_CHAINS, 2))
with blas_threads(1):
    plain, tr_plain = sample(exact2, x_T.shape, ve2, method="langevin", steps=1, x_T=x_T, sigma_max=0.05,
                             timestep_spacing="uniform", rng=1, return_trajectory=True,
                             sampler_options={"n_steps": 500, "eps": 0.5 * 0.05 ** 2})
    annealed, tr_ann = sample(exact2, x_T.shape, ve2, method="langevin", steps=30, rng=1, return_trajectory=True,
                              sampler_options={"n_steps": 20})
left_plain, left_annealed = float(np.mean(plain[:, 0] < 0)), float(np.mean(annealed[:, 0] < 0))
fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
bins = np.linspace(-7, 7, 57)
axes[0].hist(plain[:, 0], bins=bins, alpha=0.6, label=f"plain Langevin, sigma = 0.05 ({tr_plain.nfe} NFE): "
                                                      f"{left_plain:.2f} left")
axes[0].hist(annealed[:, 0], bins=bins, alpha=0.6, label=f"annealed, 30 levels x 20 ({tr_ann.nfe} NFE): "
                                                         f"{left_annealed:.2f} left")
axes[0].set_title(f"x coordinate of {N_CHAINS} chains; true weights {WEIGHTS}", fontsize=9)
axes[0].legend(fontsize=7)
line = np.stack([np.linspace(-7, 7, 400), np.zeros(400)], axis=1)
for sigma, color in ((0.05, "C0"), (3.0, "C3")):
    for mix, style in ((two, "-"), (even, ":")):
        den = GaussianMixtureDenoiser(mix, ve2, "score")
        axes[1].plot(line[:, 0], den(line, np.full(400, float(ve2.t_of_noise_level(sigma))))[:, 0],
                     style, color=color, label=f"sigma = {sigma}, weights {mix.weights[0]:.1f}/{mix.weights[1]:.1f}")
axes[1].axhline(0, color="0.7", lw=0.5)
axes[1].set_ylim(-3, 3)
axes[1].set_title("d/dx log p_sigma along the x axis", fontsize=9)
axes[1].legend(fontsize=6)
fig.tight_layout()
viz.save(fig, args.out / "mode_weights.png")
claim(abs(left_plain - 0.5) < 0.05, "plain Langevin keeps the starts' split: {f:.3f} of the chains in the 0.8 mode",
      f=left_plain, quick=False)
claim(abs(left_annealed - WEIGHTS[0]) < 0.03, "annealed Langevin recovers the weight: {f:.3f} in the 0.8 mode",
      f=left_annealed, quick=False)

# %% [markdown]
# ## NCSN on moons
#
# Now a network: `python -m tinydiff train --data moons --objective ncsn` trains the MLP of chapter 6 by denoising
# score matching with $\ln \sigma$ uniform on $[\ln 0.01, \ln 10]$ (the continuous version of NCSN's geometric levels;
# the network sees $x / \sqrt{1 + \sigma^2}$, see `tinydiff.preconditioning`). We sample it two ways: annealed
# Langevin (Song & Ermon's Alg. 1, 30 levels x 10 steps + a final denoising step) and predictor-corrector (the default,
# chapter 15), and test both against held-out data with the MMD permutation test (chapter 6). NFE is given in each
# title.

# %%
config = TrainConfig(data="moons", objective="ncsn", steps=NCSN_STEPS, seed=SEED,
                     **({"width": 64, "batch_size": 256} if args.quick else {}))
model = train(config, progress=False).trained()             # the network seen through its preconditioning
held = make_dataset("moons", N_SAMPLES, rng=10_001)
panels, p_values = [("held-out data", held)], {}
for name, how in {"annealed Langevin": dict(sampler="langevin", steps=30, sampler_options={"n_steps": 10}),
                  "predictor-corrector": {}}.items():                     # {}: the ncsn default, pc with 100 levels
    x, traj = model.sample(N_SAMPLES, rng=SEED + 1, return_trajectory=True, **how)
    p_values[name] = mmd_test(x, held, 200 if not args.quick else 50, rng=SEED)[1]
    panels.append((f"{name}, {traj.nfe} NFE: p = {p_values[name]:.2f}", x))
fig = viz.scatter_strip(panels, lim=None, size=3.0, s=2)
viz.save(fig, args.out / "ncsn_samples.png")
for name, p in p_values.items():
    claim(p > 0.05, "NCSN + {name}: the MMD test cannot tell the samples from held-out moons (p = {p:.3f} > 0.05)",
          name=name, p=p, quick=False)

# %% [markdown]
# ## What to take away
#
# - A denoiser is a score model: $D = x + \sigma^2 \nabla_x \log p_\sigma$ (Tweedie).
# - Denoising score matching regresses on noisy targets whose average is the score; with $\lambda = \sigma^2$ it is
#   the $\epsilon$ loss of DDPM.
# - Langevin dynamics samples a density from its score, but only within a basin: plain Langevin cannot weigh
#   separated modes. Annealing through the noise levels fixes that, and is the first sampler of score-based models.

# %%
finish()
