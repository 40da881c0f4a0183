# %% [markdown]
r"""
# Chapter 9 — The score and the ODE: Tweedie, the probability-flow ODE, likelihoods and inversion

A noise predictor is secretly a **score model**: an estimate of $\nabla_x \log q_t(x)$, the direction in which the noisy
data density grows fastest. This chapter looks at that field for the 8 Gaussians (whose exact score we know,
`tinydiff.analytic`), follows it with an ODE that turns noise into data *deterministically*, and uses that ODE twice:
to compute exact log-likelihoods, and to encode data back into noise.

## Tweedie's formula

With $x_t = \sqrt{\bar\alpha_t}\, x_0 + \sqrt{1 - \bar\alpha_t}\, \epsilon$, the noisy density is
$q_t(x) = \int \mathcal{N}\big(x; \sqrt{\bar\alpha_t}\, x_0, (1 - \bar\alpha_t) I\big)\, p(x_0)\, dx_0$.
Differentiate under the integral:

$$\nabla_x \mathcal{N}\big(x; \sqrt{\bar\alpha_t}\, x_0, (1 - \bar\alpha_t) I\big)
= -\frac{x - \sqrt{\bar\alpha_t}\, x_0}{1 - \bar\alpha_t}\, \mathcal{N}(\ldots),$$

so

$$\nabla \log q_t(x) = -\frac{x - \sqrt{\bar\alpha_t}\, \mathbb{E}[x_0 \mid x_t = x]}{1 - \bar\alpha_t}
= -\frac{\mathbb{E}[\epsilon \mid x_t = x]}{\sqrt{1 - \bar\alpha_t}}$$

$$\mathbb{E}[x_0 \mid x_t] = \frac{x_t + (1 - \bar\alpha_t)\, \nabla \log q_t(x_t)}{\sqrt{\bar\alpha_t}}
\qquad \text{(Tweedie / Efron 2011, eq. 1.4)}$$

The minimiser of the DDPM loss is $\epsilon_\theta = \mathbb{E}[\epsilon \mid x_t]$ (a squared error is minimised by
the conditional mean), so a perfectly trained network gives the score:
$\text{score} = -\epsilon_\theta / \sqrt{1 - \bar\alpha_t}$ (`convert_prediction(..., "score")`).

## The probability-flow ODE

Song et al. (2021b, "Score-based generative modeling through SDEs") write the forward process as an SDE,
$dx = f(x, t)\, dt + g(t)\, dw$, and show (their eq. 13) that the ODE

$$\frac{dx}{dt} = f(x, t) - \tfrac{1}{2} g(t)^2\, \nabla \log q_t(x)$$

moves the points so that at every $t$ they are distributed as $q_t$: the same marginals as the SDE, with no noise. In
the frame $z = x_t / \sqrt{\bar\alpha_t}$, $\sigma = \sqrt{(1 - \bar\alpha_t) / \bar\alpha_t}$, where
$z = x_0 + \sigma \epsilon$, it is simply (Karras et al. 2022, eq. 4)

$$\frac{dz}{d\sigma} = -\sigma\, \nabla_z \log p(z; \sigma) = \epsilon(z, \sigma):$$

DDIM with $\eta = 0$ is Euler's method on it.

## Likelihood through the ODE

An ODE is an invertible map, so the change of variables applies (Chen et al. 2018, "Neural ODEs", Thm. 1):
$\frac{d}{d\sigma} \log p\big(z(\sigma)\big) = -\nabla_z \cdot \epsilon(z, \sigma)$. Integrating from the data to
$\sigma_\text{max}$, where $p$ is the Gaussian prior,

$$\log p_0(x) = \log \mathcal{N}\big(z(\sigma_\text{max}); 0, (1 + \sigma_\text{max}^2) I\big) +
\int_{\sigma_\text{min}}^{\sigma_\text{max}} \nabla_z \cdot \epsilon\big(z(\sigma), \sigma\big)\, d\sigma$$

(`tinydiff.likelihood.ode_nll`, Song et al. 2021b, Sec. 4.3 and App. D.2). The divergence is a trace: exact for 2D, or
Hutchinson's unbiased estimate $\mathbb{E}_v[v^\top J v]$ with random $\pm 1$ vectors $v$ for high dimensions
(Grathwohl et al. 2018).

## Inversion

Running the deterministic sampler backwards maps data to the noise that would produce it (DDIM inversion, Song et al.
2021, Sec. 4.3). Each backward step needs $\epsilon$ at the point it is stepping *to*; the usual approximation uses the
point it starts from, and fixed-point iterations (`invert(..., fixed_point_iters=k)`) re-evaluate $\epsilon$ at the new
point until the step is consistent.

Figures: `tweedie.png`, `score_field.png`, `flow_1d.png`, `likelihood.png`, `inversion.png`, and for a trained
network `score_field_learned.png`, `score_error.png`, `likelihood_learned.png`.
"""

