# %% [markdown]
r"""
# Chapter 16 — EDM's design space: preconditioning, noise levels, grids and solvers

Karras et al. (2022, "Elucidating the design space of diffusion-based generative models", EDM) took the samplers and
losses of chapters 3-15 apart into independent choices and chose each one from a principle. Everything is written
for $x = x_0 + \sigma n$ ($\alpha = 1$; any process is this one after dividing by $\alpha$, `tinydiff.processes`), and
the network $F$ is wrapped into a denoiser (their eq. 7, `tinydiff.preconditioning`):

$$D(x; \sigma) = c_{\text{skip}}(\sigma)\, x + c_{\text{out}}(\sigma)\, F\big(c_{\text{in}}(\sigma)\, x;\,
c_{\text{noise}}(\sigma)\big)$$

## Preconditioning from unit variances (their App. B.6)

With $\operatorname{Var} x_0 = \sigma_d^2$ (tinydiff standardises points, so $\sigma_d = 1$):
- the network's **input** should have unit variance:
  $\operatorname{Var}(c_{\text{in}} x) = c_{\text{in}}^2 (\sigma_d^2 + \sigma^2) = 1$, so
  $c_{\text{in}} = 1 / \sqrt{\sigma^2 + \sigma_d^2}$;
- the loss is
  $\lambda \| D - x_0 \|^2 = \lambda c_{\text{out}}^2 \| F - (x_0 - c_{\text{skip}} x) / c_{\text{out}} \|^2$ (eq. 8):
  $F$ regresses on the **effective target** $(x_0 - c_{\text{skip}} x) / c_{\text{out}}$. Choose $c_{\text{skip}}$ to
  make that target as small as possible, i.e. minimise
  $\operatorname{Var}(x_0 - c_{\text{skip}} x) = (1 - c_{\text{skip}})^2 \sigma_d^2 + c_{\text{skip}}^2 \sigma^2$:
  $c_{\text{skip}} = \sigma_d^2 / (\sigma^2 + \sigma_d^2)$;
- then $c_{\text{out}}$ makes the target's variance 1:
  $c_{\text{out}} = \sigma \sigma_d / \sqrt{\sigma^2 + \sigma_d^2}$;
- and $\lambda = 1 / c_{\text{out}}^2$ makes the weight of every $\sigma$ equal: $\lambda c_{\text{out}}^2 = 1$.

At small $\sigma$, $c_{\text{skip}} \to 1$ and $c_{\text{out}} \to \sigma$: $D = x + \sigma F$, $F$ predicts $-n$
(chapter 14's parameterisation). At large $\sigma$, $c_{\text{skip}} \to 0$ and $c_{\text{out}} \to \sigma_d$:
$D = \sigma_d F$, $F$ predicts $x_0$ itself. The network never has to output a number much larger than 1, nor amplify
its own errors by $1/\alpha$ as an $\epsilon$ model does at the end of the chain.

## Where to spend the training (Sec. 5, Fig. 5a)

With every $\sigma$ weighted equally the question is which $\sigma$ to train. Karras et al. look at the loss a trained
network reaches at each $\sigma$: at very small $\sigma$, $D \approx x$ is trivial, at very large $\sigma$,
$D \approx \mathbb{E}[x_0]$ is all one can do, and only in between is there something to learn. They draw
$\ln \sigma \sim \mathcal{N}(P_{\text{mean}}, P_{\text{std}}^2)$ with $P_{\text{mean}} = -1.2$, $P_{\text{std}} = 1.2$.
With the exact denoiser of a mixture we can compute that curve exactly.

## Time steps and solvers (Sec. 3)

The grid (eq. 5)

$$\sigma_i = \Big(\sigma_{\max}^{1/\rho} +
\frac{i}{N - 1} \big(\sigma_{\min}^{1/\rho} - \sigma_{\max}^{1/\rho}\big)\Big)^\rho$$

spends more steps at small $\sigma$ as $\rho$ grows ($\rho = 1$: uniform in $\sigma$; $\rho \to \infty$: uniform in
$\log \sigma$); $\rho = 7$. The ODE $dx / d\sigma = (x - D) / \sigma$ is solved with **Heun** (Alg. 1: Euler, then the
average slope; the last step to $\sigma = 0$ is Euler): $2 N - 1$ evaluations for $N$ levels. The stochastic sampler
(Alg. 2) first adds noise, raising $\sigma$ to $\hat\sigma = \sigma (1 + \gamma)$ with
$\gamma = \min(S_{\text{churn}} / N, \sqrt{2} - 1)$, then takes the Heun step from $\hat\sigma$: new noise "churns" the
errors of earlier steps out. Both are `method="edm"` in `tinydiff.samplers` (`sampler_options={"churn": ...}`).

## Order of accuracy, measured

A $p$-th order solver's error falls like $\text{NFE}^{-p}$. With the exact mixture denoiser the solver's error is the
only one left, so we can measure $p$: run from the same $x(\sigma_{\max})$ to the same $\sigma_{\min}$, compare with a
converged solution, and fit the slope on log-log axes (`tinydiff.accuracy`). Euler (= DDIM, chapter 8) should give 1;
Heun and DPM-Solver++(2M) 2.

Figures: `preconditioning.png`, `loss_vs_sigma.png`, `rho_grids.png`, `order_of_accuracy.png`, `edm_vs_ddpm.png`,
`churn.png`.
"""

