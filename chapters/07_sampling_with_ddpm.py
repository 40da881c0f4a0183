# %% [markdown]
r"""
# Chapter 7 — Sampling with DDPM: running the chain backwards

Chapter 6 trained $\epsilon_\theta(x_t, t)$. Now we use it to draw new points: start from noise and step backwards,
$T$ steps, each one a small Gaussian move (Ho et al. 2020, Algorithm 2).

## One reverse step

If we knew $x_0$, the step back would be the posterior of chapter 3 (eq. 6-7):

$$q(x_{t-1} \mid x_t, x_0) = \mathcal{N}\big(\tilde\mu_t(x_t, x_0),\ \tilde\beta_t I\big),$$

$$\tilde\mu_t = \frac{\sqrt{\bar\alpha_{t-1}}\, \beta_t}{1 - \bar\alpha_t}\, x_0 +
\frac{\sqrt{\alpha_t}\, (1 - \bar\alpha_{t-1})}{1 - \bar\alpha_t}\, x_t, \qquad
\tilde\beta_t = \frac{1 - \bar\alpha_{t-1}}{1 - \bar\alpha_t}\, \beta_t.$$

We don't know $x_0$, so plug in the network's guess
$\hat x_0 = (x_t - \sqrt{1 - \bar\alpha_t}\, \epsilon_\theta) / \sqrt{\bar\alpha_t}$. Simplifying the mean gives Ho et
al.'s eq. 11:

$$\mu_\theta(x_t, t) = \frac{1}{\sqrt{\alpha_t}} \Big(x_t - \frac{\beta_t}{\sqrt{1 - \bar\alpha_t}}\,
\epsilon_\theta(x_t, t)\Big)$$

$$x_{t-1} = \mu_\theta(x_t, t) + \sigma_t z, \qquad z \sim \mathcal{N}(0, I) \qquad \text{(no noise at the last step)}$$

(Substitute $\hat x_0$ into $\tilde\mu_t$ and collect the $x_t$ terms: the coefficient is

$$\frac{\sqrt{\bar\alpha_{t-1}}\, \beta_t / \sqrt{\bar\alpha_t} +
\sqrt{\alpha_t}\, (1 - \bar\alpha_{t-1})}{1 - \bar\alpha_t}
= \frac{1}{\sqrt{\alpha_t}},$$

using $\bar\alpha_t = \alpha_t \bar\alpha_{t-1}$.) The first cell below checks the two forms agree to rounding.

## Which variance?

Two choices are both "right" in a limit (Ho et al. 2020, Sec. 3.2): $\sigma_t^2 = \tilde\beta_t$ (``fixed_small``) is
exact when the data are a single point; $\sigma_t^2 = \beta_t$ (``fixed_large``) is exact when the data are
$\mathcal{N}(0, I)$. With $T = 1000$ they hardly differ:
$\tilde\beta_t / \beta_t = (1 - \bar\alpha_{t-1}) / (1 - \bar\alpha_t)$ is above 0.99 from $t = 167$ on, so the two
chains differ only in their last steps, where the noise added is tiny either way. This chapter's run shows the same
spreads, the same MMD verdict and indistinguishable figures. The choice matters when the steps are few (a respaced
chain's big jumps have $\tilde\beta'$ well below $\beta'$) and for the log-likelihood: Nichol & Dhariwal (2021,
"Improved DDPM", Sec. 3.1 and Fig. 1-2) show that the first few steps dominate the bound, exactly where the two
variances differ most, and learn an interpolation between them to improve the NLL.

Figures written (to `chapters/out/07/` unless `--out` says otherwise):
`reverse_chain.png`, `x0_estimates.png`, `reverse_chain.gif`, `variance_choice.png`, `fewer_steps.png`.
"""

# %%
import time

import numpy as np

from tinydiff import claims, viz
from tinydiff.data.toy2d import make_dataset
from tinydiff.diffusion import predict_x0_and_eps, q_posterior
from tinydiff.metrics.points import mmd_test
from tinydiff.samplers import ddpm_step, respace, sample, timesteps
from tinydiff.schedules import NoiseSchedule
from tinydiff.train import TrainConfig, Trainer

args = viz.chapter_args(7, "Chapter 7: sampling with DDPM")

# ---- constants -------------------------------------------------------------------------------------------------
DATA = "moons"
STEPS = 150 if args.quick else 3000        # training steps (chapter 6 explains the training)
N_SAMPLES = 300 if args.quick else 1000    # points to draw
T = 100 if args.quick else 1000            # diffusion steps
FEW_STEPS = [10, 50]                       # respaced DDPM chains for the last figure
SEED = 0
# -----------------------------------------------------------------------------------------------------------------



