# %% [markdown]
r"""
# Chapter 10 — Guidance: trading diversity for fidelity

A conditional model $\epsilon(x_t, t, y)$ samples $p(x \mid y)$. Classifier-free guidance (Ho & Salimans 2022) samples
something *more* typical of $y$ than that, by pushing each step away from what the unconditional model would do.
We watch it on labelled 2D mixtures, where the exact conditional denoiser is known (`tinydiff.analytic`:
`GaussianMixtureDenoiser(...)(x_t, t, y)` conditions on component $y$; the null label $K$ means "no condition").

## From Bayes to the guided score

By Bayes, $p(x_t \mid y) = p(y \mid x_t)\, q(x_t) / p(y)$, so the conditional score is the unconditional one plus a
classifier's:

$$\nabla \log p(x_t \mid y) = \nabla \log q(x_t) + \nabla \log p(y \mid x_t)$$

Classifier guidance (Dhariwal & Nichol 2021) scales the classifier term:
$\nabla \log q(x_t) + s\, \nabla \log p(y \mid x_t)$. Classifier-free guidance gets the classifier's gradient for free,
as the difference of two scores of one network trained with the label dropped (replaced by a null label) some of the
time:

$$\text{score}_s = \text{score}_u + s\, (\text{score}_c - \text{score}_u)
= \text{score}_c + (s - 1)\, \nabla \log p(y \mid x_t)$$

and since $\epsilon = -\sqrt{1 - \bar\alpha_t}\, \text{score}$ is linear in the score, the same combination holds for
$\epsilon$ (and for $x_0$ or $v$):
`samplers.sample(..., y=y, guidance_scale=s)` does it in one batched call of 2B points.

## Two conventions: $s$ and $w$

Ho & Salimans (2022, eq. 6) write $\tilde\epsilon = (1 + w)\, \epsilon_c - w\, \epsilon_u$: $w = 0$ is the plain
conditional model. Diffusers, Imagen and tinydiff write $\epsilon_u + s\, (\epsilon_c - \epsilon_u)$: $s = 1$ is the
conditional model, $s = 0$ the unconditional one. They are the same family with **$w = s - 1$**: "guidance 7.5" in
Stable Diffusion is $w = 6.5$ in the paper's notation.

## What to expect

At each noise level the guided score is that of $q(x_t \mid y)\, p(y \mid x_t)^{s-1}$: extra weight where the
classifier is confident. Samples move *away from the other classes* and concentrate; diversity drops as $s$ grows. (The
samples are not exactly distributed as $p(x \mid y)\, p(y \mid x)^{s-1}$: the guided fields at different $t$ are not the
diffused marginals of one distribution.)

Figures: `guided_field.png`, `guidance_8gaussians.png`, `guidance_two_classes.png`, `guidance_stats.png`,
`guidance_mlp.png`.
"""

# %%
from pathlib import Path

import numpy as np

from tinydiff import claims, viz
from tinydiff.analytic import GaussianMixture, GaussianMixtureDenoiser
from tinydiff.data.toy2d import gaussian_mixture_params
from tinydiff.samplers import sample, timesteps
from tinydiff.schedules import NoiseSchedule
from tinydiff.trained import load_trained

args = viz.chapter_args(10, "Chapter 10: guidance")

# ---- constants -------------------------------------------------------------------------------------------------
T = 1000                                          # diffusion steps
SCHEDULE = "cosine"                               # the schedule of the shipped conditional checkpoint too
SCALES = (0.0, 1.0, 3.0, 7.0)                     # guidance scales s of the sample figures (w = s - 1)
SCALES_FINE = (0.0, 1.0, 3.0, 7.0) if args.quick else (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.0, 10.0)
STEPS = 20 if args.quick else 50                  # DDIM / DDPM steps (trailing spacing)
N = 160 if args.quick else 800                    # samples per run (N / 8 per label)
FIELD_T = 300                                     # the step whose guided field we draw
TWO_CLASSES = dict(weights=[0.5, 0.5], means=[[-0.6, 0.0], [0.6, 0.0]], covs=[0.25 * np.eye(2)] * 2)
CHECKPOINT = Path(__file__).resolve().parents[1] / "data" / "checkpoints" / "8gaussians_conditional.npz"
CLIP = 3.0                                        # clamp the trained model's x0 estimate (standardised data: |x| < 1.8)
SEED = 0
# -----------------------------------------------------------------------------------------------------------------

