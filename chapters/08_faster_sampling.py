# %% [markdown]
"""
# Chapter 8 — Faster sampling: DDIM, step spacing, DPM-Solver++ and the ODE

Ancestral DDPM sampling calls the network once per step, T = 1000 times. This chapter samples the 8 Gaussians in 5 to
50 calls, with the *exact* denoiser of the mixture (`tinydiff.analytic`) so that every error we see is the sampler's.

## DDIM: the same marginals, a different (non-Markovian) process

The DDPM loss only ever looks at the marginals q(x_t | x0); it never uses the Markov chain itself. Song et al. (2021,
"Denoising Diffusion Implicit Models") build a family of forward processes with exactly these marginals but a
non-Markovian q(x_{t-1} | x_t, x0) (their eq. 6-7). Its reverse step, with the network's (x0_hat, eps_hat) in place of
the unknown x0 and eps, is (their eq. 12, computed by `samplers.ddim_step`):

    x_{t-1} = sqrt(ab_{t-1}) x0_hat  +  sqrt(1 - ab_{t-1} - sigma_t^2) eps_hat  +  sigma_t z,      z ~ N(0, I)

    sigma_t = eta sqrt((1 - ab_{t-1}) / (1 - ab_t)) sqrt(1 - ab_t / ab_{t-1})                     (eq. 16, `ddim_sigma`)

eta = 1 is the DDPM posterior variance (DDPM is the member of the family that is Markovian); eta = 0 makes the step
deterministic. Because training never saw the chain, the step "t-1" may be any earlier step: DDIM can jump from 999 to
899 in one call. With eta = 0, DDIM is Euler's method on the probability-flow ODE in the frame z = x_t / sqrt(ab),
sigma = sqrt((1 - ab) / ab) (Karras et al. 2022, eq. 4):  dz/dsigma = eps(z, sigma).

## Higher order: Heun and DPM-Solver++(2M)

Heun (Karras et al. 2022, Alg. 1) takes an Euler guess, evaluates eps there too, and steps with the average: second
order, two calls per step. DPM-Solver++(2M) (Lu et al. 2022b, Alg. 2) is second order for the price of one call: it
writes the step in log-SNR lambda = log(alpha / sigma) and extrapolates the x0 prediction linearly from the previous
step's, D = (1 + 1/(2r)) x0_t - 1/(2r) x0_prev with r = h_prev / h.

## Which steps? (Lin et al. 2023, Table 2)

With S steps out of T the sampler can visit "linspace" (round(linspace(0, T-1, S)), both ends), "leading" (0, T/S, ...,
as in DDIM: never the last, noisiest step) or "trailing" (T-1, T-1-T/S, ...: starts at pure noise, but stops at
t = T/S - 1). Every method ends with a jump to the clean data that returns E[x0 | x_{t_last}], a posterior *mean*.
For narrow modes that mean is narrower than the data: the **final-step shrinkage**, large when t_last is large.

Figures: `spacings.png`, `trajectories.png`, `final_step_shrinkage.png`, `quality_vs_nfe.png`,
`quality_vs_nfe_mlp.png`.
"""

# %%
from pathlib import Path

import numpy as np

from tinydiff import claims, viz
from tinydiff.threads import blas_threads
from tinydiff.analytic import GaussianMixture, GaussianMixtureDenoiser
from tinydiff.bench_nfe import mode_statistics, nfe_table
from tinydiff.data.toy2d import gaussian_mixture_params
from tinydiff.metrics.points import mmd2
from tinydiff.samplers import METHODS, ODE_SIGMA_MAX, SPACINGS, sample, timesteps
from tinydiff.schedules import NoiseSchedule
from tinydiff.trained import load_trained

args = viz.chapter_args(8, "Chapter 8: faster sampling")