def moon_distances(points: np.ndarray) -> np.ndarray:
    """Distance (N,) of each point (N, 2), in the data's units, to the nearer of the two noiseless half circles.

    The moons (``toy2d.moons``) are the arcs |p - c| = 1 around c_up = (-0.5, -0.25) (upper half) and
    c_low = (0.5, 0.25) (lower half), plus N(0, 0.05^2) noise: the data's median distance is about 0.03.
    """
    distances = []
    for centre, side in (((-0.5, -0.25), 1.0), ((0.5, 0.25), -1.0)):
        d = points - np.array(centre)                                          # (N, 2) from the arc's centre
        on_arc = np.abs(np.hypot(d[:, 0], d[:, 1]) - 1)                         # distance to the full circle
        to_ends = np.minimum(np.hypot(d[:, 0] - 1, d[:, 1]), np.hypot(d[:, 0] + 1, d[:, 1]))
        distances.append(np.where(side * d[:, 1] >= 0, on_arc, to_ends))       # the half circle only
    return np.minimum(*distances)


def median_distance(points_std: np.ndarray) -> float:
    """Median distance of points in the model's units (N, 2) to the crescents' centre lines."""
    return float(np.median(moon_distances(std.inverse_transform(points_std))))


def thickness(points_std: np.ndarray, far: float = 0.2) -> float:
    """How thin the crescents are: the median distance to the centre lines of the points on them (closer than far)."""
    d = moon_distances(std.inverse_transform(points_std))
    return float(np.median(d[d < far]))


def off_crescent(points_std: np.ndarray, far: float = 0.2) -> float:
    """Fraction of points (model units) farther than ``far`` (4 noise stds) from both crescents: between them."""
    return float(np.mean(moon_distances(std.inverse_transform(points_std)) > far))


config = TrainConfig(data=DATA, steps=STEPS, T=T, seed=SEED, n_train=2000 if args.quick else 20000, batch_size=512,
                     schedule="linear",                           # Ho et al.'s schedule (betas 1e-4 .. 0.02)
                     ema_decay=0.9 if args.quick else 0.995)     # a short run needs a short EMA memory
trainer = Trainer(config)
t0 = time.perf_counter()
trainer.train(progress=not args.quick)
print(f"trained {STEPS} steps in {time.perf_counter() - t0:.1f} s")
schedule, std = trainer.schedule, trainer.standardizer
trainer.ema.swap()                         # sample with the averaged weights from here on
model = trainer.model
data = std.transform(make_dataset(DATA, N_SAMPLES, rng=10_001))   # held-out points, in the model's units

# %% [markdown]
# ## One step by hand
#
# Take some $x_t$, ask the network for $\epsilon_\theta$, and compute the mean of $p_\theta(x_{t-1} \mid x_t)$ twice:
# through the posterior with $\hat x_0$ plugged in, and with eq. 11. Then compare with ``samplers.ddpm_step``.

# %%
rng = np.random.default_rng(SEED)
t = T // 2
x_t = rng.standard_normal((5, 2))
tt = np.full(5, t)
eps_theta = model(x_t, tt).astype(np.float64)
x0_hat, _ = predict_x0_and_eps(schedule, x_t, tt, eps_theta, "epsilon")
mean_posterior, var_small = q_posterior(schedule, x0_hat, x_t, tt)
alpha, beta, ab = schedule.alphas[t], schedule.betas[t], schedule.alphas_cumprod[t]
mean_eq11 = (x_t - beta / np.sqrt(1 - ab) * eps_theta) / np.sqrt(alpha)        # Ho et al. eq. 11
z = rng.standard_normal(x_t.shape)
step = ddpm_step(schedule, t, x_t, x0_hat, z, "fixed_small")
claims.claim(np.abs(mean_posterior - mean_eq11).max() < 1e-12,
             "the posterior mean with x0_hat plugged in equals eq. 11 to rounding ({gap:.1e})",
             gap=np.abs(mean_posterior - mean_eq11).max())
claims.claim(np.abs(step - (mean_eq11 + np.sqrt(var_small) * z)).max() < 1e-12,
             "ddpm_step is mean + sigma z to rounding ({gap:.1e})", gap=np.abs(step - (mean_eq11 + np.sqrt(var_small) * z)).max())
print(f"at t = {t}: beta_t = {beta:.4g}, beta~_t = {float(var_small.ravel()[0]):.4g}")

