# %% [markdown]
r"""
# Chapter 2 — Noise schedules: how to spend T steps

Chapter 1 used Ho et al.'s linear schedule. The schedule decides *where along the way* information is destroyed, and
so which noise levels the model practises on and which steps a sampler visits. This chapter compares four schedules
through two curves and one number.

## What to look at

- **$\bar\alpha_t$**, the fraction of the data's variance left at step $t$:
  $x_t = \sqrt{\bar\alpha_t}\, x_0 + \sqrt{1 - \bar\alpha_t}\, \epsilon$.
- **log-SNR**, $\log\big(\bar\alpha_t / (1 - \bar\alpha_t)\big)$: signal-to-noise ratio on a log scale. Kingma et al.
  (2021, "Variational Diffusion Models", Sec. 5.1, eq. 17-18) show that in continuous time the diffusion loss is
  *invariant* to the schedule except at its end points $\mathrm{SNR}_{\min}$ and $\mathrm{SNR}_{\max}$: between them,
  the shape of the log-SNR curve changes only the variance of the Monte Carlo estimate of the loss, not its value. With
  a finite $T$ and a model that must learn every noise level, the shape still decides where the training effort and the
  sampler's steps go: Nichol & Dhariwal (2021, "Improved DDPM", Sec. 3.2) observe that the linear schedule's last steps
  are nearly pure noise and add little to sample quality, and design the cosine schedule to waste fewer of them.
- **terminal SNR**, the SNR at $t = T-1$. Sampling starts from $\mathcal{N}(0, I)$, which is the distribution of
  $x_{T-1}$ only if its SNR is 0. A schedule with terminal SNR 0.005 (Stable Diffusion's) leaks low-frequency signal
  into the "noise" the model is trained on, and the model learns to rely on it (Lin et al. 2023).

## The schedules (all in `tinydiff.schedules.NoiseSchedule`)

| schedule | definition | source |
| --- | --- | --- |
| `linear` | $\beta_t$ evenly spaced, $10^{-4} \ldots 0.02$ at $T = 1000$ | Ho et al. 2020 |
| `cosine` | $\bar\alpha(u) = \cos^2\big(\frac{u + s}{1 + s} \frac{\pi}{2}\big) \big/ \cos^2\big(\frac{s}{1 + s} \frac{\pi}{2}\big)$ | Nichol & Dhariwal 2021, eq. 17 |
| `sigmoid` | $\bar\alpha(u)$ from a shifted, scaled sigmoid | Chen 2023 |
| `scaled_linear` | $\sqrt{\beta_t}$ evenly spaced, $0.00085 \ldots 0.012$ | Stable Diffusion |

($u = t/T$ is the position along the chain.) `rescale_zero_terminal_snr()` (Lin et al. 2023, Alg. 1) moves any of them
to terminal SNR exactly 0 by shifting and scaling $\sqrt{\bar\alpha_t}$ so that its first value is kept and its last
becomes 0.

Figures: `alpha_bar.png`, `log_snr.png`, `why_T_matters.png`, `image_at_same_fraction.png`, `zero_terminal_snr.png`.
"""

# %%
import warnings

import numpy as np

from tinydiff import claims, viz
from tinydiff.diffusion import q_sample
from tinydiff.schedules import NoiseSchedule

args = viz.chapter_args(2, "Chapter 2: noise schedules")

# ---- constants -------------------------------------------------------------------------------------------------
T = 1000                 # steps of every schedule compared here
FEW_STEPS = 50           # a short chain, to see why T matters
FRACTIONS = [0.1, 0.25, 0.4, 0.55, 0.7, 0.85]  # positions t/T at which the image is shown
SEED = 0
# -----------------------------------------------------------------------------------------------------------------

schedules = {
    "linear": NoiseSchedule.linear(T),
    "cosine": NoiseSchedule.cosine(T),
    "sigmoid": NoiseSchedule.sigmoid(T),
    "scaled_linear": NoiseSchedule.scaled_linear(T),
}
plt = viz.plt()
u = np.arange(T) / T

# %% [markdown]
# ## $\bar\alpha_t$ and log-SNR
#
# The linear schedule destroys the signal quickly: $\bar\alpha_t$ is below 0.1 by the middle of the chain, so half of
# the steps are spent on nearly pure noise (a third below $\bar\alpha_t = 0.01$; cosine spends 7 % there). The cosine
# schedule falls gently and almost linearly in the middle. On the log-SNR plot *both* are nearly straight over the
# middle 10-90 % of the chain; what differs is the slope and the range they cover: the linear schedule falls from
# log-SNR +2 to -8 there (slope $\approx -12$ per unit of $t/T$), cosine from +3.5 to -3.7 (slope $\approx -8$), keeping
# most of its steps where the signal and the noise are of comparable size. Cosine's steep parts are the very first and
# very last few percent.