rng = np.random.default_rng(SEED)
plt = viz.plt()
schedule = NoiseSchedule.from_name(SCHEDULE, T)
mixture = GaussianMixture.from_params(gaussian_mixture_params("8gaussians"))
exact = GaussianMixtureDenoiser(mixture, schedule)      # exact(x_t, t, y): y in 0..7, or the null label 8
MODE_STD = float(np.sqrt(mixture.covs[0, 0, 0]))          # 0.1
labels = np.arange(N) % mixture.K                        # N / 8 samples of each label
x_T = rng.standard_normal((N, 2))                        # one start noise for every figure
colors = plt.get_cmap("tab10")(labels % 10)


def scatter_by_label(ax, x, title, lim=3.2):
    ax.scatter(x[:, 0], x[:, 1], s=3, c=colors[: len(x)], linewidths=0)
    ax.set_title(title, fontsize=9)
    viz.square_axes(ax, lim)


# %% [markdown]
# ## The two conventions give the same sampler
#
# A hand-made model returning Ho & Salimans' $(1 + w)\, \epsilon_c - w\, \epsilon_u$, sampled *without* guidance, must
# give the same points as `sample(..., guidance_scale=s)` with $s = 1 + w$.

# %%
def ho_salimans(w):
    """eps~ = (1 + w) eps(x, t, y) - w eps(x, t, null), Ho & Salimans (2022), eq. 6, as a model."""
    return lambda x, t, y: (1 + w) * exact(x, t, y) - w * exact(x, t, np.full(len(x), exact.null_label))


for s in SCALES:
    ours = sample(exact, x_T.shape, schedule, method="ddim", steps=STEPS, x_T=x_T, y=labels, guidance_scale=s)
    theirs = sample(ho_salimans(s - 1), x_T.shape, schedule, method="ddim", steps=STEPS, x_T=x_T, y=labels)
    claims.claim(np.abs(ours - theirs).max() < 1e-10,
                 "s = {s:3.1f} <-> w = {w:4.1f}: the two conventions give the same samples (largest difference {d:.1e})",
                 s=s, w=s - 1, d=np.abs(ours - theirs).max())

# %% [markdown]
# ## The guided field
#
# The arrows are $(1 - \bar\alpha_t)$ times the guided score for label 0 (the mode on the right), at $t$ = FIELD_T:
# $\sqrt{\bar\alpha_t}\, \mathbb{E}[x_0 \mid x_t] - x_t$ with the guided $\mathbb{E}[x_0 \mid x_t]$. $s = 0$ pulls
# towards all eight modes, $s = 1$ towards mode 0 only. For $s > 1$ the $(s - 1)\, \nabla \log p(y \mid x_t)$ term adds
# a push away from the other modes, strongest where they are. At this noise level the pull towards mode 0 dominates
# everywhere once $s \ge 1$, so the *directions* barely change with $s$ (drawn to scale, the panels $s = 1, 3, 7$ look
# alike). What changes is the strength and where the arrows meet. So each arrow here shows only its direction, and its
# colour (one log scale shared by all panels) its length: the field grows with $s$, and its zero, where the arrows meet,
# moves from mode 0's centre outwards, away from the other modes: the outward push the samples show below.

# %%
gx, gy = np.meshgrid(np.linspace(-3.2, 3.2, 17), np.linspace(-3.2, 3.2, 17))      # (G, G)
grid = np.stack([gx.ravel(), gy.ravel()], axis=1)                                   # (G G, 2)
ab = schedule.alphas_cumprod[FIELD_T]
score_c = exact.posterior(grid, ab, np.zeros(len(grid), dtype=np.int64))["score"]
score_u = exact.posterior(grid, ab, np.full(len(grid), exact.null_label))["score"]
field = np.stack([(1 - ab) * (score_u + s * (score_c - score_u)) for s in SCALES])   # (S, G G, 2)
fig = viz.vector_field(gx, gy, field[..., 0].reshape(-1, 17, 17), field[..., 1].reshape(-1, 17, 17),
                       [f"{FIELD_T}, s = {s:g}" for s in SCALES], data=mixture.sample(1000, rng=rng), unit=True,
                       color_label="(1 - ab_t) |guided score|")