# %%
import numpy as np

from tinydiff import viz
from tinydiff.claims import claim, finish
from tinydiff.accuracy import order_of_accuracy, reference_solution
from tinydiff.analytic import GaussianMixture, GaussianMixtureDenoiser
from tinydiff.data.toy2d import gaussian_mixture_params, make_dataset
from tinydiff.metrics.points import mmd_test
from tinydiff.preconditioning import EDM, edm_precondition
from tinydiff.processes import EDMProcess, VPProcess, grid
from tinydiff.threads import blas_threads
from tinydiff.train import TrainConfig, train

args = viz.chapter_args(16, "Chapter 16: EDM's design space")

# ---- constants -------------------------------------------------------------------------------------------------
SIGMA_DATA = 1.0                                   # standardised points
N_VAR = 20_000 if args.quick else 200_000          # points for the unit-variance check
N_LOSS = 4000 if args.quick else 40_000            # points per sigma for the optimal-loss curve
N_ORDER = 16 if args.quick else 32                 # start points of the order-of-accuracy study
ORDER_STEPS = [9, 17, 33, 65] if args.quick else [17, 33, 65, 129, 257]
REF_STEPS = 512 if args.quick else 2048            # Heun (rho = 7) reference
DATA = "moons"                                     # the set both networks are trained on
TRAIN_STEPS = 150 if args.quick else 3000          # optimiser steps of each network
N_SAMPLES = 300 if args.quick else 2000            # samples per configuration
NFES = (9, 17, 35)                                 # the equal-NFE comparison
CHURNS = (0, 3, 40)                                # S_churn (18 levels: gamma = 3/18; 40/18 is capped at sqrt(2) - 1)
SEED = 0
# -----------------------------------------------------------------------------------------------------------------

rng = np.random.default_rng(SEED)
plt = viz.plt()
sigmas = np.geomspace(0.002, 80.0, 200)

# %% [markdown]
# ## The four c's, and the unit variances checked on data
#
# Left: $c_{\text{skip}}$, $c_{\text{out}}$, $c_{\text{in}}$ and the loss weight $\lambda$ against $\sigma$
# ($\sigma_d = 1$). Right: on standardised moons, the network's input $c_{\text{in}} x$ and the effective target
# $(x_0 - c_{\text{skip}} x) / c_{\text{out}}$ have variance 1 at every noise level.

# %%
c_skip, c_out, c_in, lam = edm_precondition(sigmas, SIGMA_DATA)
moons = make_dataset("moons", N_VAR, rng=rng)
x0 = (moons - moons.mean(0)) / moons.std(0)                                 # standardised: per-coordinate std 1
check_sigmas = np.array([0.002, 0.05, 0.3, 1.0, 5.0, 80.0])
v_in, v_target = [], []
for s in check_sigmas:
    x = x0 + s * rng.standard_normal(x0.shape)
    cs, co, ci, _ = edm_precondition(s, SIGMA_DATA)
    v_in.append(float(np.mean(np.var(ci * x, axis=0))))
    v_target.append(float(np.mean(np.var((x0 - cs * x) / co, axis=0))))
fig, axes = plt.subplots(1, 2, figsize=(9, 3.3))
for y, name in ((c_skip, "c_skip"), (c_out, "c_out"), (c_in, "c_in"), (lam, "lambda = 1 / c_out^2")):
    axes[0].loglog(sigmas, y, label=name)
