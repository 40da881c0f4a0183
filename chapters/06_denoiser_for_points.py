# %% [markdown]
r"""
# Chapter 6 — A denoiser for points: the MLP, its embeddings, and the simple loss

Chapters 1-3 built the forward chain and showed that running it backwards needs one unknown: the noise $\epsilon$ that
is in $x_t$ (equivalently $\mathbb{E}[x_0 \mid x_t]$, or the score). This chapter trains a network
$\epsilon_\theta(x_t, t)$ to predict it, on 2D points, with the layers of chapter 4.

## The loss

Draw a data point $x_0$, a step $t \sim \mathrm{Uniform}\{0, \ldots, T-1\}$ and noise $\epsilon \sim \mathcal{N}(0, I)$;
make $x_t = \sqrt{\bar\alpha_t}\, x_0 + \sqrt{1 - \bar\alpha_t}\, \epsilon$ (eq. 4). The network sees only $(x_t, t)$
and must guess $\epsilon$. Ho et al. (2020, eq. 14) train with the plain squared error

$$L_\text{simple}(\theta) = \mathbb{E}_{x_0, t, \epsilon} \|\epsilon - \epsilon_\theta(x_t, t)\|^2$$

which is the ELBO of chapter 3 with its per-step weights $\lambda_t$ set to 1. Its minimiser is the conditional mean,
$\epsilon^*(x_t, t) = \mathbb{E}[\epsilon \mid x_t]$ (the mean minimises squared error), and by Tweedie's formula that
is the score up to a factor: $\nabla \log q(x_t) = -\epsilon^*(x_t, t) / \sqrt{1 - \bar\alpha_t}$. So $L_\text{simple}$
has a floor: the variance of $\epsilon$ given $x_t$, which the best network cannot remove. For the 8 Gaussians we know
$\epsilon^*$ exactly (``tinydiff.analytic``), so we can see
how far above the floor our network is at every $t$.

## The network (``tinydiff.models.MLPDenoiser``)

An MLP with a raw $(x, t)$ input learns smooth functions first (spectral bias) and sees $t = 3$ and $t = 4$ as nearly
the same number. Both inputs are therefore lifted to sinusoids (Vaswani et al. 2017; Fourier features, Tancik et al.
2020):

$$e_t = \big[\sin(t f_j), \cos(t f_j)\big]_j, \quad e_x = \big[\sin(s x_d f_j), \cos(s x_d f_j)\big]_{d,j}, \quad
f_j = 10000^{-j / (E/2 - 1)}$$

$$h_0 = \mathrm{GELU}\big(W_\text{in} [e_x, e_t] + b\big), \quad h_k = h_{k-1} + \mathrm{GELU}(W_k h_{k-1} + b_k), \quad
\epsilon_\theta = W_\text{out} h_K + b_\text{out}$$

with $E = 128$, $s = 25$, width 128 and 3 residual blocks: 99k parameters, the shape of tanelp/tiny-diffusion.
Backward through the Fourier features gives $\partial L / \partial x$ too ($\frac{d}{da} \sin a = \cos a$), checked
against finite differences in tests/test_models_mlp.py.

## Loss against $t$

Not every step is equally hard, and the floor $\mathrm{Var}(\epsilon \mid x_t)$ has a shape worth understanding.
Measure the noise in the data's units, $\sigma_t^2 = (1 - \bar\alpha_t) / \bar\alpha_t$
($x_t / \sqrt{\bar\alpha_t} = x_0 + \sigma_t \epsilon$). For one Gaussian mode of width $s$, $x_0$ and the noise are two
Gaussians added together, and the part of $\epsilon$ that $x_t$ cannot reveal is (per coordinate)

$$\mathrm{Var}(\epsilon \mid x_t, \text{this mode}) = \frac{s^2}{s^2 + \sigma_t^2}$$

- **Small $t$** ($\sigma_t \ll s$): this is close to 1. The noise is much smaller than the spread *within* a mode, so
  $x_t$ says nothing about which part of $x_t$ is noise: $\epsilon$ is unpredictable *everywhere*, inside a mode as
  much as between two. (Any data with a density behave like this: at small enough noise every density looks flat.)
- **The dip** ($s \ll \sigma_t \ll$ the spacing of the modes): the noise has swamped the mode's own width, so $x_0$ is
  "the centre of the nearest mode" to within $s$, and
  $\epsilon = (x_t - \sqrt{\bar\alpha_t}\, x_0) / \sqrt{1 - \bar\alpha_t}$ is nearly determined.
- **Middle $t$** ($\sigma_t$ comparable with the spacing): *which* mode $x_0$ came from becomes uncertain; the loss
  rises again.
- **Large $t$** ($\bar\alpha_t \to 0$): $x_t$ is almost pure noise, so $\epsilon \approx x_t$ and the loss falls to 0.

Chapter 9 tells the same story through the score. The loss per $t$ is the picture to look at when a model trains badly.

Figures written (to `chapters/out/06/` unless `--out` says otherwise):
`embeddings.png`, `loss_curve.png`, `loss_vs_t.png`, `denoised_predictions.png`.
"""