viz.save(fig, args.out / "guided_field.png")
line = np.stack([np.linspace(0.5, 3.5, 3001), np.zeros(3001)], axis=1)             # (L, 2): the ray through mode 0
line_c = exact.posterior(line, ab, np.zeros(len(line), dtype=np.int64))["score"][:, 0]
line_u = exact.posterior(line, ab, np.full(len(line), exact.null_label))["score"][:, 0]
meet = {s: float(line[np.argmin(np.abs(line_u + s * (line_c - line_u))), 0]) / np.sqrt(ab) for s in SCALES[1:]}
length = {s: float(np.median(np.hypot(*f.T))) for s, f in zip(SCALES, field)}
claims.claim(abs(meet[1.0] - 2) < 0.01 and meet[1.0] < meet[3.0] < meet[7.0] and length[7.0] > 2 * length[1.0],
             "the guided field meets at radius {m1:.2f} (mode 0's centre) for s = 1, {m3:.2f} for s = 3 and {m7:.2f} "
             "for s = 7 (in data units), and its median length grows from {l1:.2f} to {l7:.2f}",
             m1=meet[1.0], m3=meet[3.0], m7=meet[7.0], l1=length[1.0], l7=length[7.0])

# %% [markdown]
# ## Guidance on the 8 Gaussians, exact model
#
# Each colour is one label (N / 8 samples each), all from the same start noise, DDIM with $\eta = 0$. $s = 0$ ignores
# the label: every colour spreads over all modes. $s = 1$ is the exact conditional: each colour in its own mode, but a
# little *narrower* than the data (tangential std 0.087 with DDIM and 0.077 with DDPM, against 0.1). The model is exact,
# so the gap is the sampler's: with 50 trailing steps the final jump starts from $t_\text{last} = 19$ ($\sigma = 0.04$)
# and returns the posterior mean $\mathbb{E}[x_0 \mid x_{19}]$, whose spread is
# $0.1 \sqrt{\mathrm{snr} \cdot 0.1^2 / (1 + \mathrm{snr} \cdot 0.1^2)} = 0.092$ (chapter 8's final-step shrinkage, with
# the modes' std 0.1), and the discretisation of the remaining steps shrinks it a little more. $s = 3$ and 7 push each
# mode outwards (away from the other seven) and squeeze it, most strongly along the circle, where the neighbouring modes
# are.

# %%
fig, axes = plt.subplots(1, len(SCALES), figsize=(2.8 * len(SCALES), 2.9))
for ax, s in zip(axes, SCALES):
    x = sample(exact, x_T.shape, schedule, method="ddim", steps=STEPS, x_T=x_T, y=labels, guidance_scale=s)
    scatter_by_label(ax, x, f"s = {s:g}  (w = {s - 1:g})")
viz.save(fig, args.out / "guidance_8gaussians.png")

# %% [markdown]
# ## Two overlapping classes
#
# Now the classes overlap: two wide Gaussians (std 0.5) centred at $x = -0.6$ and $+0.6$. Samples of label 1 (orange)
# with $s = 1$ cover its whole Gaussian, including the half-plane where class 0 is more likely. As $s$ grows they leave
# the region claimed by class 0 (the dashed line is the boundary $p(y = 1 \mid x) = 1/2$) and pile up where the
# classifier is most confident: far to the right. That is what guidance does to images too: more recognisably "y", less
# varied.

# %%
two = GaussianMixture(**TWO_CLASSES)
two_exact = GaussianMixtureDenoiser(two, schedule)
ones = np.ones(N, dtype=np.int64)
fig, axes = plt.subplots(1, len(SCALES), figsize=(2.8 * len(SCALES), 2.9))
two_stats = {}
for ax, s in zip(axes, SCALES):
    x = sample(two_exact, x_T.shape, schedule, method="ddim", steps=STEPS, x_T=x_T, y=ones, guidance_scale=s)
    two_stats[s] = (float(x[:, 0].mean()), float(np.mean(x[:, 0] < 0)))
    ax.axvline(0, color="k", ls="--", lw=0.8)
    ax.scatter(x[:, 0], x[:, 1], s=3, color="C1", linewidths=0)
    ax.set_title(f"label 1, s = {s:g}\nmean x = {x[:, 0].mean():+.2f}, std {x[:, 0].std():.2f}", fontsize=8)
    ax.set_aspect("equal")
    ax.set_xlim(-2.5, 2.5)
    ax.set_ylim(-2.5, 2.5)
    ax.set_xticks([])
    ax.set_yticks([])
print("two classes: p(x | y = 1) has mean x = +0.60, std 0.50")
viz.save(fig, args.out / "guidance_two_classes.png")
guided = [s for s in SCALES if s >= 1]
claims.claim(all(two_stats[a][0] < two_stats[b][0] and two_stats[a][1] >= two_stats[b][1] for a, b in zip(guided, guided[1:])),
             "as s grows the label-1 samples move right (mean x {m}) and leave class 0's half-plane (fraction at x < 0: "
             "{f})", m=[round(float(two_stats[s][0]), 2) for s in guided], f=[round(float(two_stats[s][1]), 3) for s in guided],
             quick=False)

