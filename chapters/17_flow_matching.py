# %% [markdown]
r"""
# Chapter 17 — Flow matching

Diffusion models learn to undo noise one small step at a time. Flow matching (Lipman et al. 2023; Liu et al. 2023;
Albergo & Vanden-Eijnden 2023) asks a more direct question: *which velocity field, followed from $t = 1$ to $t = 0$,
carries a Gaussian to the data?* It is what Stable Diffusion 3 and Flux are trained with, and on a Gaussian path it
turns out to learn the same thing as diffusion. We build it from the process of chapter 14's abstraction.

## A path of distributions

Pick a path of distributions $p_t$ from the data ($t = 0$) to $\mathcal{N}(0, I)$ ($t = 1$). The simplest: draw
$x_0 \sim \text{data}$ and $\epsilon \sim \mathcal{N}(0, I)$ and move in a straight line (the *linear interpolant*,
`tinydiff.processes.LinearInterpolant`):

$$x_t = (1 - t)\, x_0 + t\, \epsilon$$

($\alpha = 1 - t$, $\sigma = t$; any Gaussian path is $x_t = \alpha x_0 + \sigma \epsilon$.) Each pair moves with the
*conditional velocity* $u = d x_t / dt = \epsilon - x_0$ (in general $\alpha' x_0 + \sigma' \epsilon$). Many pairs pass
through the same point $x$ at time $t$; the *marginal velocity* is their average,

$$v(x, t) = \mathbb{E}[\epsilon - x_0 \mid x_t = x]$$

and the ODE $dx/dt = v(x, t)$, run backwards from $t = 1$, moves $\mathcal{N}(0, I)$ through exactly the marginals $p_t$
and lands on the data: $v$ satisfies the continuity equation $\partial p_t / \partial t + \nabla \cdot (p_t v) = 0$
(Lipman et al. 2023, Thm. 1).

## The conditional trick

$v$ is unknown (it averages over the data), but the regression onto the *conditional* target

$$\mathcal{L}_{\text{CFM}}(\theta) = \mathbb{E}_{t \sim \mathcal{U}[0, 1],\, x_0,\, \epsilon}
\left\| v_\theta(x_t, t) - (\epsilon - x_0) \right\|^2$$

has the same minimiser: the conditional mean $\mathbb{E}[\epsilon - x_0 \mid x_t] = v$ (Lipman et al. 2023, Thm. 2). It
is DDPM's loss with another target; `tinydiff.flow.FlowTrainer` trains the same MLP with it (`train --objective flow`).
The network sees $1000\, t$, so that its time features span the frequencies a DDPM network sees at steps 0..999.

## The same path gives the same model as diffusion

For a Gaussian path, $v$ and the score are one object. With $f = \alpha' / \alpha$ and
$g^2 = d \sigma^2 / dt - 2 f \sigma^2$ (the forward SDE of the path), the probability-flow ODE gives

$$v(x, t) = f(t)\, x - \tfrac{1}{2} g(t)^2\, \nabla_x \log p_t(x)$$

so a flow-matching network and a diffusion network on the same path are exact reparametrisations of each other
(Kingma & Gao 2023; Gao et al. 2024). Any VP path $x_t = a x_0 + s \epsilon$ *is* the linear interpolant after
rescaling: $y = x_t / (a + s) = (1 - u)\, x_0 + u\, \epsilon$ with $u = s / (a + s)$; a DDIM step of an $\epsilon$ model
is then exactly an Euler step of the flow model in $u$. We check both numerically below.

Figures: `fm_path.png`, `fm_conditional_vs_marginal.png`, `fm_fields.png`, `fm_samples.png`, `fm_solvers.png`,
`fm_logsnr.png`.
"""

# %%
import numpy as np

from tinydiff import viz
from tinydiff.analytic import GaussianMixture, GaussianMixtureDenoiser
from tinydiff.claims import claim, finish
from tinydiff.data.toy2d import gaussian_mixture_params, make_dataset
from tinydiff.flow import FlowNetwork, FlowTrainer
from tinydiff.metrics.points import mmd_test
from tinydiff.processes import LinearInterpolant, VPProcess, to_x0_eps
from tinydiff.samplers import ddim_sigma, ddim_step, sample
from tinydiff.schedules import NoiseSchedule
from tinydiff.threads import blas_threads
from tinydiff.train import TrainConfig

args = viz.chapter_args(17, "Chapter 17: flow matching")