# %%
from pathlib import Path

import numpy as np

from tinydiff import claims, viz
from tinydiff.threads import blas_threads
from tinydiff.analytic import GaussianMixture, GaussianMixtureDenoiser
from tinydiff.data.toy2d import gaussian_mixture_params
from tinydiff.diffusion import convert_prediction
from tinydiff.likelihood import ode_nll
from tinydiff.samplers import ODE_SIGMA_MAX, invert, sample
from tinydiff.schedules import NoiseSchedule
from tinydiff.trained import load_trained

args = viz.chapter_args(9, "Chapter 9: the score and the ODE")

# ---- constants -------------------------------------------------------------------------------------------------
T = 1000                                          # diffusion steps
SCHEDULE = "cosine"                               # as in chapter 8
FIELD_STEPS = (20, 150, 400, 700)                 # the time steps whose score field we draw
GRID = 15 if args.quick else 21                   # arrows per side of the quiver plots
N_TWEEDIE = 60 if args.quick else 150             # noisy points denoised in the Tweedie figure
FLOW_1D = dict(weights=[0.3, 0.5, 0.2], means=[[-2.0], [0.5], [2.5]], covs=[[[0.05]], [[0.1]], [[0.02]]])
N_FLOW = 30 if args.quick else 60                 # paths in the 1D flow figure
N_NLL = 40 if args.quick else 200                 # points whose likelihood we compute
N_PROBES = 2 if args.quick else 8                 # Hutchinson probe draws averaged
N_INVERT = 50 if args.quick else 200              # points inverted
INVERT_STEPS = (10, 50) if args.quick else (10, 20, 50, 100)
FIXED_POINT_ITERS = (0, 1, 3) if args.quick else (0, 1, 2, 3, 4, 6, 8)
CHECKPOINT = Path(__file__).resolve().parents[1] / "data" / "checkpoints" / "8gaussians.npz"  # a trained MLP
N_ERROR = 200 if args.quick else 2000             # points of q_t per step where the learned eps is checked
N_NLL_LEARNED = 16 if args.quick else 150         # points whose likelihood the trained model gives
NLL_RTOL = 1e-2 if args.quick else 1e-3           # solve_ivp tolerance for the trained model's likelihood
SEED = 0
# -----------------------------------------------------------------------------------------------------------------

rng = np.random.default_rng(SEED)
plt = viz.plt()
schedule = NoiseSchedule.from_name(SCHEDULE, T)
mixture = GaussianMixture.from_params(gaussian_mixture_params("8gaussians"))
exact = GaussianMixtureDenoiser(mixture, schedule)
data = mixture.sample(2000, rng=rng)
MODE_STD = float(np.sqrt(mixture.covs[0, 0, 0]))                                # 0.1

# %% [markdown]
# ## Tweedie's formula, checked, and what it looks like
#
# `GaussianMixtureDenoiser.posterior` computes $\mathbb{E}[x_0 \mid x_t]$ by Gaussian conditioning inside each component
# and the score by differentiating $\log q_t$: two different routes. Tweedie says they agree; the printed gap is
# rounding error. The figure draws, for noisy points $x_t$ (grey) at a few $t$, the arrow to their denoised guess
# $\mathbb{E}[x_0 \mid x_t]$ (blue). At small $t$ each point is pulled into its own mode; at large $t$, $x_t$ says
# little and the guesses are pulled towards the data's mean (at $t = 700$, $\sigma \approx 2$, to about radius 1.2 from
# the modes' 2).