# %% [markdown]
# ## How far, how narrow: measured against $s$
#
# For each sample of label $y$, split its offset from the centre $\mu_y$ into a radial part (outwards, away from the
# origin and the other modes) and a tangential part (along the circle). Deterministic DDIM keeps the push it gets at
# high noise; DDPM's fresh noise washes most of it out again, so with this exact, well-separated model stochastic
# sampling barely responds to guidance. Dots: the trained conditional MLP (next section), DDIM.


# %%
def offsets(x, y, mix):
    """(right-mode fraction, mean radial offset, tangential std) of samples x (N, 2) with labels y, data units."""
    nearest = np.argmin(((x[:, None, :] - mix.means[None]) ** 2).sum(-1), axis=1)   # (N,)
    unit = mix.means[y] / np.linalg.norm(mix.means[y], axis=1, keepdims=True)      # (N, 2) outward direction
    d = x - mix.means[y]                                                          # (N, 2)
    radial, tangential = (d * unit).sum(1), d[:, 1] * unit[:, 0] - d[:, 0] * unit[:, 1]
    return float(np.mean(nearest == y)), float(np.median(radial)), float(tangential.std())


stats = {}
for method in ("ddim", "ddpm"):
    stats[method] = np.array([offsets(sample(exact, x_T.shape, schedule, method=method, steps=STEPS, x_T=x_T,
                                             y=labels, guidance_scale=s, rng=SEED), labels, mixture)
                              for s in SCALES_FINE])                              # (S, 3)

ddim, ddpm = stats["ddim"], stats["ddpm"]
at = {s: i for i, s in enumerate(SCALES_FINE)}
guided_fine = [s for s in SCALES_FINE if s >= 1]
claims.claim(ddim[at[0.0], 0] < 0.25 and ddim[at[1.0], 0] == 1.0,
             "s = 0 ignores the label ({f0:.0%} of the samples in the labelled mode); s = 1 puts every sample there",
             f0=ddim[at[0.0], 0])
final_t = int(timesteps(schedule, STEPS)[-1])
snr_last = 1 / schedule.sigmas[final_t] ** 2
predicted = MODE_STD * np.sqrt(snr_last * MODE_STD**2 / (1 + snr_last * MODE_STD**2))
claims.claim(ddim[at[1.0], 2] < predicted < MODE_STD and ddpm[at[1.0], 2] < MODE_STD,
             "s = 1 is a little narrower than the data: tangential std {a:.3f} (DDIM), {b:.3f} (DDPM) against {d}; "
             "the final jump from t_last = {t} alone predicts {p:.3f}", a=ddim[at[1.0], 2], b=ddpm[at[1.0], 2],
             d=MODE_STD, t=final_t, p=predicted, quick=False)
claims.claim(all(ddim[at[a], 1] < ddim[at[b], 1] and ddim[at[a], 2] > ddim[at[b], 2]
                 for a, b in zip(guided_fine, guided_fine[1:])),
             "with DDIM, every step up in s from 1 pushes the mode further out (median radial offset {r}) and squeezes "
             "it along the circle (tangential std {t})", r=[round(float(ddim[at[s], 1]), 3) for s in guided_fine],
             t=[round(float(ddim[at[s], 2]), 3) for s in guided_fine], quick=False)
s_max = SCALES_FINE[-1]
claims.claim(ddpm[at[s_max], 1] < ddim[at[s_max], 1] / 3,
             "DDPM barely responds: at s = {s:g} its median radial offset is {b:+.3f}, against DDIM's {a:+.3f}",
             s=s_max, b=ddpm[at[s_max], 1], a=ddim[at[s_max], 1], quick=False)

# %% [markdown]
# ## A trained conditional model
#
# `data/checkpoints/8gaussians_conditional.npz` is the MLP of chapter 6 with a label embedding, trained by
#
#     python -m tinydiff train --data 8gaussians --schedule cosine --max-beta 0.999 --steps 4000 --batch-size 512 \
#         --lr 2e-3 --conditional --out runs/8g_cond
#
# (10% of the labels replaced by the null label; the uncapped cosine schedule, as chapter 8's model: docs/samplers.md).
# One network gives $\epsilon(x, t, y)$ and $\epsilon(x, t, \varnothing)$ ($\varnothing$: the null label). It works in
# standardised coordinates; samples are mapped back with the checkpoint's Standardizer. Its $x_0$ estimate is clamped to
# $[-3, 3]$ (`clip`): at the cosine schedule's first step ($\sigma = 2 \cdot 10^4$) a 1% error in $\epsilon$ is an $x_0$
# error of 200, and the deterministic sampler would carry it to the end. Its unconditional half ($s = 0$) is the weaker
# one: only 10% of the training examples taught it, and a few of its samples land between modes. Up to $s \approx 3$ it
# behaves like the exact model; at large $s$ it amplifies its own errors ($\epsilon_c - \epsilon_u$ is a small
# difference of two inexact predictions) and the modes widen again instead of narrowing.