axes[0].set_xlabel("sigma")
axes[0].legend(fontsize=7)
axes[0].set_title("EDM preconditioning (sigma_d = 1)", fontsize=9)
axes[1].semilogx(check_sigmas, v_in, "o-", label="Var(c_in x)")
axes[1].semilogx(check_sigmas, v_target, "s--", label="Var(effective target)")
axes[1].set_ylim(0.8, 1.2)
axes[1].set_xlabel("sigma")
axes[1].legend(fontsize=7)
axes[1].set_title("on standardised moons", fontsize=9)
fig.tight_layout()
viz.save(fig, args.out / "preconditioning.png")
worst = max(abs(v - 1) for v in v_in + v_target)
claim(worst < 0.03, "input and effective target have unit variance at every sigma (largest gap {w:.3f})", w=worst)

# %% [markdown]
# ## Where the loss can be reduced
#
# For the 8 Gaussians (standardised) the exact denoiser $D^*$ is the best any network can do. Its loss at each $\sigma$,
# $\lambda\, \mathbb{E} \| D^* - x_0 \|^2$ per coordinate, is 1 where there is nothing to learn ($F = 0$ also scores 1
# there) and dips where the data's structure is visible through the noise. EDM's log-normal (grey, its density on the
# same log axis) puts its draws where the dip is.

# %%
mix = GaussianMixture.from_params(gaussian_mixture_params("8gaussians"))
sd = float(np.sqrt(np.mean(mix.sample(200_000, rng=rng).var(0))))
mix_std = GaussianMixture(mix.weights, mix.means / sd, mix.covs / sd ** 2)   # the standardised mixture
edm_process = EDMProcess()
exact = GaussianMixtureDenoiser(mix_std, edm_process, "sample")
loss_sigmas = np.geomspace(0.002, 80.0, 13 if args.quick else 25)
opt_loss = []
for s in loss_sigmas:
    x0 = mix_std.sample(N_LOSS, rng=rng)
    x = x0 + s * rng.standard_normal(x0.shape)
    opt_loss.append(float(edm_precondition(s, SIGMA_DATA)[3] * np.mean((exact(x, np.full(N_LOSS, s)) - x0) ** 2)))
opt_loss = np.array(opt_loss)
density = np.exp(-(np.log(sigmas) - EDM.P_mean) ** 2 / (2 * EDM.P_std ** 2)) / (EDM.P_std * np.sqrt(2 * np.pi))
fig, ax = plt.subplots(figsize=(5.5, 3.3))
ax.fill_between(sigmas, 0, density / density.max(), color="0.85", label="ln sigma ~ N(-1.2, 1.2^2) (scaled)")
ax.semilogx(loss_sigmas, opt_loss, "o-", label="loss of the exact denoiser")
ax.axhline(1.0, color="k", lw=0.5, ls=":")
ax.set_xlabel("sigma")
ax.set_ylabel("lambda(sigma) E||D* - x0||^2 / dim")
ax.legend(fontsize=7, loc="lower left")
viz.save(fig, args.out / "loss_vs_sigma.png")
learnable = loss_sigmas[opt_loss < 0.95]
draws = EDM(0.002, 80.0).draw_sigma(200_000, rng)
share = float(np.mean((draws >= learnable.min()) & (draws <= learnable.max())))
claim(opt_loss[0] > 0.95 and opt_loss[-1] > 0.95, "at sigma = 0.002 and 80 the best loss is ~1 (nothing to learn): "
      "{a:.3f}, {b:.3f}", a=opt_loss[0], b=opt_loss[-1])
claim(share > 0.8, "{p:.0%} of EDM's training draws fall where the best loss is below 0.95 (sigma {lo:.3f} to "
      "{hi:.2f})", p=share, lo=float(learnable.min()), hi=float(learnable.max()))

# %% [markdown]
# ## The $\rho$ grid
#
# Eighteen levels between 80 and 0.002 for several $\rho$ (eq. 5): $\rho = 1$ is uniform in $\sigma$ and leaves almost
# no steps at small noise; $\rho = 7$ puts them roughly where the denoiser changes fastest; $\rho \to \infty$ (uniform
# in $\log \sigma$, tinydiff's `"lambda"` grid) spends as many on $\sigma \in [40, 80]$ as on $[0.002, 0.004]$.

# %%
fig, ax = plt.subplots(figsize=(6, 2.8))
for k, rho in enumerate((1, 3, 7)):
    levels = grid(edm_process, 18, "karras", rho=rho)
    ax.semilogx(levels, np.full(18, k), "|", ms=14, label=f"rho = {rho}")