# %%
import time

import numpy as np

from tinydiff import claims, viz
from tinydiff.analytic import GaussianMixture, GaussianMixtureDenoiser
from tinydiff.data.toy2d import gaussian_mixture_params
from tinydiff.diffusion import predict_x0_and_eps, q_sample
from tinydiff.models.mlp import FourierFeatures
from tinydiff.nn import SinusoidalEmbedding
from tinydiff.train import TrainConfig, Trainer

args = viz.chapter_args(6, "Chapter 6: a denoiser for points")

# ---- constants -------------------------------------------------------------------------------------------------
DATA = "8gaussians"                        # a mixture, so the best possible denoiser is known exactly
STEPS = 150 if args.quick else 3000        # optimiser steps (the `train` command's default is 8000 of batch 1024)
N_TRAIN = 2000 if args.quick else 20000    # training points
N_EVAL = 500 if args.quick else 4000       # points per t when measuring the loss against t
EVAL_TS = [0, 5, 10, 20, 40, 70, 100, 150, 200, 300, 400, 500, 650, 800, 999]   # steps where we measure it
SHOW_TS = [10, 100, 300, 600]              # steps of the denoising picture
SEED = 0
# -----------------------------------------------------------------------------------------------------------------

# %% [markdown]
# ## The two embeddings
#
# Left: the time embedding $e_t$ for every $t$, one row per step: slow columns tell far-apart steps apart, fast columns
# tell neighbours apart. Right: the Fourier features of one coordinate $x \in [-2, 2]$ (after scaling by $s = 25$): the
# network can now draw sharp edges, like a checkerboard's, as sums of these.

# %%
T = 1000
plt = viz.plt()
fig, axes = plt.subplots(1, 2, figsize=(9, 3))
e_t = SinusoidalEmbedding(128).forward(np.arange(T))                           # (T, 128)
axes[0].imshow(e_t, aspect="auto", cmap="RdBu", vmin=-1, vmax=1, interpolation="nearest")
axes[0].set_xlabel("embedding dimension j (sin | cos)")
axes[0].set_ylabel("time step t")
axes[0].set_title("e_t = [sin(t f_j), cos(t f_j)]", fontsize=9)
xs = np.linspace(-2, 2, 800)[:, None]                                          # (800, 1)
e_x = FourierFeatures(128, scale=25.0, dtype=np.float64).forward(xs)         # (800, 128)
for j in (0, 8, 16, 32):
    axes[1].plot(xs[:, 0], e_x[:, j], lw=1, label=f"sin(25 x f_{j})")
axes[1].set_xlabel("coordinate x (standardised)")
axes[1].legend(fontsize=7, loc="lower right")
axes[1].set_title("Fourier features of a coordinate", fontsize=9)
fig.tight_layout()
viz.save(fig, args.out / "embeddings.png")

# %% [markdown]
# ## Training
#
# `Trainer` runs Algorithm 1 of Ho et al. (2020) with AdamW, gradient clipping, a warm-up then cosine learning rate,
# and an exponential moving average (EMA) of the weights, which is what we evaluate. Each step: 512 points, one
# random $t$ each, one forward, one backward. The loss falls quickly and then flattens, not at 0 but at the floor
# described above.
#
# For this MLP the step does not call the layers one by one: `MLPTrainStep` (`tinydiff/models/mlp_step.py`) computes
# the same forward, backward, clip and AdamW in one routine over preallocated buffers (timings in
# docs/performance.md), and is tested to give the same loss, gradients and weights as the layers
# (`Trainer(config, fast=False)` runs the layers).