# ---- constants -------------------------------------------------------------------------------------------------
T = 1000                                          # diffusion steps
SCHEDULE = "cosine"                               # the schedule of docs/samplers.md
SPACING_STEPS = 10                                # the example of Lin et al. (2023), Table 2
N_PATHS = 24 if args.quick else 60                # trajectories drawn per sampler
PATH_STEPS = 10 if args.quick else 20             # steps of the trajectory figure
REFERENCE_STEPS = 50 if args.quick else 200       # Heun steps of the "true ODE solution" the others are compared to
N_SHRINK = 300 if args.quick else 2000            # points per run of the shrinkage study
SHRINK_STEPS = (5, 20) if args.quick else (5, 10, 20, 50, 100)
N_NFE = 120 if args.quick else 500                # points per run of the quality-vs-NFE study
NFE_STEPS = (5, 10) if args.quick else (5, 10, 20, 50)
CHECKPOINT = Path(__file__).resolve().parents[1] / "data" / "checkpoints" / "8gaussians.npz"  # a trained MLP
CLIP = 3.0                                        # clamp the MLP's x0 estimate (standardised data: |x| < 1.8)
SEED = 0
# -----------------------------------------------------------------------------------------------------------------

rng = np.random.default_rng(SEED)
plt = viz.plt()
schedule = NoiseSchedule.from_name(SCHEDULE, T)
mixture = GaussianMixture.from_params(gaussian_mixture_params("8gaussians"))  # 8 modes of std 0.1 at radius 2
exact = GaussianMixtureDenoiser(mixture, schedule)                             # eps(x_t, t), exactly
data = mixture.sample(2000, rng=rng)
MODE_STD = float(np.sqrt(mixture.covs[0, 0, 0]))                               # 0.1

# %% [markdown]
# ## Three ways to pick 10 steps out of 1000
#
# The left panel is Table 2 of Lin et al. (2023) in tinydiff's 0-based steps; the right shows how noisy each visited
# step is (log-SNR of the cosine schedule). "leading" starts at t = 900, which is not pure noise; "trailing" never
# visits t < 99, so its final jump to the data starts from a noisy x_99.

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 2.6))
axes[1].plot(np.arange(T), schedule.log_snr, color="0.6", lw=1, label="log-SNR of every step")
for row, spacing in enumerate(SPACINGS):
    ts = timesteps(schedule, SPACING_STEPS, spacing)
    print(f"{spacing:>9}: {ts}")
    axes[0].plot(ts, np.full(len(ts), row), "|", ms=14, mew=2, color=f"C{row}")
    axes[1].plot(ts, schedule.log_snr[ts] + 0.0 * row, "o", ms=4, color=f"C{row}", label=spacing)
axes[0].set_yticks(range(len(SPACINGS)), SPACINGS)
axes[0].set_ylim(-0.7, len(SPACINGS) - 0.3)
axes[0].set_xlim(-30, T + 30)
axes[0].set_xlabel("t")
axes[0].set_title(f"{SPACING_STEPS} steps out of T = {T}", fontsize=9)
axes[1].set_xlabel("t")
axes[1].set_ylabel("log SNR_t")
axes[1].legend(fontsize=7)
viz.save(fig, args.out / "spacings.png")

# %% [markdown]
# ## Every sampler from the same start noise
#
# The same N_PATHS noise points, PATH_STEPS steps of each method (trailing spacing), all starting at the largest step
# with sigma <= 80 (where Euler and Heun start by default). The paths of DDPM and of DDIM with eta > 0 wander: fresh
# noise enters at every step, and each point lands in a mode chosen partly by that noise. The deterministic samplers
# (DDIM with eta = 0, DPM-Solver++, Euler, Heun) integrate one ODE, so a start point has one destination, which they
# all approximate; the last panel overlays their end points. We measure how far each lands from a fine Heun solution.

# %%
x_T = rng.standard_normal((N_PATHS, 2))
runs = [("ddpm (= ddim, eta = 1)", "ddpm", 0.0), ("ddim, eta = 0.5", "ddim", 0.5), ("ddim, eta = 0", "ddim", 0.0),
        ("dpm++2m", "dpm++2m", 0.0), ("euler", "euler", 0.0), ("heun", "heun", 0.0)]