# %%
fig, axes = plt.subplots(1, len(FIELD_STEPS), figsize=(3 * len(FIELD_STEPS), 3.1))
tweedie_gap, pulled = 0.0, {}                        # pulled[t] = (RMS distance to the nearest mean, RMS radius)
for ax, t in zip(axes, FIELD_STEPS):
    ab = schedule.alphas_cumprod[t]
    x_t = mixture.marginal(ab).sample(N_TWEEDIE, rng=rng)                # points of q_t
    post = exact.posterior(x_t, ab)
    tweedie = convert_prediction(schedule, x_t, np.full(N_TWEEDIE, t), post["score"], "score", "sample")
    tweedie_gap = max(tweedie_gap, np.abs(tweedie - post["x0"]).max())
    nearest = np.sqrt(((tweedie[:, None] - mixture.means[None]) ** 2).sum(-1).min(1))   # (N,) to the nearest mean
    pulled[t] = (float(np.sqrt(np.mean(nearest**2))), float(np.sqrt(np.mean((tweedie**2).sum(1)))))
    ax.scatter(data[:, 0], data[:, 1], s=1, color="0.85", linewidths=0)
    ax.quiver(x_t[:, 0], x_t[:, 1], *(tweedie - x_t).T, angles="xy", scale_units="xy", scale=1, width=0.003,
              color="0.5", alpha=0.6)
    ax.plot(x_t[:, 0], x_t[:, 1], ".", color="0.4", ms=2)
    ax.plot(tweedie[:, 0], tweedie[:, 1], ".", color="C0", ms=3)
    ax.set_title(f"t = {t}, sigma = {schedule.sigmas[t]:.2f}", fontsize=9)
    ax.set_aspect("equal")
    ax.set_xlim(-3.5, 3.5)
    ax.set_ylim(-3.5, 3.5)
    ax.set_xticks([])
    ax.set_yticks([])
fig.suptitle("x_t (grey) -> E[x0 | x_t] = (x_t + (1 - ab) score) / sqrt(ab)  (blue)", fontsize=9)
fig.tight_layout()
viz.save(fig, args.out / "tweedie.png")
claims.claim(tweedie_gap < 1e-12, "Gaussian conditioning and Tweedie's formula agree to rounding: largest gap {g:.1e}",
             g=tweedie_gap)
small_t, large_t = FIELD_STEPS[0], FIELD_STEPS[-1]
claims.claim(pulled[small_t][0] < np.sqrt(2) * MODE_STD and pulled[large_t][1] < 0.7 * pulled[small_t][1],
             "at t = {a} each guess sits in a mode (RMS distance to the nearest centre {d:.3f}, the data's is "
             "{dd:.3f}); at t = {b} the guesses are pulled towards the mean (RMS radius {r:.2f}, against {r0:.2f})",
             a=small_t, d=pulled[small_t][0], dd=np.sqrt(2) * MODE_STD, b=large_t, r=pulled[large_t][1],
             r0=pulled[small_t][1])

# %% [markdown]
# ## The score field
#
# How steep is the score? Near the centre of one Gaussian mode of std $s$, $q_t$ is
# $\mathcal{N}\big(\sqrt{\bar\alpha_t}\, \mu, (\bar\alpha_t s^2 + 1 - \bar\alpha_t) I\big)$, so
# $\nabla \log q_t(x) = -(x - \sqrt{\bar\alpha_t}\, \mu) / (\bar\alpha_t s^2 + 1 - \bar\alpha_t)$: its slope is
# $1 / (\bar\alpha_t s^2 + 1 - \bar\alpha_t)$, which grows as $t$ falls but stays bounded by $\approx 1 / s^2$ (100 for
# these modes of std 0.1). Only for point masses ($s = 0$) does it grow like $1 / \sigma^2$ without bound, the picture
# often drawn. Either way the raw field spans orders of magnitude, so we draw the bounded field
# $(1 - \bar\alpha_t)\, \nabla \log q_t(x) = \sqrt{\bar\alpha_t}\, \mathbb{E}[x_0 \mid x_t] - x_t$: the arrow from $x$
# to its (scaled) denoised guess. Late in the process (large $t$) it is the pull of one blurred blob towards the origin;
# as $t$ falls it splits into eight basins, and the boundaries between them (where the arrows turn) are where a
# sampler's choice of mode is made.