# %% [markdown]
# ## The whole chain
#
# ``sample(model, shape, schedule, method="ddpm")`` loops that step from $t = T-1$ to 0, starting from
# $\mathcal{N}(0, I)$. With ``return_trajectory=True`` it also returns every $x_t$ and every $\hat x_0$. The points stay
# a shapeless blob for most of the chain and find their crescents late, in the last tenth of the steps. The $x_0$
# estimates run ahead of them, but not from the start: $\hat x_0$ is a posterior *mean*, and at $t = T/2$ the best guess
# for every point is close to the average of the data, a tight blob in the middle. By $t = T/10$, where $x_t$ is still a
# blob, $\hat x_0$ already lies on thin crescents.

# %%
samples, traj = sample(model, (N_SAMPLES, 2), schedule, method="ddpm", rng=SEED + 1, return_trajectory=True)
show_t = [T - 1, T // 2, T // 4, T // 10, T // 40, 0]                       # steps to draw, denser near the end
idx = [int(np.flatnonzero(traj.t == s)[0]) for s in show_t]                   # traj.x[i] is x at step traj.t[i]
viz.save(viz.trajectory_strip(traj.x[idx + [-1]], show_t + ["samples"], title="x_t along the DDPM chain"),
         args.out / "reverse_chain.png")
viz.save(viz.trajectory_strip(traj.x0[idx], show_t, title="x0_hat(x_t, t) along the chain"),  # made at t[i]
         args.out / "x0_estimates.png")
L = len(traj.x)
frames = np.unique(np.r_[(L - np.geomspace(L, 1, 15 if args.quick else 50)).astype(int), L - 1])
viz.trajectory_gif(traj.x[frames], traj.t[frames], args.out / "reverse_chain.gif", trail=data)
_, p = mmd_test(samples, data, 200, rng=0)
claims.claim(p > 0.05, "MMD permutation test: the samples and held-out data are not told apart (p = {p:.3f} > 0.05)",
             p=p, quick=False)
at = {s: int(np.flatnonzero(traj.t == s)[0]) for s in (T // 2, T // 10)}
claims.claim((traj.x0[at[T // 2]].std(0) < 0.5 * data.std(0)).all(),
             "at t = T/2 x0_hat is pulled to the middle: spread {s0} against the data's {sd}",
             s0=traj.x0[at[T // 2]].std(0).round(2), sd=data.std(0).round(2), quick=False)
thin = {"data": median_distance(data), "x0_hat": median_distance(traj.x0[at[T // 10]]),
        "x_t": median_distance(traj.x[at[T // 10]]), "samples": median_distance(samples)}
claims.claim(thin["x0_hat"] < 2 * thin["data"] and thin["x_t"] > 3 * thin["data"] and thin["samples"] < 1.5 * thin["data"],
             "at t = T/10 x0_hat lies on the crescents (median distance to them {a:.3f}; data {d:.3f}) while x_t is "
             "still a blob ({b:.3f}); the samples end on them ({c:.3f})",
             a=thin["x0_hat"], d=thin["data"], b=thin["x_t"], c=thin["samples"], quick=False)

# %% [markdown]
# ## fixed_small against fixed_large
#
# The same start noise and the same step noise, two variances. Compare the clouds and the MMD test p-values.

# %%
panels = [("held-out data", data)]
by_variance = {}
for variance in ("fixed_small", "fixed_large"):
    x = sample(model, (N_SAMPLES, 2), schedule, method="ddpm", variance=variance, rng=SEED + 1)
    _, p = mmd_test(x, data, 200, rng=0)
    by_variance[variance] = (x, p)
    panels.append((f"{variance}\nMMD p = {p:.2f}", x))
    print(f"{variance}: p = {p:.3f}, spread of the samples {x.std(0).round(3)} (data {data.std(0).round(3)})")
viz.save(viz.scatter_strip(panels, lim=2.5, size=3, s=2), args.out / "variance_choice.png")
ho = NoiseSchedule.linear(1000)                                    # the text's statement is about T = 1000
ratio = ho.posterior_variance[1:] / ho.betas[1:]
from_t = 1 + int(np.argmax(ratio > 0.99))
claims.claim(ratio[from_t - 1:].min() > 0.99 and 160 <= from_t <= 175,
             "with T = 1000, beta~_t / beta_t > 0.99 from t = {t} on: the two chains differ only in their last steps",
             t=from_t)
(x_small, p_small), (x_large, p_large) = by_variance["fixed_small"], by_variance["fixed_large"]
claims.claim(np.abs(x_small.std(0) - x_large.std(0)).max() < 0.02 and min(p_small, p_large) > 0.05,
             "fixed_small and fixed_large give the same spreads ({a} vs {b}) and the same verdict (p = {pa:.3f} and "
             "{pb:.3f}, both > 0.05)", a=x_small.std(0).round(3), b=x_large.std(0).round(3), pa=p_small, pb=p_large,
             quick=False)

# %% [markdown]
# ## Fewer steps
#
# DDPM with $K < T$ steps visits only every $T/K$-th step and uses the *respaced* chain whose betas make the jumps
# consistent ($\beta'_j = 1 - \bar\alpha_{s_j} / \bar\alpha_{s_{j-1}}$, Nichol & Dhariwal 2021; ``samplers.respace``).
# Each jump is now a big move, and the ancestral sampler degrades in a way you may not expect: the crescents get
# **thinner**, not thicker, and with very few steps points land *between* them. The last jump lands on the posterior
# mean $\hat x_0 = \mathbb{E}[x_0 \mid x_t]$ with no noise added, and with $K$ steps it starts from $t = 1000/K - 1$,
# far noisier than $t = 0$: that mean pulls a point onto the centre line of its crescent (chapter 8 measures this
# final-step shrinkage), or, when $x_t$ could have come from either crescent, to a weighted average of the two, between
# them. With 50 steps the first effect wins: the crescents are a third thinner than the data's. With 10 steps (from
# $t = 99$) both show: thin arcs, and 15 % of the points strewn between and around them. The panels print the crescents'
# thickness (the median distance to their centre lines of the points within 0.2, 4 noise stds, of them) and the fraction
# of points farther than that from both. Here the variance choice matters too: with 10 steps the last noisy jump
# ($t = 199 \to 99$; the jump to the data adds no noise) adds noise of std 0.52 under fixed_large and 0.28 under
# fixed_small, where with all 1000 steps the last noisy step adds 0.011 against 0.007. The deterministic samplers of
# ``tinydiff.samplers`` (DDIM, DPM-Solver++) do much better with few steps.

# %%
panels = [(f"held-out data\nthickness {thickness(data):.3f}\noff the crescents {off_crescent(data):.1%}", data)]
by_steps = {"data": (thickness(data), off_crescent(data))}
for k in FEW_STEPS + [T]:
    x = sample(model, (N_SAMPLES, 2), schedule, method="ddpm", steps=k, rng=SEED + 1) if k < T else samples
    _, p = mmd_test(x, data, 200, rng=0)
    by_steps[k] = (thickness(x), off_crescent(x))
    panels.append((f"{k} steps, MMD p = {p:.2f}\nthickness {by_steps[k][0]:.3f}\n"
                   f"off the crescents {by_steps[k][1]:.1%}", x))
    chain = respace(schedule, timesteps(schedule, k))                       # the respaced chain's beta'_j
    print(f"DDPM with {k} steps: p = {p:.3f}; thickness of the crescents {by_steps[k][0]:.3f}, "
          f"{by_steps[k][1]:.1%} off them (data {by_steps['data'][0]:.3f}, {by_steps['data'][1]:.1%}); "
          f"median beta' = {np.median(chain.betas):.3g} (all T steps: {np.median(schedule.betas):.3g})")
viz.save(viz.scatter_strip(panels, lim=2.5, size=3, s=2), args.out / "fewer_steps.png")
few, some = min(FEW_STEPS), max(FEW_STEPS)
claims.claim(by_steps[some][0] < 0.8 * by_steps["data"][0] and by_steps[some][0] < 0.8 * by_steps[T][0],
             "with {k} steps the crescents are thinner: thickness {thin:.3f}, against {full:.3f} with all {T} "
             "steps and {d:.3f} for the data", k=some, thin=by_steps[some][0], full=by_steps[T][0], T=T,
             d=by_steps["data"][0], quick=False)
claims.claim(by_steps[few][1] > 3 * by_steps["data"][1] + 0.02,
             "with {k} steps {f:.1%} of the points land between the crescents (data {d:.1%})",
             k=few, f=by_steps[few][1], d=by_steps["data"][1], quick=False)
few_chain = respace(ho, timesteps(ho, few))
noise = {"large": np.sqrt(few_chain.betas[1]), "small": np.sqrt(few_chain.posterior_variance[1]),
         "large_T": np.sqrt(ho.betas[1]), "small_T": np.sqrt(ho.posterior_variance[1])}
claims.claim(noise["large"] - noise["small"] > 0.2 and noise["large_T"] - noise["small_T"] < 0.01,
             "T = 1000 respaced to {k} steps: the last noisy jump adds noise of std {a:.3f} (fixed_large) against "
             "{b:.3f} (fixed_small); with all 1000 steps the last noisy step adds {c:.3f} against {d:.3f}",
             k=few, a=noise["large"], b=noise["small"], c=noise["large_T"], d=noise["small_T"])
trainer.ema.swap()

# %%
claims.finish()   # every claim above was checked in this run: exit 1 if one failed