reference = sample(exact, x_T.shape, schedule, method="heun", steps=REFERENCE_STEPS, x_T=x_T,
                   sigma_max=ODE_SIGMA_MAX)
fig, axes = plt.subplots(2, 4, figsize=(10.4, 5.6))
axes = axes.ravel()
ends = {}
for ax, (title, method, eta) in zip(axes, runs):
    x, traj = sample(exact, x_T.shape, schedule, method=method, steps=PATH_STEPS, eta=eta, x_T=x_T,
                     sigma_max=ODE_SIGMA_MAX, rng=SEED + 1, return_trajectory=True)
    ends[title] = x
    gap = np.sqrt(((x - reference) ** 2).sum(1)).mean()
    print(f"{title:>24}: {traj.nfe:3d} NFE, mean distance to the fine ODE solution {gap:.4f}")
    ax.scatter(data[:, 0], data[:, 1], s=1, color="0.85", linewidths=0)
    ax.plot(traj.x[:, :, 0], traj.x[:, :, 1], lw=0.5, alpha=0.6)  # (S+1, N) paths, one line per point
    ax.plot(x[:, 0], x[:, 1], "k.", ms=2)
    ax.set_title(f"{title}\n{traj.nfe} NFE, off by {gap:.3f}", fontsize=8)
for ax, lim in zip(axes[-2:], [(-3, 3, -3, 3), (1.5, 2.5, -0.5, 0.5)]):  # all end points, then one mode
    ax.scatter(data[:, 0], data[:, 1], s=1, color="0.85", linewidths=0)
    ax.plot(reference[:, 0], reference[:, 1], "k.", ms=6, label=f"heun, {REFERENCE_STEPS} steps")
    for (title, x), marker in zip(list(ends.items())[2:], "o+x^"):
        ax.plot(x[:, 0], x[:, 1], marker, ms=5, mfc="none", label=title)
    ax.plot(ends[runs[0][0]][:, 0], ends[runs[0][0]][:, 1], "s", ms=3, color="0.5", label="ddpm")
    ax.set_xlim(*lim[:2])
    ax.set_ylim(*lim[2:])
axes[-2].set_title("end points of every sampler", fontsize=8)
axes[-1].set_title("zoom on one mode: the ODE\nsamplers land together", fontsize=8)
axes[-1].legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.02, 1.0))
for i, ax in enumerate(axes):
    ax.set_aspect("equal")
    if i < len(runs):
        ax.set_xlim(-3, 3)
        ax.set_ylim(-3, 3)
    ax.set_xticks([])
    ax.set_yticks([])
viz.save(fig, args.out / "trajectories.png")

# %% [markdown]
# ## The final-step shrinkage
#
# Suppose a sampler reached the last visited step t_last *perfectly*: x ~ q(x_{t_last}). Its final jump returns
# E[x0 | x_{t_last}]. For one isotropic mode of std s, Gaussian conditioning gives E[x0 | x_t] = mu + c (x_t - ...)
# with spread
#
#     std(E[x0 | x_t]) = s sqrt(snr s^2 / (1 + snr s^2)),       snr = ab_t / (1 - ab_t) = 1 / sigma_t^2
#
# which falls below s once sigma_t is comparable with s = 0.1. The line is that formula, the grey dots the same
# spread measured with the exact mixture denoiser (distance of each E[x0 | x_t] to its nearest centre). Beyond
# sigma ~ 0.3 the dots rise again: a point of x_t in the tail between two modes gets a posterior mean *between* them.
# The markers are real DDIM runs. With "trailing" spacing t_last = T/S - 1: the 5-step run (t_last = 199) is exactly
# as blurred as a perfect sampler stopping there would be, and from 20 steps on the runs sit near the curve, their
# modes 10-20% too narrow. (At 10 steps the extra spread of an imperfect x_99 partly offsets the shrinkage.)
# "linspace" and "leading" end at t = 0 (sigma_0 = 0.006), where the shrinkage is nil; what remains is the ODE's
# discretisation error: modes too *wide* at 5 steps (big first jumps overshoot), slightly too narrow at 10-50.