# %%
gx, gy = np.meshgrid(np.linspace(-3.2, 3.2, GRID), np.linspace(-3.2, 3.2, GRID))   # (G, G) each
grid = np.stack([gx.ravel(), gy.ravel()], axis=1)                                   # (G G, 2)
field = np.stack([(1.0 - schedule.alphas_cumprod[t]) * exact.score(grid, np.full(len(grid), t))
                  for t in FIELD_STEPS])                                             # (S, G G, 2)
u, v = field[..., 0].reshape(-1, GRID, GRID), field[..., 1].reshape(-1, GRID, GRID)  # (S, G, G)
viz.save(viz.vector_field(gx, gy, u, v, FIELD_STEPS, data=data, lim=3.4, color_label="(1 - ab_t) |score|"),
         args.out / "score_field.png")
centre, h = mixture.means[:1], 1e-5                                              # (1, 2): one mode's centre
slopes = {}
for t in (0, FIELD_STEPS[0], FIELD_STEPS[1]):
    ab = schedule.alphas_cumprod[t]
    at = np.sqrt(ab) * centre                                                    # the mode's centre in x_t
    step = np.array([[h, 0.0]])
    measured = -(exact.score(at + step, np.array([t])) - exact.score(at - step, np.array([t])))[0, 0] / (2 * h)
    slopes[t] = (measured, 1 / (ab * MODE_STD**2 + 1 - ab))
    print(f"t = {t:3d}: slope of the score at a mode's centre {measured:8.2f}; one mode: 1 / (ab s^2 + 1 - ab) = "
          f"{slopes[t][1]:8.2f}; 1 / sigma_t^2 = {1 / schedule.sigmas[t] ** 2:10.1f}")
claims.claim(all(abs(m / f - 1) < 0.01 for m, f in slopes.values()) and max(m for m, _ in slopes.values()) <= 1 / MODE_STD**2,
             "the score's slope at a mode is 1 / (ab s^2 + 1 - ab), at most 1 / s^2 = {b:.0f}: {m:.1f} at t = 0, "
             "where 1 / sigma_0^2 = {p:.0f}", b=1 / MODE_STD**2, m=slopes[0][0], p=1 / schedule.sigmas[0] ** 2)

# %% [markdown]
# ## The probability-flow ODE in 1D
#
# In one dimension we can draw the whole process: the background is the noisy density $q_t(x)$ (exact, from
# `GaussianMixture.marginal`), time runs from noise (left) to data (right). The white lines are ODE paths (DDIM,
# $\eta = 0$): smooth, never crossing (an ODE's solutions cannot cross), each carrying its share of probability to a
# mode. The red lines are DDPM paths from the same start points: they jitter, may cross, and a start point no longer
# decides the mode. Both are samplers of the same distribution (chapter 8 measures how well).

# %%
mix_1d = GaussianMixture(**FLOW_1D)
den_1d = GaussianMixtureDenoiser(mix_1d, schedule)
x_start = np.sort(rng.standard_normal((N_FLOW, 1)), axis=0)
_, ode = sample(den_1d, x_start.shape, schedule, method="ddim", steps=100, timestep_spacing="linspace",
                x_T=x_start, return_trajectory=True)
_, sde = sample(den_1d, x_start.shape, schedule, method="ddpm", steps=100, timestep_spacing="linspace",
                x_T=x_start, rng=SEED, return_trajectory=True)
order_kept = bool(np.all(np.diff(ode.x[:, :, 0], axis=1) >= 0))                  # start points were sorted
crossed = bool(np.any(np.diff(sde.x[:, :, 0], axis=1) < 0))
claims.claim(order_kept and crossed, "the ODE paths never cross (the sorted start points stay sorted at every step); "
             "the DDPM paths do")
t_img = np.linspace(0, T - 1, 200).astype(int)
x_img = np.linspace(-3.5, 3.5, 300)
density = np.stack([np.exp(mix_1d.marginal(schedule.alphas_cumprod[t]).log_prob(x_img[:, None])) for t in t_img])
fig, ax = plt.subplots(figsize=(8, 3.6))
ax.imshow(np.sqrt(density.T), origin="lower", aspect="auto", cmap="magma",
          extent=(t_img[0], t_img[-1], x_img[0], x_img[-1]))                       # sqrt: show the faint parts