log_grid = grid(edm_process, 18, "lambda")
ax.semilogx(log_grid, np.full(18, 3), "|", ms=14, label="uniform in log sigma")
ax.set_yticks(range(4))
ax.set_yticklabels(["rho = 1", "rho = 3", "rho = 7", "log-uniform"])
ax.set_xlabel("sigma (18 levels, 35 NFE with Heun)")
viz.save(fig, args.out / "rho_grids.png")
g7 = grid(edm_process, 18, "karras")
claim(abs(g7[0] - 80) < 1e-9 and abs(g7[-1] - 0.002) < 1e-12, "the rho = 7 grid runs from {a:g} to {b:g}",
      a=float(g7[0]), b=float(g7[-1]))

# %% [markdown]
# ## Order of accuracy, measured with the exact denoiser
#
# The VP SDE process (Song et al. 2021; $\sigma$ from 157 down to 0.01), 8 Gaussians, three solvers on three grids:
# uniform in $t$ (DDPM's), uniform in $\lambda = \log(\alpha / \sigma)$ (DPM-Solver's) and $\rho = 7$ (EDM's). Error:
# RMS distance at $\sigma_{\min}$ to Heun with 2048 $\rho = 7$ levels. Slopes are fitted over NFE 32-256 (Euler), 64-512
# (Heun) and 64-256 (DPM-Solver++(2M)), where the error is asymptotic. The exception is telling: on the uniform-t grid
# DPM-Solver++ looks first order at these NFE, because its last step there spans about
# $\tfrac{1}{2} \log(1 + \Delta t / t_{\min})$ in $\lambda$ and shrinks only when $\Delta t \ll t_{\min} = 10^{-3}$ (it
# is second order from NFE ~ 500 on: tests/test_order_of_accuracy.py). EDM's Heun on the $\rho = 7$ grid is `heun` here:
# the same algorithm (tests: bit for bit).

# %%
vp = VPProcess()
x_T = np.random.default_rng(SEED).standard_normal((N_ORDER, 2))
with blas_threads(1):
    x_ref = reference_solution(mix, vp, x_T, REF_STEPS)
    results = {(m, sp): order_of_accuracy(mix, vp, m, sp, ORDER_STEPS, x_T, x_ref)
               for sp in ("uniform", "lambda", "karras") for m in ("euler", "heun", "dpm++2m")}
RANGES = {"euler": (32, 256), "heun": (64, 512), "dpm++2m": (64, 256)}
if args.quick:
    RANGES = {"euler": (16, 64), "heun": (32, 128), "dpm++2m": (16, 64)}
fig, axes = plt.subplots(1, 3, figsize=(12, 3.5), sharey=True)
for ax, sp in zip(axes, ("uniform", "lambda", "karras")):
    for k, m in enumerate(("euler", "heun", "dpm++2m")):
        r = results[(m, sp)]
        ax.loglog(r.nfe, r.err, "o-", color=f"C{k}", label=f"{m}: slope -{r.order(*RANGES[m]):.2f}")
    ax.set_title({"uniform": "uniform t", "lambda": "uniform lambda", "karras": "rho = 7"}[sp], fontsize=9)
    ax.set_xlabel("NFE")
    ax.legend(fontsize=7)
axes[0].set_ylabel("RMS error at sigma_min")
fig.tight_layout()
viz.save(fig, args.out / "order_of_accuracy.png")
for (m, sp), r in results.items():
    if m == "dpm++2m" and sp == "uniform":
        continue
    p, want = r.order(*RANGES[m]), (1.0 if m == "euler" else 2.0)
    claim(abs(p - want) < (0.15 if want == 1 else 0.25), "{m} on the {sp} grid has order {p:.2f} (expected {want:g})",
          m=m, sp=sp, p=p, want=want, quick=False)
claim(results[("dpm++2m", "uniform")].order(*RANGES["dpm++2m"]) < 1.5, "DPM-Solver++(2M) on the uniform-t grid is not "
      "yet second order at these NFE (slope {p:.2f})", p=results[("dpm++2m", "uniform")].order(*RANGES["dpm++2m"]),
      quick=False)

# %% [markdown]
# ## An EDM network against a DDPM network, at equal NFE
#
# Two MLPs of the same size, trained the same number of steps on moons: one with the DDPM $\epsilon$ loss (chapter 6,
# cosine schedule, $T = 1000$), one with EDM's preconditioning and loss (`--objective edm`). At the same budget of
# network evaluations we sample the DDPM network with DPM-Solver++(2M) (chapter 8's best), and the EDM network both
# with the same solver (the loss alone changes) and with EDM's Heun on the $\rho = 7$ grid ($\text{NFE} = 2 N - 1$).
# $\text{MMD}^2$ against held-out points; the dotted line is the floor (two held-out samples). Heun pays two evaluations
# per level: at 9 NFE it has only 5 levels, and the curve shows what that costs.