# %%
t_grid = np.unique(np.round(np.geomspace(1, 400, 16)).astype(int))
sigma_grid = schedule.sigmas[t_grid]
measured = []
for t in t_grid:
    ab = schedule.alphas_cumprod[t]
    x_t = mixture.marginal(ab).sample(N_SHRINK, rng=rng)             # a perfect x_{t_last}
    measured.append(mode_statistics(exact.posterior(x_t, ab)["x0"], mixture)["mode_std"])
snr_fine = 1.0 / np.geomspace(sigma_grid[0], sigma_grid[-1], 200) ** 2
fig, ax = plt.subplots(figsize=(6, 3.6))
ax.semilogx(1 / np.sqrt(snr_fine), MODE_STD * np.sqrt(snr_fine * MODE_STD**2 / (1 + snr_fine * MODE_STD**2)),
            color="0.5", label="one Gaussian mode: s sqrt(snr s^2 / (1 + snr s^2))")
ax.semilogx(sigma_grid, measured, "o", color="0.6", ms=4, label="E[x0 | x_t] of exact samples of q(x_t)")
ax.axhline(MODE_STD, color="k", ls=":", lw=1, label=f"data: std {MODE_STD}")
for i, steps in enumerate(SHRINK_STEPS):
    for spacing, marker in zip(SPACINGS, "sDo"):
        x, traj = sample(exact, (N_SHRINK, 2), schedule, method="ddim", steps=steps, timestep_spacing=spacing,
                         rng=SEED + 2, return_trajectory=True)
        t_last = int(traj.t[-2])
        ms = mode_statistics(x, mixture)["mode_std"]
        print(f"ddim {steps:3d} steps {spacing:>9}: t_last = {t_last:3d}, sigma = {schedule.sigmas[t_last]:.4f}, "
              f"mode std {ms:.4f}")
        ax.semilogx(schedule.sigmas[t_last] * (1.0 + 0.06 * i if t_last == 0 else 1.0), ms, marker, color=f"C{i}",
                    ms=6, mfc="none", label=f"ddim {steps} steps, {spacing}" if spacing == "trailing" or i == 0
                    else None)
ax.set_xlabel("sigma at the last sampled step t_last")
ax.set_ylabel("within-mode std of the samples")
ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.02, 1.0))
ax.set_title("squares: linspace, diamonds: leading, circles: trailing", fontsize=8)
viz.save(fig, args.out / "final_step_shrinkage.png")

# %% [markdown]
# ## Quality against the number of network evaluations (NFE)
#
# `bench_nfe.nfe_table` samples N_NFE points with each method and step count and measures the unbiased MMD^2 to the
# data and the within-mode std ("mode std", the data have 0.1). The dotted lines are the floor: a second sample of the
# data. At these sizes MMD^2 is at its floor for every method from 5 steps on (every mode is found, in the right
# proportion); the mode width is where the methods differ. Heun pays two NFE per step. All methods use trailing
# spacing, so at 5-10 steps the shrinkage above dominates; docs/samplers.md has the full tables (and linspace).

# %%
reference_points = mixture.sample(N_NFE, rng=SEED + 3)
other = mixture.sample(N_NFE, rng=SEED + 4)
floor = {"mmd2": mmd2(other, reference_points), **mode_statistics(other, mixture)}
rows = nfe_table(exact, reference_points, schedule, METHODS, NFE_STEPS, n=N_NFE, rng=SEED, mixture=mixture,
                 w2_points=N_NFE)