# ---- constants -------------------------------------------------------------------------------------------------
DATA = "8gaussians"                               # a Gaussian mixture: its exact velocity field is known
TRAIN_STEPS = 150 if args.quick else 2000         # optimiser steps of the flow-matching MLP
BATCH = 128 if args.quick else 512                # points per step
N = 300 if args.quick else 2000                   # samples per comparison
SAMPLE_STEPS = 10                                 # midpoint steps (20 model calls) for the trained model's samples
TIMES = (0.9, 0.5, 0.1)                           # where the fields are drawn
NFES = (4, 8, 16, 32, 64, 128, 256)               # solver comparison (model calls)
SEED = 0
# -----------------------------------------------------------------------------------------------------------------

rng = np.random.default_rng(SEED)
plt = viz.plt()
path = LinearInterpolant()
mixture = GaussianMixture.from_params(gaussian_mixture_params(DATA))

# %% [markdown]
r"""
## 1. The path: straight lines per pair, a smooth morph of distributions

Each point below sits at $(1 - t)\, x_0 + t\, \epsilon$ for one fixed pair: every single path is a straight line, and
the cloud morphs from the eight modes into the Gaussian.
"""

# %%
x0 = mixture.sample(N, rng=rng)
eps = rng.standard_normal(x0.shape)
fig, axes = plt.subplots(1, 5, figsize=(13, 2.8))
for ax, t in zip(axes, (0.0, 0.25, 0.5, 0.75, 1.0)):
    ax.scatter(*path.q_sample(x0, np.full(N, t), eps).T, s=1, alpha=0.5)
    ax.set_title(f"x_t, t = {t:g}", fontsize=9)
    viz.square_axes(ax, 4)
viz.save(fig, args.out / "fm_path.png")

# %% [markdown]
r"""
## 2. Conditional paths cross, the marginal flow does not

The straight conditional paths from $\epsilon$ to $x_0$ cross each other: at a crossing point the conditional velocities
disagree, so no single field can follow them. The marginal field $v$ averages them; its ODE paths (from the same
$\epsilon$) never cross and bend towards the modes. We integrate them with the exact velocity of the mixture
(`GaussianMixtureDenoiser(mixture, LinearInterpolant(), "velocity")`, `tinydiff.analytic`).
"""

# %%
exact = GaussianMixtureDenoiser(mixture, path, "velocity")
n_show = 40
_, traj = sample(exact, (n_show, 2), path, method="heun-t", steps=50, x_T=eps[:n_show], prediction_type="velocity",
                 return_trajectory=True)
fig, axes = plt.subplots(1, 2, figsize=(8, 4))
for i in range(n_show):
    axes[0].plot([eps[i, 0], x0[i, 0]], [eps[i, 1], x0[i, 1]], lw=0.6, color="C0")
    axes[1].plot(traj.x[:, i, 0], traj.x[:, i, 1], lw=0.6, color="C1")
axes[0].set_title("conditional paths eps -> x0 (independent pairs)", fontsize=9)
axes[1].set_title("marginal ODE paths dx/dt = v(x, t)", fontsize=9)
for ax in axes:
    ax.scatter(*mixture.means.T, c="k", s=10, zorder=3)
    viz.square_axes(ax, 4)
viz.save(fig, args.out / "fm_conditional_vs_marginal.png")

# the two exact identities, on a grid of points and times
xs = rng.standard_normal((500, 2)) * 2.0
worst_pf, worst_ce = 0.0, 0.0
for t in (0.2, 0.5, 0.8):
    tt = np.full(len(xs), t)
    v = exact(xs, tt)
    score = GaussianMixtureDenoiser(mixture, path, "score")(xs, tt)
    f, g2 = path.sde(np.float64(t))                       # f = -1/(1-t), g^2 = 2t/(1-t)
    worst_pf = max(worst_pf, float(np.abs(v - (f * xs - 0.5 * g2 * score)).max()))
    a, s = 1 - t, t                                        # p_t: means a mu_k, covariances a^2 S_k + s^2 I

    def density(y, t):
        a, s = 1 - t, t
        return np.exp(GaussianMixture(mixture.weights, a * mixture.means, a * a * mixture.covs
                                      + s * s * np.eye(2)).log_prob(y))

    h = 1e-5
    dp_dt = (density(xs, t + h) - density(xs, t - h)) / (2 * h)
    div = sum((density(xs + h * e, t) * exact(xs + h * e, tt)[:, i] - density(xs - h * e, t)
               * exact(xs - h * e, tt)[:, i]) / (2 * h) for i, e in enumerate(np.eye(2)))
    worst_ce = max(worst_ce, float(np.abs(dp_dt + div).max() / np.abs(dp_dt).max()))
claim(worst_pf < 1e-8, "the exact velocity equals f x - g^2/2 * score to {err:.1e} (the probability-flow ODE)",
      err=worst_pf)