# %%
trained = load_trained(CHECKPOINT)           # the network with its schedule, prediction type, scaling and labels
config = trained.config
print(f"trained model: {trained.network.num_parameters()} parameters, {config.steps} steps, label dropout "
      f"{config.label_dropout}, null label {trained.null_label}")


def sample_model(s, method="ddim"):
    """Samples in data units, from the same start noise x_T (standardised units) for every scale s."""
    return trained.sample(len(labels), label=labels, sampler=method, steps=STEPS, guidance=s, clip=CLIP, rng=SEED,
                          x_T=x_T)


fig, axes = plt.subplots(1, len(SCALES), figsize=(2.8 * len(SCALES), 2.9))
for ax, s in zip(axes, SCALES):
    scatter_by_label(ax, sample_model(s), f"trained MLP, s = {s:g}")
viz.save(fig, args.out / "guidance_mlp.png")
stats["mlp"] = np.array([offsets(sample_model(s), labels, mixture) for s in SCALES_FINE])

fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
names = ("fraction in the labelled mode", "median radial offset (outwards)", "tangential std (along the circle)")
scales = np.array(SCALES_FINE)
for j, (ax, name) in enumerate(zip(axes, names)):
    keep = scales >= (0 if j == 0 else 1)  # offsets from the labelled mode mean something once s >= 1
    ax.plot(scales[keep], stats["ddim"][keep, j], "o-", label="exact, ddim")
    ax.plot(scales[keep], stats["ddpm"][keep, j], "s-", label="exact, ddpm")
    ax.plot(scales[keep], stats["mlp"][keep, j], "k.", ms=8, label="trained MLP, ddim")
    ax.set_xlabel("guidance scale s  (w = s - 1)")
    ax.set_title(name, fontsize=9)
axes[2].set_yscale("log")
axes[2].axhline(0.1, color="k", ls=":", lw=1, label="data (0.1)")
axes[2].legend(fontsize=7)
for s, row_ddim, row_ddpm, row_mlp in zip(SCALES_FINE, stats["ddim"], stats["ddpm"], stats["mlp"]):
    print(f"s = {s:4.1f}: exact ddim right mode {row_ddim[0]:.2f}, radial {row_ddim[1]:+.3f}, tangential std "
          f"{row_ddim[2]:.3f} | ddpm radial {row_ddpm[1]:+.3f}, tangential std {row_ddpm[2]:.3f} | MLP right mode "
          f"{row_mlp[0]:.2f}, radial {row_mlp[1]:+.3f}, tangential std {row_mlp[2]:.3f}")
mlp = stats["mlp"]
claims.claim(mlp[at[0.0], 0] < 0.25 and min(mlp[at[s], 0] for s in guided_fine) >= 0.99,
             "the trained MLP: s = 0 ignores the label ({f:.0%} in the labelled mode), every s >= 1 hits it (at least "
             "{h:.1%} of the samples)", f=mlp[at[0.0], 0], h=min(mlp[at[s], 0] for s in guided_fine), quick=False)
upto3 = [s for s in guided_fine if s <= 3]
claims.claim(all(abs(mlp[at[s], 2] / ddim[at[s], 2] - 1) < 0.5 for s in upto3),
             "up to s = 3 the MLP's tangential std is within 50 % of the exact model's ({m} vs {e})",
             m=[round(float(mlp[at[s], 2]), 3) for s in upto3], e=[round(float(ddim[at[s], 2]), 3) for s in upto3], quick=False)
claims.claim(mlp[at[s_max], 2] > 2 * mlp[at[3.0], 2],
             "at large s the MLP's modes widen again: tangential std {a:.3f} at s = 3, {b:.3f} at s = {s:g}",
             a=mlp[at[3.0], 2], b=mlp[at[s_max], 2], s=s_max, quick=False)
viz.save(fig, args.out / "guidance_stats.png")

# %%
claims.finish()   # every claim above was checked in this run: exit 1 if one failed