def plot_quality(rows, floor, title):
    """mode std and MMD^2 against NFE, one line per method, with the data-vs-data floor."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    for i, method in enumerate(METHODS):
        mine = [r for r in rows if r["method"] == method]
        nfe = [r["nfe"] for r in mine]
        axes[0].semilogx(nfe, [r["mode_std"] for r in mine], "o-", color=f"C{i}", label=method)
        axes[1].semilogx(nfe, [r["mmd2"] for r in mine], "o-", color=f"C{i}", label=method)
    axes[0].axhline(MODE_STD, color="k", ls=":", lw=1, label="data (0.1)")
    axes[1].axhline(floor["mmd2"], color="k", ls=":", lw=1, label="data vs data")
    axes[0].set_ylabel("within-mode std")
    axes[1].set_ylabel("MMD^2 to the data")
    for ax in axes:
        ax.set_xlabel("NFE (network evaluations)")
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


for r in rows:
    print(f"{r['method']:>8} {r['steps']:3d} steps {r['nfe']:3d} NFE: MMD^2 {r['mmd2']:+.2e}  "
          f"mode std {r['mode_std']:.4f}")
print(f"   floor (data vs data): MMD^2 {floor['mmd2']:+.2e}  mode std {floor['mode_std']:.4f}")
viz.save(plot_quality(rows, floor, f"exact denoiser, {SCHEDULE} T={T}, trailing spacing, {N_NFE} points"),
         args.out / "quality_vs_nfe.png")

# %% [markdown]
# ## The same study with a trained network
#
# `data/checkpoints/8gaussians.npz` is the MLP denoiser of chapter 6, trained for 4000 steps on the 8 Gaussians with
# the cosine schedule by `python -m tinydiff train --data 8gaussians --schedule cosine` (docs/samplers.md has the exact
# commands). It samples in standardised units; `to_data` maps its samples back. Now the error is the network's and the
# sampler's together, and one new failure appears: the cosine schedule's first step has alpha_bar = 2.4e-9
# (sigma = 2e4), where x0 = (x_t - sqrt(1 - ab) eps) / sqrt(ab) multiplies an eps error of 0.02 into an x0 error of
# 400. The exact denoiser has no such error; the network does, and without a guard DDPM, DDIM and DPM-Solver++ all
# start from that x0 and never recover (Euler and Heun start at sigma = 80 and survive, mostly). The guard image
# models use is to clamp the x0 estimate to the data's range (`clip`, here [-3, 3] in standardised units) and
# recompute eps from it.

# %%
trained = load_trained(CHECKPOINT)           # the network with its schedule, prediction type and data scaling
config = trained.config
print(f"trained MLP: {trained.network.num_parameters()} parameters, {config.steps} steps, {config.schedule} schedule")
for clip in (None, CLIP):
    x = trained.sample(N_NFE, sampler="ddim", steps=20, clip=clip, rng=SEED)      # data units, one BLAS thread
    print(f"ddim, 20 steps, clip={clip}: mode std {mode_statistics(x, mixture)['mode_std']:.3g}")
with blas_threads(1):                        # many small matmuls: one BLAS thread is fastest
    rows_mlp = nfe_table(trained.network, reference_points, trained.schedule, METHODS, NFE_STEPS, n=N_NFE, rng=SEED,
                         mixture=mixture, w2_points=N_NFE, to_data=trained.standardizer.inverse_transform, clip=CLIP,
                         prediction_type=trained.prediction_type)
for r in rows_mlp:
    print(f"MLP {r['method']:>8} {r['steps']:3d} steps {r['nfe']:3d} NFE: MMD^2 {r['mmd2']:+.2e}  "
          f"mode std {r['mode_std']:.4f}")

# %% [markdown]
# With clipping, DDPM reaches the floor from about 20 steps, and the ODE samplers from 20-50: with a network their
# few-step runs are worse than with the exact denoiser (at 5-10 steps the deterministic samplers follow the network's
# errors at high noise, which DDPM's fresh noise would wash out), and Heun's large first step from sigma = 80 costs it
# most. Compare `quality_vs_nfe.png`: the sampler ranking of the exact model does not carry over unchanged.

# %%
viz.save(plot_quality(rows_mlp, floor, f"trained MLP ({config.steps} steps), clip {CLIP:g}, trailing spacing, "
                      f"{N_NFE} points"), args.out / "quality_vs_nfe_mlp.png")

# %%
claims.finish()   # every claim above was checked in this run: exit 1 if one failed