t_path = np.maximum(ode.t, 0)                                                      # the clean end (t = -1) at 0
ax.plot(t_path, ode.x[:, :, 0], color="w", lw=0.7)
ax.plot(t_path[:len(sde.x)], sde.x[:, : N_FLOW // 3, 0], color="C3", lw=0.6, alpha=0.8)
ax.set_xlim(T - 1, 0)
ax.set_xlabel("t (noise on the left, data on the right)")
ax.set_ylabel("x")
ax.set_title("sqrt q_t(x); white: probability-flow ODE (ddim, eta = 0); red: DDPM", fontsize=9)
viz.save(fig, args.out / "flow_1d.png")

# %% [markdown]
# ## Likelihood through the ODE, against the true density
#
# `ode_nll` integrates the ODE and the divergence with SciPy's RK45 from $\sigma_\text{min} = \sigma_0$ to the last
# finite $\sigma$. It returns $-\log p$ of $x_0 + \sigma_\text{min} \epsilon$ (the data blurred by $\sigma_0 = 0.006$,
# far below the modes' 0.1), so we compare with the mixture whose covariances are $S_k + \sigma_\text{min}^2 I$. Left:
# points from the data and points off it (uniform in a box: up to ~200 nats less likely), exact divergence; they sit on
# the diagonal to within 0.01 nats (RK45's tolerance). Right: the error of the Hutchinson estimate (one random $\pm 1$
# probe per point, fixed along the path): unbiased but noisy per point; averaging N_PROBES independent probes divides
# its spread by the square root of N_PROBES.

# %%
sigma_min = float(schedule.sigmas[0])
blurred = GaussianMixture(mixture.weights, mixture.means, mixture.covs + sigma_min**2 * np.eye(2))
x_nll = np.concatenate([mixture.sample(N_NLL // 2, rng=rng), rng.uniform(-3, 3, size=(N_NLL - N_NLL // 2, 2))])
true_nll = -blurred.log_prob(x_nll)
res = ode_nll(exact, x_nll, schedule)
claims.claim(np.abs(res.nll - true_nll).max() < 0.01,
             "exact divergence: ode_nll matches the true NLL within {e:.1e} nats over {n} points ({nfe} evaluations)",
             e=np.abs(res.nll - true_nll).max(), n=N_NLL, nfe=res.nfe)
claims.claim(true_nll[N_NLL // 2:].max() - np.median(true_nll[:N_NLL // 2]) > 100,
             "the uniform points are up to {d:.0f} nats less likely than a typical data point",
             d=true_nll[N_NLL // 2:].max() - np.median(true_nll[:N_NLL // 2]))
hutch = np.stack([ode_nll(exact, x_nll, schedule, divergence="hutchinson", rng=SEED + k).nll
                  for k in range(N_PROBES)])                                       # (N_PROBES, N_NLL)
err_1, err_k = hutch[0] - true_nll, hutch.mean(0) - true_nll
print(f"Hutchinson, 1 probe: error mean {err_1.mean():+.3f} std {err_1.std():.3f} nats; "
      f"mean of {N_PROBES}: mean {err_k.mean():+.3f} std {err_k.std():.3f}")
claims.claim(abs(err_1.mean()) < 3 * err_1.std() / np.sqrt(N_NLL),
             "Hutchinson is unbiased: mean error {m:+.3f} nats, within 3 standard errors ({se:.3f})",
             m=err_1.mean(), se=err_1.std() / np.sqrt(N_NLL), quick=False)
claims.claim(abs(err_1.std() / err_k.std() / np.sqrt(N_PROBES) - 1) < 0.3,
             "averaging {k} probes divides the spread by {r:.2f} (sqrt({k}) = {s:.2f})",
             k=N_PROBES, r=err_1.std() / err_k.std(), s=np.sqrt(N_PROBES), quick=False)
fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
on = slice(0, N_NLL // 2)
axes[0].plot(true_nll[on], res.nll[on], ".", ms=4, label="data points")
axes[0].plot(true_nll[N_NLL // 2:], res.nll[N_NLL // 2:], ".", ms=4, label="uniform in [-3, 3]^2")
lims = [true_nll.min() - 1, true_nll.max() + 1]
axes[0].plot(lims, lims, "k:", lw=1)
axes[0].set_xlabel("true -log p(x) (nats)")
axes[0].set_ylabel("ode_nll (exact divergence)")
axes[0].legend(fontsize=7)
edge = max(4.0, float(np.quantile(np.abs(err_1), 0.995)))                         # show (nearly) every error
bins = np.linspace(-edge, edge, 41)
axes[1].hist(err_1, bins=bins, alpha=0.6, label="Hutchinson, 1 probe")
axes[1].hist(err_k, bins=bins, alpha=0.6, label=f"mean of {N_PROBES} probes")
axes[1].axvline(0, color="k", lw=1)
axes[1].set_xlabel("ode_nll - true (nats)")
axes[1].legend(fontsize=7)
viz.save(fig, args.out / "likelihood.png")

# %% [markdown]
# ## DDIM inversion: data -> noise -> data
#
# Invert data points with $S$ steps, then sample from the resulting noise with the same $S$-step DDIM, and measure how
# far each point comes back from where it started. Both runs stop at $\sigma_\text{max} = 80$, where the noise is
# already $\mathcal{N}(0, I)$ for all purposes (the cosine schedule's last step, $\sigma = 2 \cdot 10^4$, only adds
# rounding error). Plain inversion
# (0 iterations) is off by the local truncation error; each fixed-point iteration makes the step more consistent.
# Solid lines: the median point, which converges fast when the steps are small. Dashed: the worst point. With 10 or 20
# steps the iteration does not help it: a few iterations even send it back to the wrong place, an error of order 1
# (neighbouring modes are 1.5 apart). Near the boundary between two modes the field changes fast, and a large step
# makes the fixed-point map a poor contraction, or none. With 50 or more steps even the worst point converges.
# Inversion is exact only for small steps, which is why editing methods use 50 or more.

# %%
x_inv = mixture.sample(N_INVERT, rng=rng)
round_trip = {}
fig, ax = plt.subplots(figsize=(6, 3.6))
for i, steps in enumerate(INVERT_STEPS):
    median, worst = [], []
    for k in FIXED_POINT_ITERS:
        noise = invert(exact, x_inv, schedule, steps=steps, fixed_point_iters=k, sigma_max=ODE_SIGMA_MAX)
        back = sample(exact, x_inv.shape, schedule, method="ddim", steps=steps, x_T=noise, sigma_max=ODE_SIGMA_MAX)
        err = np.sqrt(((back - x_inv) ** 2).sum(1))
        median.append(np.median(err))
        worst.append(err.max())
    print(f"{steps:3d} steps: median round-trip error " + " ".join(f"{e:.1e}" for e in median)
          + "; worst " + " ".join(f"{e:.1e}" for e in worst))
    round_trip[steps] = (np.array(median), np.array(worst))
    ax.semilogy(FIXED_POINT_ITERS, median, "o-", color=f"C{i}", label=f"{steps} steps (median)")
    ax.semilogy(FIXED_POINT_ITERS, worst, "--", color=f"C{i}", lw=1)
ax.set_xlabel("fixed-point iterations per inversion step")
ax.set_ylabel("|sample(invert(x0)) - x0|")
ax.set_title("solid: median point, dashed: worst point", fontsize=9)
ax.legend(fontsize=7)
viz.save(fig, args.out / "inversion.png")
claims.claim(all(np.all(np.diff(med) <= 1e-9) for med, _ in round_trip.values()),
             "every fixed-point iteration shrinks the median round-trip error, at every step count")
plain = [round_trip[s][0][0] for s in INVERT_STEPS]
claims.claim(np.all(np.diff(plain) < 0), "plain inversion gets more exact with smaller steps: median error {e}",
             e=[f"{e:.1e}" for e in plain])
big = [s for s in INVERT_STEPS if s <= 20]
small = [s for s in INVERT_STEPS if s >= 50]
claims.claim(all(round_trip[s][1][-1] > max(0.5, round_trip[s][1][0]) for s in big)
             and all(round_trip[s][1][-1] < 1e-3 for s in small),
             "the worst point gets *worse* with iterations at {b} steps ({wb}) and converges at {sm} ({ws})",
             b=big, wb=[f"{round_trip[s][1][0]:.1e} -> {round_trip[s][1][-1]:.1e}" for s in big],
             sm=small, ws=[f"{round_trip[s][1][-1]:.1e}" for s in small], quick=False)

# %% [markdown]
# ## A learned score
#
# `data/checkpoints/8gaussians.npz` is the MLP of chapter 6 trained for 4000 steps on the 8 Gaussians (cosine schedule,
# uncapped: `max_beta = 0.999`; chapter 8 and docs/samplers.md quote the command). It learned $\epsilon$ for
# *standardised* data, $x_\text{std} = (x - \bar x) / \mathrm{sd}$ with the data's mean $\bar x$ and std $\mathrm{sd}$,
# so we compare it with the exact denoiser of the same mixture seen through that map (means
# $(\mu - \bar x) / \mathrm{sd}$, covariances $S / \mathrm{sd}^2$). First its field, in standardised coordinates: at a
# glance, the picture of `score_field.png`.

# %%
trained = load_trained(CHECKPOINT)              # the network with its schedule, prediction type and data scaling
model_schedule, standardizer = trained.schedule, trained.standardizer
inv_std = np.diag(1.0 / standardizer.std)
mixture_std = GaussianMixture(mixture.weights, (mixture.means - standardizer.mean) / standardizer.std,
                              inv_std @ mixture.covs @ inv_std)                   # the data the network saw
exact_std = GaussianMixtureDenoiser(mixture_std, model_schedule)
lim_std = 3.2 / float(standardizer.std.mean())
gx, gy = np.meshgrid(np.linspace(-lim_std, lim_std, GRID), np.linspace(-lim_std, lim_std, GRID))
grid = np.stack([gx.ravel(), gy.ravel()], axis=1)                                   # (G G, 2)
with blas_threads(1):                                                         # small matmuls: one BLAS thread
    eps_learned = np.stack([trained.predict_x0_and_eps(grid, np.full(len(grid), t))[1]  # (S, G G, 2)
                            for t in FIELD_STEPS])
field = np.stack([-np.sqrt(1.0 - model_schedule.alphas_cumprod[t]) * e                # (1 - ab) score = -sqrt(1-ab) eps
                  for t, e in zip(FIELD_STEPS, eps_learned)])
u, v = field[..., 0].reshape(-1, GRID, GRID), field[..., 1].reshape(-1, GRID, GRID)
viz.save(viz.vector_field(gx, gy, u, v, [f"{t} (learned)" for t in FIELD_STEPS],
                          data=standardizer.transform(data), lim=lim_std * 1.06, color_label="(1 - ab_t) |score|"),
         args.out / "score_field_learned.png")

# %% [markdown] Then its error, on points drawn from $q_t$ itself (where the network was trained): the RMS of
# $\epsilon_\theta - \mathbb{E}[\epsilon \mid x_t]$ against $t$, next to the size of $\mathbb{E}[\epsilon \mid x_t]$:
# 2-3% of it at high noise, about 10% around $t \approx 100$ where the modes separate, and as large as $\epsilon$ itself
# at $t = 0$, where $\epsilon$ is barely predictable and matters least. The right panel is that error as the sampler
# sees it when it forms $\hat x_0 = (x_t - \sqrt{1 - \bar\alpha_t}\, \epsilon_\theta) / \sqrt{\bar\alpha_t}$: an
# $\epsilon$ error $e$ is an $x_0$ error $\sigma_t e$. At the cosine schedule's last step ($\sigma = 2 \cdot 10^4$) that
# is hundreds: the reason chapter 8 clamps $\hat x_0$ when it samples this network.

# %%
t_check = np.unique(np.concatenate([np.round(np.linspace(0, T - 1, 12 if args.quick else 40)), [T - 1]]).astype(int))
err, size = [], []
for t in t_check:
    x_t = mixture_std.marginal(model_schedule.alphas_cumprod[t]).sample(N_ERROR, rng=rng)
    tt = np.full(N_ERROR, t)
    with blas_threads(1):
        diff = trained.predict_x0_and_eps(x_t, tt)[1] - exact_std(x_t, tt)
    err.append(np.sqrt(np.mean(diff**2)))
    size.append(np.sqrt(np.mean(exact_std(x_t, tt) ** 2)))
err, size = np.array(err), np.array(size)
print(f"learned eps: RMS error {err.min():.3f}..{err.max():.3f} "
      f"(RMS of the exact eps {size.min():.2f}..{size.max():.2f})")
relative = err / size
high, middle = relative[t_check >= 600], relative[(t_check >= 50) & (t_check <= 300)]
claims.claim(high.max() < 0.05 and 0.05 < middle.max() < 0.2 and relative[0] > 0.5,
             "the learned eps is off by {h:.0%} of E[eps | x_t] or less at t >= 600, by up to {m:.0%} at 50 <= t <= 300, "
             "and by {z:.0%} at t = 0", h=high.max(), m=middle.max(), z=relative[0], quick=False)
fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.2))
axes[0].plot(t_check, err, "o-", ms=3, label="RMS(eps_theta - E[eps | x_t])")
axes[0].plot(t_check, size, "--", color="0.5", label="RMS(E[eps | x_t])")
axes[0].set_yscale("log")
axes[0].set_xlabel("t")
axes[0].legend(fontsize=7)
axes[1].semilogy(t_check, model_schedule.sigmas[t_check] * err, "o-", ms=3, color="C3")
axes[1].set_xlabel("t")
axes[1].set_title("sigma_t x RMS eps error: the x0 error it implies", fontsize=9)
viz.save(fig, args.out / "score_error.png")

# %% [markdown] Last, the learned model's likelihood through the same ODE. `ode_nll` asks the network at integer steps
# and interpolates in $t$, and takes the divergence by central differences (2D: four extra evaluations). The integrand
# is then only piecewise smooth, so we use `rtol = 1e-3` (1e-4 costs ten times more and moves the numbers by ~0.1 nats).
# Densities change units with the standardisation:
# $\log p(x) = \log p_\text{std}(x_\text{std}) - \sum_d \log \mathrm{sd}_d$. On the data the network is within a nat or
# two of the truth; off the data (uniform points, true NLL up to 200 nats) it is far too generous: it never saw those
# regions at low noise, and the density there is not something the loss asked it to get right.

# %%
x_nll = np.concatenate([mixture.sample(N_NLL_LEARNED * 2 // 3, rng=rng),
                        rng.uniform(-3, 3, size=(N_NLL_LEARNED - N_NLL_LEARNED * 2 // 3, 2))])
sigma_min_data = float(model_schedule.sigmas[0]) * standardizer.std                   # sigma_0 in data units, per axis
true_nll = -GaussianMixture(mixture.weights, mixture.means, mixture.covs + np.diag(sigma_min_data**2)).log_prob(x_nll)
with blas_threads(1):
    res = ode_nll(trained.network, standardizer.transform(x_nll), model_schedule, rtol=NLL_RTOL, atol=NLL_RTOL,
                  prediction_type=trained.prediction_type)
learned_nll = res.nll + np.log(standardizer.std).sum()                               # back to data units
on = slice(0, N_NLL_LEARNED * 2 // 3)
gap = learned_nll[on] - true_nll[on]
print(f"trained MLP: NLL - true on data points {gap.mean():+.2f} +- {gap.std():.2f} nats ({res.nfe} evaluations)")
generous = true_nll[on.stop:] - learned_nll[on.stop:]
claims.claim(abs(gap.mean()) < 2 and np.median(generous) > 10,
             "on the data the network's NLL is within 2 nats of the truth on average ({g:+.2f}); off it, it is too "
             "generous by a median {d:.0f} nats", g=gap.mean(), d=np.median(generous), quick=False)
fig, ax = plt.subplots(figsize=(4.5, 3.5))
ax.plot(true_nll[on], learned_nll[on], ".", ms=4, label="data points")
ax.plot(true_nll[on.stop:], learned_nll[on.stop:], ".", ms=4, label="uniform in [-3, 3]^2")
lims = [true_nll.min() - 1, true_nll.max() + 1]
ax.plot(lims, lims, "k:", lw=1)
ax.set_xlabel("true -log p(x) (nats)")
ax.set_ylabel("ode_nll of the trained MLP")
ax.legend(fontsize=7)
viz.save(fig, args.out / "likelihood_learned.png")

# %%
claims.finish()   # every claim above was checked in this run: exit 1 if one failed