# %%
config = TrainConfig(data=DATA, steps=STEPS, n_train=N_TRAIN, seed=SEED, T=T, batch_size=512, lr=2e-3,
                     ema_decay=0.9 if args.quick else 0.995)     # a short run needs a short EMA memory
trainer = Trainer(config)
print(f"{trainer.model.num_parameters()} parameters; training {STEPS} steps of batch {config.batch_size}")
claims.claim(abs(trainer.model.num_parameters() - 99e3) < 1e3, "the MLP has {n} ~ 99k parameters",
             n=trainer.model.num_parameters())
t0 = time.perf_counter()
trainer.train(progress=not args.quick)
print(f"{time.perf_counter() - t0:.1f} s, {1e3 * trainer.log.seconds / STEPS:.2f} ms per step; "
      f"mean loss over the last 100 steps {np.mean(trainer.log.loss[-100:]):.4f}")
viz.save(viz.loss_curve(trainer.log.loss), args.out / "loss_curve.png")

# %% [markdown]
# ## Loss against $t$, and the floor
#
# Measure $\mathbb{E} \|\epsilon - \epsilon_\theta(x_t, t)\|^2 / 2$ (the mean over the two coordinates, as in training)
# at fixed steps on fresh points, for the trained network and for the exact conditional mean $\epsilon^*(x_t, t)$ of the
# mixture. The exact one
# is the floor; the gap between the curves is what the network has still to learn.

# %%
schedule, std = trainer.schedule, trainer.standardizer
mix = gaussian_mixture_params(DATA)
mix_std = GaussianMixture(mix.weights, (mix.means - std.mean) / std.std,            # the mixture in the units
                          mix.covs / np.outer(std.std, std.std))                   # the network sees
exact = GaussianMixtureDenoiser(mix_std, schedule)
rng = np.random.default_rng(SEED + 1)
model_loss, exact_loss = [], []
with trainer.ema.average_weights():
    for t in EVAL_TS:
        x0 = mix_std.sample(N_EVAL, rng)
        eps = rng.standard_normal(x0.shape)
        tt = np.full(N_EVAL, t)
        x_t = q_sample(schedule, x0, tt, eps)
        model_loss.append(np.mean((trainer.model(x_t, tt) - eps) ** 2))
        exact_loss.append(np.mean((exact(x_t, tt) - eps) ** 2))
sigma = np.sqrt((1 - schedule.alphas_cumprod) / schedule.alphas_cumprod)       # noise std in the data's units
mode_s = np.sqrt(mix_std.covs[0][0, 0])                                         # one mode's std, standardised
spacing = np.linalg.norm(mix_std.means[0] - mix_std.means[1])                   # distance between neighbours
for t, m, e in zip(EVAL_TS, model_loss, exact_loss):
    print(f"t = {t:4d}   sigma_t {sigma[t]:7.3f}   network {m:.4f}   exact (floor) {e:.4f}   "
          f"one mode s^2/(s^2+sigma^2) {mode_s**2 / (mode_s**2 + sigma[t]**2):.4f}")
floor = dict(zip(EVAL_TS, exact_loss))
claims.claim(floor[0] > 0.9 and floor[999] < 1e-3,
             "the floor is ~1 at t = 0 ({f0:.2f}: eps unpredictable) and ~0 at t = 999 ({f999:.0e})",
             f0=floor[0], f999=floor[999])
claims.claim(abs(floor[0] - mode_s**2 / (mode_s**2 + sigma[0] ** 2)) < 0.05,
             "at t = 0 the floor is one mode's s^2 / (s^2 + sigma^2): {f0:.3f} vs {formula:.3f} (s = {s:.3f}, sigma = {sig:.3f})",
             f0=floor[0], formula=mode_s**2 / (mode_s**2 + sigma[0] ** 2), s=mode_s, sig=sigma[0])
inner = [t for t in EVAL_TS if 0 < t < 800]
one_mode = {t: mode_s**2 / (mode_s**2 + sigma[t] ** 2) for t in EVAL_TS}
early = [t for t in EVAL_TS if t <= 100]
claims.claim(max(abs(floor[t] - one_mode[t]) for t in early) < 0.05,
             "up to t = 100 the floor follows one mode's s^2 / (s^2 + sigma_t^2) (largest gap {g:.3f}): the modes "
             "are not yet confused", g=max(abs(floor[t] - one_mode[t]) for t in early))