claim(worst_ce < 1e-4, "d p_t/dt + div(p_t v) = 0: the largest residual is {res:.1e} of |d p_t/dt| (finite "
      "differences)", res=worst_ce)

# %% [markdown]
r"""
## 3. Training: the same MLP, another target

`FlowTrainer` is chapter 6's training loop with three lines changed: $t \sim \mathcal{U}[0, 1]$ instead of an integer
step, $x_t = (1 - t)\, x_0 + t\, \epsilon$, and the target $\epsilon - x_0$. The data are standardised, so we compare
the learned field with the exact field of the standardised mixture. The arrows point the way time runs, towards the
noise ($v = \mathbb{E}[\epsilon - x_0]$); sampling walks against them, and the red dots are the modes of $p_t$.
"""

# %%
config = TrainConfig(data=DATA, objective="flow", steps=TRAIN_STEPS, batch_size=BATCH, seed=SEED)
trainer = FlowTrainer(config)
trainer.train(progress=False)
st = trainer.standardizer
std_mix = GaussianMixture(mixture.weights, (mixture.means - st.mean) / st.std,
                          mixture.covs / np.outer(st.std, st.std))
exact_std = GaussianMixtureDenoiser(std_mix, path, "velocity")
model = FlowNetwork(trainer.model)

g = np.linspace(-2.5, 2.5, 21)
gx, gy = np.meshgrid(g, g)
grid_pts = np.c_[gx.ravel(), gy.ravel()]
fig, axes = plt.subplots(2, len(TIMES), figsize=(3.3 * len(TIMES), 6.4))
rel_err = {}
with trainer.ema.average_weights(), blas_threads(1):
    for j, t in enumerate(TIMES):
        tt = np.full(len(grid_pts), t)
        v_true, v_net = exact_std(grid_pts, tt), model(grid_pts, tt)
        weight = np.exp(GaussianMixture(std_mix.weights, (1 - t) * std_mix.means, (1 - t) ** 2 * std_mix.covs
                                        + t * t * np.eye(2)).log_prob(grid_pts))     # where p_t puts its mass
        rel_err[t] = float(np.sqrt(np.sum(weight * np.sum((v_net - v_true) ** 2, 1))
                                   / np.sum(weight * np.sum(v_true ** 2, 1))))
        for row, (v, who) in enumerate(((v_true, "exact"), (v_net, "learned"))):
            ax = axes[row, j]
            ax.quiver(gx, gy, v[:, 0].reshape(gx.shape), v[:, 1].reshape(gx.shape), angles="xy", width=0.004)
            ax.scatter(*((1 - t) * std_mix.means).T, c="C3", s=12, zorder=3)       # the modes of p_t
            ax.set_title(f"{who} v(x, t = {t:g})", fontsize=9)
            viz.square_axes(ax, 2.7)
    x_model = st.inverse_transform(sample(model, (N, 2), path, method="midpoint-t", steps=SAMPLE_STEPS, rng=SEED + 1,
                                          prediction_type="velocity"))
viz.save(fig, args.out / "fm_fields.png")
for t, e in rel_err.items():
    print(f"t = {t}: relative error of the learned field (weighted by p_t) {e:.3f}")
claim(rel_err[0.5] < 0.2, "the learned field is within {e:.0%} of the exact one at t = 0.5 (weighted by p_t)",
      e=rel_err[0.5], quick=False)

held = make_dataset(DATA, N, rng=10_001)
mmd2, p_value = mmd_test(x_model, held, n_permutations=200, rng=SEED)
fig, axes = plt.subplots(1, 2, figsize=(7, 3.5))
axes[0].scatter(*held.T, s=1)
axes[0].set_title("held-out data", fontsize=9)
axes[1].scatter(*x_model.T, s=1, color="C1")
axes[1].set_title(f"flow matching, midpoint, {2 * SAMPLE_STEPS} model calls", fontsize=9)
for ax in axes:
    viz.square_axes(ax, 3.5)
viz.save(fig, args.out / "fm_samples.png")
claim(p_value > 0.05, "with 20 model calls the samples pass the MMD test against held-out data: p = {p:.3f}",
      p=p_value, quick=False)

# %% [markdown]
r"""
## 4. Solving the ODE: Euler, midpoint, Heun in $t$

`sample(..., method="euler-t" | "midpoint-t" | "heun-t")` integrate $dx/dt = v$ in the process's own time (they start
at $t = 1$, where the sigma-frame solvers of chapter 8 cannot: $\sigma / \alpha$ is infinite there). Midpoint and Heun
spend two model calls a step and are second order: once the steps are small, doubling the calls divides their error by
about 4, Euler's by 2. With few calls it is the other way round: the 8 modes have std 0.1, so near $t = 0$ the field
turns sharply, and two half-as-many steps of a second-order method overshoot more than Euler's many small ones.
Error: RMS distance to a 4000-step Heun solution from the same noise, with the exact field.
"""