# %%
fig, ax = plt.subplots(figsize=(5, 3.2))
for name, s in schedules.items():
    ax.plot(u, s.alphas_cumprod, label=name)
ax.set_xlabel("t / T")
ax.set_ylabel("alpha_bar_t")
ax.legend(fontsize=8)
viz.save(fig, args.out / "alpha_bar.png")

fig, ax = plt.subplots(figsize=(5, 3.2))
for name, s in schedules.items():
    ax.plot(u, s.log_snr, label=name)
ax.set_xlabel("t / T")
ax.set_ylabel("log SNR = log(alpha_bar / (1 - alpha_bar))")
ax.legend(fontsize=8)
viz.save(fig, args.out / "log_snr.png")

print(f"{'schedule':>14} {'alpha_bar[T-1]':>15} {'terminal SNR':>13} {'log SNR at t=0':>15}")
for name, s in schedules.items():
    print(f"{name:>14} {s.alphas_cumprod[-1]:>15.3g} {s.terminal_snr:>13.3g} {s.log_snr[0]:>15.2f}")

linear, cosine = schedules["linear"], schedules["cosine"]
claims.claim(linear.alphas_cumprod[T // 2] < 0.1 and abs((linear.alphas_cumprod < 0.1).mean() - 0.5) < 0.05,
             "linear: alpha_bar is below 0.1 by the middle ({ab:.3f} at t = T/2): {frac:.0%} of the steps are nearly noise",
             ab=linear.alphas_cumprod[T // 2], frac=(linear.alphas_cumprod < 0.1).mean())
claims.claim(0.3 < (linear.alphas_cumprod < 0.01).mean() < 0.36 and (cosine.alphas_cumprod < 0.01).mean() < 0.08,
             "steps with alpha_bar < 0.01: linear {lin:.1%}, cosine {cos:.1%}",
             lin=(linear.alphas_cumprod < 0.01).mean(), cos=(cosine.alphas_cumprod < 0.01).mean())
middle = (u >= 0.1) & (u <= 0.9)
fits = {name: np.polyfit(u[middle], s.log_snr[middle], 1) for name, s in (("linear", linear), ("cosine", cosine))}
bend = {name: np.abs(schedules[name].log_snr[middle] - np.polyval(fit, u[middle])).max() for name, fit in fits.items()}
claims.claim(max(bend.values()) < 1.0 and -13 < fits["linear"][0] < -11 and -8.5 < fits["cosine"][0] < -7,
             "over t/T in [0.1, 0.9] both log-SNR curves are nearly straight (largest distance from a fitted line: "
             "linear {bl:.2f}, cosine {bc:.2f}); slopes linear {sl:.1f}, cosine {sc:.1f}",
             bl=bend["linear"], bc=bend["cosine"], sl=fits["linear"][0], sc=fits["cosine"][0])
claims.claim(abs(schedules["scaled_linear"].terminal_snr - 0.005) < 0.001,
             "Stable Diffusion's scaled_linear schedule ends at terminal SNR {snr:.4f} ~ 0.005",
             snr=schedules["scaled_linear"].terminal_snr)

# %% [markdown]
# ## Why $T$ matters
#
# With $T = 50$ and Ho et al.'s betas ($10^{-4} \ldots 0.02$) the chain stops at $\bar\alpha_{T-1} \approx 0.6$: most of
# the data is still there, and a sampler started from $\mathcal{N}(0, I)$ begins in the wrong place. tinydiff's
# `linear(T)` therefore scales the betas by $1000/T$ by default (as the improved-DDPM code does) and warns when a
# schedule does not reach noise.

# %%
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    unscaled = NoiseSchedule.linear(FEW_STEPS, scale_to_T=False)
print("warning raised:", caught[0].message if caught else None)
scaled = NoiseSchedule.linear(FEW_STEPS)
claims.claim(caught and abs(unscaled.alphas_cumprod[-1] - 0.6) < 0.01,
             "with T = {T} and betas 1e-4 .. 0.02 the chain stops at alpha_bar = {ab:.3f} ~ 0.6, and tinydiff warns",
             T=FEW_STEPS, ab=unscaled.alphas_cumprod[-1])

rng = np.random.default_rng(SEED)
image = viz.render_glyph("3")[None, None] * 2 - 1  # (1, 1, 28, 28) in [-1, 1]
eps = rng.standard_normal(image.shape)
last = np.array([FEW_STEPS - 1])
fig, axes = plt.subplots(1, 3, figsize=(9, 2.8))
axes[0].plot(np.arange(FEW_STEPS), unscaled.alphas_cumprod, label="betas as given")
axes[0].plot(np.arange(FEW_STEPS), scaled.alphas_cumprod, label="betas x 1000/T")
axes[0].set_title(f"alpha_bar, T = {FEW_STEPS}", fontsize=9)
axes[0].legend(fontsize=7)
for ax, (title, s) in zip(axes[1:], [("x_(T-1), betas as given", unscaled), ("x_(T-1), betas x 1000/T", scaled)]):
    ax.imshow(q_sample(s, image, last, eps)[0, 0], cmap="gray", vmin=-2.5, vmax=2.5)
    ax.set_title(f"{title}\nSNR = {s.terminal_snr:.2g}", fontsize=9)
    ax.axis("off")
viz.save(fig, args.out / "why_T_matters.png")

# %% [markdown]
# ## The same fraction of the way, two schedules
#
# The same image and the same noise, at the same fractions $t/T$ of the chain. Under the linear schedule the digit is
# nearly gone by ~40% of the chain (SNR 0.24 there); under cosine it survives much longer (SNR 1.8 at 40 %, still
# 0.25 at 70 %), so more of the model's training (and of a sampler's steps) happens where there is still something to
# denoise.

# %%
rows = []
for name in ("linear", "cosine"):
    s = schedules[name]
    for f in FRACTIONS:
        t = np.array([int(f * (T - 1))])
        rows.append((f"{name}\nt/T = {f}", q_sample(s, image, t, eps)[0, 0]))
fig, axes = plt.subplots(2, len(FRACTIONS), figsize=(1.6 * len(FRACTIONS), 3.8))
for ax, (title, img) in zip(axes.flat, rows):
    ax.imshow(img, cmap="gray", vmin=-2.5, vmax=2.5)
    ax.set_title(title, fontsize=7)
    ax.axis("off")
viz.save(fig, args.out / "image_at_same_fraction.png")
at = {f: int(f * (T - 1)) for f in (0.4, 0.7)}
claims.claim(linear.snr[at[0.4]] < 0.3 and cosine.snr[at[0.4]] > 1.5 and cosine.snr[at[0.7]] > 0.15,
             "SNR at 40 % of the chain: linear {l4:.2f}, cosine {c4:.2f}; at 70 %: cosine {c7:.2f}",
             l4=linear.snr[at[0.4]], c4=cosine.snr[at[0.4]], c7=cosine.snr[at[0.7]])

# %% [markdown]
# ## Zero terminal SNR
#
# Rescaling keeps $\bar\alpha_0$ and moves $\bar\alpha_{T-1}$ to exactly 0. The price: at $t = T-1$, $x_t$ is pure
# noise and an $\epsilon$-predicting model cannot say anything about $x_0$
# ($x_0 = (x_t - \sqrt{1 - \bar\alpha_t}\, \epsilon) / \sqrt{\bar\alpha_t}$ divides by 0), so such schedules are paired
# with v-prediction (chapter 3).

# %%
fig, ax = plt.subplots(figsize=(5, 3.2))
for name in ("linear", "scaled_linear"):
    s = schedules[name]
    z = s.rescale_zero_terminal_snr()
    ax.semilogy(u, s.alphas_cumprod, label=f"{name} (terminal SNR {s.terminal_snr:.1e})")
    ax.semilogy(u, np.maximum(z.alphas_cumprod, 1e-12), "--", label=f"{name}, rescaled (terminal SNR 0)")
    claims.claim(z.alphas_cumprod[0] == s.alphas_cumprod[0] and z.alphas_cumprod[-1] == 0,
                 "rescaling {name} keeps alpha_bar_0 = {ab0:.5f} and makes alpha_bar_(T-1) exactly {abT}",
                 name=name, ab0=z.alphas_cumprod[0], abT=z.alphas_cumprod[-1])
ax.set_xlabel("t / T")
ax.set_ylabel("alpha_bar_t (log scale; 0 drawn at 1e-12)")
ax.legend(fontsize=7)
viz.save(fig, args.out / "zero_terminal_snr.png")

# %%
claims.finish()   # every claim above was checked in this run: exit 1 if one failed