# %%
held, held2 = make_dataset(DATA, N_SAMPLES, rng=10_001), make_dataset(DATA, N_SAMPLES, rng=10_002)
small = {"width": 64, "batch_size": 256} if args.quick else {}
models = {name: train(TrainConfig(data=DATA, objective=name, steps=TRAIN_STEPS, seed=SEED, **small),
                      progress=False).trained() for name in ("ddpm", "edm")}
floor = mmd_test(held2, held, 1)[0]
RUNS = {"DDPM loss, DPM-Solver++(2M)": ("ddpm", "dpm++2m"), "EDM loss, DPM-Solver++(2M)": ("edm", "dpm++2m"),
        "EDM loss, EDM Heun (rho = 7)": ("edm", "edm")}


def draw(name, sampler, nfe, churn=None):
    """N_SAMPLES points (data units) from the trained ``name`` model with ``nfe`` network evaluations."""
    steps = (nfe + 1) // 2 if sampler == "edm" else nfe
    spacing = {"ddpm": "linspace", "edm": "karras"}[name]
    x, traj = models[name].sample(N_SAMPLES, sampler=sampler, steps=steps, rng=SEED + 1, churn=churn,
                                  timestep_spacing=spacing, return_trajectory=True)
    return x, traj.nfe


mmd, pvals = {label: [] for label in RUNS}, {}
for nfe in NFES:
    for label, (name, sampler) in RUNS.items():
        x, used = draw(name, sampler, nfe)
        assert used == nfe, (label, nfe, used)
        m2, p = mmd_test(x, held, 200 if not args.quick else 20, rng=SEED)
        mmd[label].append(m2)
        pvals[(label, nfe)] = p
        print(f"{label:32s} NFE {nfe:3d}: MMD^2 {m2:.2e}, p = {p:.3f}")
fig, ax = plt.subplots(figsize=(5.5, 3.5))
for label in RUNS:
    ax.plot(NFES, np.maximum(mmd[label], 1e-5), "o-", label=label)
ax.axhline(max(floor, 1e-5), color="k", ls=":", lw=1, label="floor")
ax.set_yscale("log")
ax.set_xlabel("NFE")
ax.set_ylabel("MMD^2 to held-out moons")
ax.legend(fontsize=7)
ax.set_title(f"{TRAIN_STEPS} training steps each", fontsize=9)
viz.save(fig, args.out / "edm_vs_ddpm.png")
heun = "EDM loss, EDM Heun (rho = 7)"
claim(pvals[(heun, 35)] > 0.05, "the EDM network with EDM's Heun at 35 NFE passes the MMD test (p = {p:.3f})",
      p=pvals[(heun, 35)], quick=False)
claim(mmd[heun][0] > 5 * max(mmd[heun][-1], 1e-4), "Heun with 5 levels (9 NFE) is far from the data: MMD^2 "
      "{a:.1e} against {b:.1e} at 35 NFE", a=mmd[heun][0], b=mmd[heun][-1], quick=False)

# %% [markdown]
# ## Churn
#
# The stochastic sampler on the trained EDM network, 18 levels (35 NFE), for a few $S_{\text{churn}}$
# ($S_{\text{tmin}} = 0$, $S_{\text{tmax}} = \infty$, $S_{\text{noise}} = 1$). Karras et al. found churn helps most when
# the network's errors accumulate along the deterministic path, and hurts when too much: each churned step adds noise
# the next steps must remove. Points left, $\text{MMD}^2$ in the titles.

# %%
panels = [("held-out", held)]
churn_mmd = {}
for churn in CHURNS:
    x, used = draw("edm", "edm", 35, churn)
    churn_mmd[churn] = mmd_test(x, held, 1)[0]
    panels.append((f"S_churn = {churn}: MMD^2 {churn_mmd[churn]:.1e} ({used} NFE)", x))
viz.save(viz.scatter_strip(panels, lim=None, size=2.8, s=1), args.out / "churn.png")
print("MMD^2 by S_churn:", {k: f"{v:.2e}" for k, v in churn_mmd.items()})

# %% [markdown]
# ## What to take away
#
# - Preconditioning is derived, not tuned: unit-variance input, the smallest effective target, unit-variance target,
#   equal weight per $\sigma$.
# - Train where the loss can move; sample on a grid that spends steps where the denoiser changes ($\rho = 7$).
# - Orders of accuracy are measurable with an exact denoiser: Euler 1, Heun and DPM-Solver++(2M) 2, once the grid's
#   steps are small where it matters.

# %%
finish()