# %%
z = rng.standard_normal((400, 2))
run = lambda m, k: sample(exact, z.shape, path, method=m, steps=k, x_T=z, prediction_type="velocity")  # noqa: E731
reference = run("heun-t", 4000)
errors = {m: [float(np.sqrt(np.mean((run(m, nfe // per) - reference) ** 2))) for nfe in NFES]
          for m, per in (("euler-t", 1), ("midpoint-t", 2), ("heun-t", 2))}
fig, ax = plt.subplots(figsize=(4.5, 3.5))
for m, e in errors.items():
    ax.loglog(NFES, e, "o-", label=m)
ax.set_xlabel("model calls (NFE)")
ax.set_ylabel("RMS error of the samples")
ax.legend(fontsize=8)
viz.save(fig, args.out / "fm_solvers.png")
slopes = {m: float(-np.polyfit(np.log(NFES[-3:]), np.log(e[-3:]), 1)[0]) for m, e in errors.items()}
print("error slopes over the last three NFE:", {m: round(s, 2) for m, s in slopes.items()})
claim(abs(slopes["euler-t"] - 1) < 0.3 and min(slopes["midpoint-t"], slopes["heun-t"]) > 1.6,
      "Euler's error falls like NFE^-{e:.2f}, midpoint's like NFE^-{m:.2f} and Heun's like NFE^-{h:.2f}",
      e=slopes["euler-t"], m=slopes["midpoint-t"], h=slopes["heun-t"])
claim(errors["euler-t"][0] < errors["midpoint-t"][0] and errors["midpoint-t"][-1] < errors["euler-t"][-1] / 10,
      "with 4 calls Euler's error {e4:.3f} is below midpoint's {m4:.3f}; with 256 midpoint's is over 10x below Euler's",
      e4=errors["euler-t"][0], m4=errors["midpoint-t"][0])

# %% [markdown]
r"""
## 5. The same path, the same model

A VP diffusion ($x_t = a x_0 + s \epsilon$, $a^2 + s^2 = 1$) and the linear interpolant differ by a rescaling of space
and of time: $y = x / (a + s)$, $u = s / (a + s)$. One DDIM step of the exact $\epsilon$ model, and one Euler step in
$u$ of the exact flow-matching model, from the same point: the same update. `fm_logsnr.png` shows the price of each
path in noise levels: the linear interpolant's log-SNR $2 \log((1 - t) / t)$ against the cosine and VP schedules of
earlier chapters.
"""

# %%
vp = VPProcess()
eps_model = GaussianMixtureDenoiser(mixture, vp, "epsilon")
xq = rng.standard_normal((256, 2))
worst = 0.0
for t, t2 in ((0.9, 0.6), (0.6, 0.3), (0.3, 0.05)):
    (a, s), (a2, s2) = vp.alpha_sigma(np.float64(t)), vp.alpha_sigma(np.float64(t2))
    x0_hat, eps_hat = to_x0_eps(xq, eps_model(xq, np.full(len(xq), t)), "epsilon", a, s)
    ddim = ddim_step(x0_hat, eps_hat, a2 ** 2, ddim_sigma(a ** 2, a2 ** 2, 0.0), None)
    u, u2 = s / (a + s), s2 / (a2 + s2)
    y = xq / (a + s)
    euler = (y + (u2 - u) * exact(y, np.full(len(y), u))) * (a2 + s2)
    worst = max(worst, float(np.abs(euler - ddim).max()))
claim(worst < 1e-9, "DDIM on the eps model and Euler on the flow model give the same points to {d:.1e}", d=worst)

tt = np.linspace(0.01, 0.99, 200)
cos = NoiseSchedule.cosine(1000)
fig, ax = plt.subplots(figsize=(4.8, 3.4))
ax.plot(tt, path.log_snr(tt), label="linear interpolant (flow matching)")
ax.plot(tt, vp.log_snr(tt), label="VP SDE (Song et al. 2021)")
ax.plot(tt, np.log(cos.snr[np.minimum((tt * 1000).astype(int), 999)]), label="cosine schedule (chapter 2)")
ax.set_xlabel("t")
ax.set_ylabel("log SNR = log(alpha^2 / sigma^2)")
ax.legend(fontsize=7)
viz.save(fig, args.out / "fm_logsnr.png")

finish()