dip = min(inner, key=floor.get)
peak = max((t for t in inner if t > dip), key=floor.get)
claims.claim(mode_s < sigma[dip] < spacing and floor[dip] < 0.3 and floor[peak] > 0.45 and sigma[peak] > spacing / 3,
             "the floor dips at t = {dip} ({fd:.2f}), where sigma_t = {sd:.2f} lies between the mode width {s:.3f} "
             "and the spacing {sp:.2f}; it rises again to {fp:.2f} at t = {peak} (sigma_t = {spk:.2f})",
             dip=dip, fd=floor[dip], sd=sigma[dip], s=mode_s, sp=spacing, fp=floor[peak], peak=peak, spk=sigma[peak])
gap = max(m / e for t, m, e in zip(EVAL_TS, model_loss, exact_loss) if 0 < t < 999)
claims.claim(gap < 1.1, "the trained network is within 10 % of the floor at every t from 5 to 800 (worst ratio "
             "{gap:.3f})", gap=gap, quick=False)

fig, ax = plt.subplots(figsize=(5.5, 3.2))
ax.plot(EVAL_TS, model_loss, "o-", ms=3, label="trained MLP (EMA weights)")
ax.plot(EVAL_TS, exact_loss, "s--", ms=3, label="exact E[eps | x_t] (the floor)")
centers = (np.arange(config.loss_buckets) + 0.5) * T / config.loss_buckets
ax.plot(centers, trainer.log.loss_vs_t(), ":", color="0.5", label="training log (last 20%)")
ax.set_yscale("log")
ax.set_xlabel("time step t")
ax.set_ylabel("mean squared error of eps")
ax.legend(fontsize=7)
fig.tight_layout()
viz.save(fig, args.out / "loss_vs_t.png")

# %% [markdown]
# ## What the network predicts
#
# From $\epsilon_\theta$ we get the network's guess of the clean point,
# $\hat x_0 = (x_t - \sqrt{1 - \bar\alpha_t}\, \epsilon_\theta) / \sqrt{\bar\alpha_t}$ (``predict_x0_and_eps``). For
# small $t$ it is close to $x_t$; for large $t$, $x_t$ says little, and the best guess is a weighted average of the
# modes, which pulls every $\hat x_0$ towards the centre. Grey: $x_t$. Blue: the network's $\hat x_0$. Orange: the exact
# one.

# %%
fig, axes = plt.subplots(1, len(SHOW_TS), figsize=(3 * len(SHOW_TS), 3))
x0 = mix_std.sample(600, rng)
with trainer.ema.average_weights():
    for ax, t in zip(axes, SHOW_TS):
        tt = np.full(len(x0), t)
        x_t = q_sample(schedule, x0, tt, rng.standard_normal(x0.shape))
        x0_net, _ = predict_x0_and_eps(schedule, x_t, tt, trainer.model(x_t, tt).astype(np.float64), "epsilon")
        x0_exact, _ = predict_x0_and_eps(schedule, x_t, tt, exact(x_t, tt), "epsilon")
        ax.scatter(*x_t.T, s=1, color="0.75", linewidths=0, label="x_t")
        ax.scatter(*x0_exact.T, s=2, color="C1", linewidths=0, label="exact x0_hat")
        ax.scatter(*x0_net.T, s=2, color="C0", alpha=0.6, linewidths=0, label="network's x0_hat")
        ax.set_title(f"t = {t}, alpha_bar = {schedule.alphas_cumprod[t]:.2f}", fontsize=9)
        ax.set_xlim(-2.5, 2.5)
        ax.set_ylim(-2.5, 2.5)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=3, markerscale=5, fontsize=8, frameon=False)
fig.tight_layout(rect=(0, 0.08, 1, 1))
viz.save(fig, args.out / "denoised_predictions.png")

# %% [markdown]
# Next (chapter 7): plug $\epsilon_\theta$ into the reverse chain and draw new points, step by step.

# %%
claims.finish()   # every claim above was checked in this run: exit 1 if one failed
