# %% [markdown]
r"""
# Chapter 8 — Faster sampling: DDIM, step spacing, DPM-Solver++ and the ODE

Ancestral DDPM sampling calls the network once per step, $T = 1000$ times. This chapter samples the 8 Gaussians in 5 to
50 calls, with the *exact* denoiser of the mixture (`tinydiff.analytic`) so that every error we see is the sampler's.

## DDIM: the same marginals, a different (non-Markovian) process

The DDPM loss only ever looks at the marginals $q(x_t \mid x_0)$; it never uses the Markov chain itself. Song et al.
(2021, "Denoising Diffusion Implicit Models") build a family of forward processes with exactly these marginals but a
non-Markovian $q(x_{t-1} \mid x_t, x_0)$ (their eq. 6-7). Its reverse step, with the network's
$(\hat x_0, \hat\epsilon)$ in place of the unknown $x_0$ and $\epsilon$, is (their eq. 12, computed by
`samplers.ddim_step`):

$$x_{t-1} = \sqrt{\bar\alpha_{t-1}}\, \hat x_0 + \sqrt{1 - \bar\alpha_{t-1} - \sigma_t^2}\, \hat\epsilon + \sigma_t z,
\qquad z \sim \mathcal{N}(0, I)$$

$$\sigma_t = \eta \sqrt{\frac{1 - \bar\alpha_{t-1}}{1 - \bar\alpha_t}}
\sqrt{1 - \frac{\bar\alpha_t}{\bar\alpha_{t-1}}}$$

(eq. 16, `ddim_sigma`).

$\eta = 1$ is the DDPM posterior variance (DDPM is the member of the family that is Markovian); $\eta = 0$ makes the
step deterministic. Because training never saw the chain, the step "$t-1$" may be any earlier step: DDIM can jump from
999 to 899 in one call. With $\eta = 0$, DDIM is Euler's method on the probability-flow ODE in the frame
$z = x_t / \sqrt{\bar\alpha_t}$, $\sigma = \sqrt{(1 - \bar\alpha_t) / \bar\alpha_t}$ (Karras et al. 2022, eq. 4):
$dz / d\sigma = \epsilon(z, \sigma)$.

## Higher order: Heun and DPM-Solver++(2M)

Heun (Karras et al. 2022, Alg. 1) takes an Euler guess, evaluates $\epsilon$ there too, and steps with the average:
second order, two calls per step. DPM-Solver++(2M) (Lu et al. 2022b, Alg. 2) is second order for the price of one
call: it writes the step in $\lambda = \log(\alpha / \sigma)$, with $\alpha = \sqrt{\bar\alpha_t}$ and
$\sigma = \sqrt{1 - \bar\alpha_t}$ (Lu et al. 2022a, "DPM-Solver", Sec. 3.1), which is **half** the log-SNR of chapter
2: $\log\big(\bar\alpha_t / (1 - \bar\alpha_t)\big) = 2 \lambda$. It extrapolates the $x_0$ prediction linearly from
the previous step's:

$$D = \Big(1 + \frac{1}{2r}\Big)\, \hat x_0 - \frac{1}{2r}\, \hat x_0^\text{last}, \qquad
r = \frac{h_\text{last}}{h}, \qquad h = \lambda_\text{prev} - \lambda_t,$$

where "prev" is the step being computed (as in $x_{t-1}$) and "last" the step taken before this one. In the $\sigma$
frame of Euler and Heun, $\sigma_\text{VE} = \sqrt{(1 - \bar\alpha_t) / \bar\alpha_t} = e^{-\lambda}$.

"Second order" is a promise about convergence: halve every step and the error of a method of order $p$ falls by
$2^p$.
The section "Order, measured" checks it with fitted slopes on log-log axes.

## Which steps? (Lin et al. 2023, Table 2)

With $S$ steps out of $T$ the sampler can visit "linspace" (`round(linspace(0, T-1, S))`, both ends), "leading"
($0, T/S, \ldots$, as in DDIM: never the last, noisiest step) or "trailing" ($T-1, T-1-T/S, \ldots$: starts at pure
noise, but stops at $t = T/S - 1$). Every method ends with a jump to the clean data that returns
$\mathbb{E}[x_0 \mid x_{t_\text{last}}]$, a posterior *mean*. For narrow modes that mean is narrower than the data: the
**final-step shrinkage**, large when $t_\text{last}$ is large.

Figures: `spacings.png`, `trajectories.png`, `ode_convergence.png`, `final_step_shrinkage.png`, `quality_vs_nfe.png`,
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
from tinydiff.processes import EDMProcess
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
FINE = 1024                                       # levels of the fine grid of the order study (coarse grids: sub-grids)
CONV_STEPS = (4, 8, 16, 32, 64) if args.quick else (4, 8, 16, 32, 64, 128, 256)   # solver steps of the order study
FIT_FROM = 16                                     # fit the slopes from this many steps on (the asymptotic range)
N_CONV = 100 if args.quick else 400               # start points of the order study
SIGMA_MIN, SIGMA_MAX = 0.005, 80.0                # the ODE runs from sigma_max to sigma_min (Karras et al.'s 80)
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
# step is (log-SNR of the cosine schedule). "leading" starts at $t = 900$, which is not pure noise; "trailing" never
# visits $t < 99$, so its final jump to the data starts from a noisy $x_{99}$.

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
# with $\sigma \le 80$ (where Euler and Heun start by default). The paths of DDPM and of DDIM with $\eta > 0$ wander:
# fresh noise enters at every step, and each point lands in a mode chosen partly by that noise. The deterministic
# samplers (DDIM with $\eta = 0$, DPM-Solver++, Euler, Heun) integrate one ODE, so a start point has one destination,
# which they all approximate; the last panel overlays their end points, with a fine Heun solution (black). How far each
# lands is *not* a fair measure of the ODE error here: DDIM and DPM-Solver++ start at $t = T-1$
# ($\sigma = 2 \cdot 10^4$), Euler and Heun at $\sigma = 80$, and every run ends with the final jump from its own
# $t_\text{last}$. The next section measures the error fairly.

# %%
x_T = rng.standard_normal((N_PATHS, 2))
runs = [("ddpm (= ddim, eta = 1)", "ddpm", 0.0), ("ddim, eta = 0.5", "ddim", 0.5), ("ddim, eta = 0", "ddim", 0.0),
        ("dpm++2m", "dpm++2m", 0.0), ("euler", "euler", 0.0), ("heun", "heun", 0.0)]
reference = sample(exact, x_T.shape, schedule, method="heun", steps=REFERENCE_STEPS, x_T=x_T,
                   sigma_max=ODE_SIGMA_MAX)
fig, axes = plt.subplots(2, 4, figsize=(10.4, 5.6))
axes = axes.ravel()
ends, gaps = {}, {}
for ax, (title, method, eta) in zip(axes, runs):
    x, traj = sample(exact, x_T.shape, schedule, method=method, steps=PATH_STEPS, eta=eta, x_T=x_T,
                     sigma_max=ODE_SIGMA_MAX, rng=SEED + 1, return_trajectory=True)
    ends[title] = x
    gap = np.sqrt(((x - reference) ** 2).sum(1)).mean()
    gaps[method if eta in (0.0, 1.0) or method == "ddpm" else f"{method} eta={eta}"] = gap
    print(f"{title:>24}: {traj.nfe:3d} NFE, mean distance to the fine ODE solution {gap:.4f}")
    ax.scatter(data[:, 0], data[:, 1], s=1, color="0.85", linewidths=0)
    ax.plot(traj.x[:, :, 0], traj.x[:, :, 1], lw=0.5, alpha=0.6)  # (S+1, N) paths, one line per point
    ax.plot(x[:, 0], x[:, 1], "k.", ms=2)
    ax.set_title(f"{title}\n{traj.nfe} NFE", fontsize=8)
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
ode_gap = max(gaps[m] for m in ("ddim", "dpm++2m", "euler", "heun"))
claims.claim(gaps["ddpm"] > 10 * ode_gap and gaps["ddim eta=0.5"] > 10 * ode_gap,
             "stochastic paths land elsewhere (mean distance to the fine ODE solution: DDPM {a:.2f}, DDIM eta = 0.5 "
             "{b:.2f}); the deterministic samplers land together (all within {c:.3f})",
             a=gaps["ddpm"], b=gaps["ddim eta=0.5"], c=ode_gap)

# %% [markdown]
# ## Order, measured: error against NFE
#
# To measure a solver's order, compare like with like. Every solver integrates the probability-flow ODE of the exact
# mixture from the same start ($\sigma = 80$, the same N_CONV noise points) to the same end ($\sigma = 0.005$), with
# `final_step="none"`, so no final jump (next section) is mixed in. It runs on Karras et al.'s EDM process
# (`tinydiff.processes.EDMProcess`: $x = x_0 + \sigma \epsilon$, time is the noise level), whose grids are set by name;
# the samplers are the same. The reference is the same ODE on the fine grid of FINE = 1024 steps (Heun, 2048 NFE),
# improved by one Richardson step ($x_{1024} + (x_{1024} - x_{512}) / 3$, which cancels the $h^2$ error term); the same
# done with DPM-Solver++ agrees with it to ~1e-7. Two grids of noise levels (`timestep_spacing`): uniform in
# $\lambda = -\log \sigma$ (DPM-Solver's choice) and Karras et al.'s (2022, eq. 5) $\rho = 7$ grid. The error is the RMS
# distance of the end points to the reference's.
#
# On log-log axes a method of order $p$ is a line of slope $-p$. The fitted slopes (from 16 steps on) are ~1 for Euler
# (= DDIM with $\eta = 0$, checked below), ~2 for Heun and 1.7-1.9 for DPM-Solver++(2M), creeping towards 2 as the steps
# shrink (its first step is first order, and the $x_0$ extrapolation needs a smooth $\hat x_0$ along the path). Per NFE,
# DPM-Solver++(2M) wins from 32 NFE on: Heun's second order costs two calls per step, so at equal NFE it takes half as
# many steps. At very few steps (4-8) no method is in its asymptotic range and Heun is the worst of the three. Figure:
# `ode_convergence.png`.

# %%
edm = EDMProcess(sigma_min=SIGMA_MIN, sigma_max=SIGMA_MAX)   # x = x0 + sigma eps: time is the noise level
edm_exact = GaussianMixtureDenoiser(mixture, edm)
conv_start = np.sqrt(1 + SIGMA_MAX**2) * rng.standard_normal((N_CONV, 2))          # x at sigma_max, EDM frame
ODE_METHODS = ("euler", "heun", "dpm++2m")
GRID_NAMES = {"lambda": "uniform in lambda", "karras": "Karras rho = 7"}
study = {}                                          # (grid, method) -> (nfe array, error array, slope)
fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
for ax, (spacing, grid_name) in zip(axes, GRID_NAMES.items()):
    ode = dict(x_T=conv_start, final_step="none", timestep_spacing=spacing)

    def solve(method, n):
        """End points (N_CONV, 2) at sigma_min of ``method`` with n steps (n + 1 noise levels), and its NFE."""
        x, traj = sample(edm_exact, conv_start.shape, edm, method=method, steps=n + 1, return_trajectory=True, **ode)
        return x, traj.nfe

    def converged(method):
        """Richardson extrapolation of a second-order solver: x_h + (x_h - x_2h) / 3 cancels the h^2 error term."""
        fine_end, coarse_end = solve(method, FINE)[0], solve(method, FINE // 2)[0]
        return fine_end + (fine_end - coarse_end) / 3

    truth, check = converged("heun"), converged("dpm++2m")
    reference_gap = float(np.sqrt(((truth - check) ** 2).sum(1).mean()))
    for i, method in enumerate(ODE_METHODS):
        runs_n = [solve(method, n) for n in CONV_STEPS]
        nfe = np.array([k for _, k in runs_n])
        err = np.array([np.sqrt(((x - truth) ** 2).sum(1).mean()) for x, _ in runs_n])
        fit = np.array(CONV_STEPS) >= FIT_FROM
        slope = -np.polyfit(np.log(nfe[fit]), np.log(err[fit]), 1)[0]
        study[grid_name, method] = (nfe, err, slope)
        print(f"{grid_name:>18} {method:>8}: NFE {nfe.tolist()}  error {np.array2string(err, precision=5)}  "
              f"slope {slope:.2f}")
        ax.loglog(nfe, err, "o-", color=f"C{i + 2}", label=f"{method}: slope {slope:.2f}")
    study[grid_name, "ddim = euler"] = float(np.abs(solve("ddim", CONV_STEPS[2])[0] - solve("euler", CONV_STEPS[2])[0]).max())
    study[grid_name, "reference"] = reference_gap
    guide = np.array([8, 256])
    ax.loglog(guide, 0.5 * (guide / 8.0) ** -1.0, "k:", lw=1, label="slope -1")
    ax.loglog(guide, 0.5 * (guide / 8.0) ** -2.0, "k--", lw=1, label="slope -2")
    ax.set_xlabel("NFE (network evaluations)")
    ax.set_title(f"{grid_name}: sigma {SIGMA_MAX:g} -> {SIGMA_MIN:g}; reference: Heun, {FINE} steps + Richardson", fontsize=8)
    ax.legend(fontsize=7)
axes[0].set_ylabel("RMS distance to the converged end points")
viz.save(fig, args.out / "ode_convergence.png")

for grid_name in GRID_NAMES.values():
    (_, e_eu, s_eu), (n_he, e_he, s_he), (n_dp, e_dp, s_dp) = (study[grid_name, m] for m in ODE_METHODS)
    claims.claim(study[grid_name, "ddim = euler"] < 1e-8,
                 "{g}: DDIM with eta = 0 and Euler give the same end points (largest difference {d:.1e})",
                 g=grid_name, d=study[grid_name, "ddim = euler"])
    claims.claim(study[grid_name, "reference"] < 0.1 * min(e_dp.min(), e_he.min(), e_eu.min()),
                 "{g}: the reference is converged: Heun and DPM-Solver++ on the fine grid agree to {r:.1e}, under a "
                 "tenth of the smallest error measured", g=grid_name, r=study[grid_name, "reference"])
    claims.claim(0.9 < s_eu < 1.15 and 1.8 < s_he < 2.25 and 1.6 < s_dp < 2.25,
                 "{g}: fitted orders Euler {a:.2f} (~1), Heun {b:.2f} (~2), DPM-Solver++(2M) {c:.2f} (~2)",
                 g=grid_name, a=s_eu, b=s_he, c=s_dp, quick=False)
    heun_at = dict(zip(n_he, e_he))
    equal = [k for k, n in enumerate(n_dp) if n >= 32 and n in heun_at]
    claims.claim(equal and all(e_dp[k] < heun_at[n_dp[k]] < e_eu[k] for k in equal),
                 "{g}: at equal NFE (32 and more) DPM-Solver++(2M) < Heun < Euler; at {n} NFE the errors are "
                 "{a:.1e}, {b:.1e}, {c:.1e}", g=grid_name, n=int(n_dp[equal[0]]) if equal else 0,
                 a=e_dp[equal[0]] if equal else np.nan, b=heun_at[n_dp[equal[0]]] if equal else np.nan,
                 c=e_eu[equal[0]] if equal else np.nan)

# %% [markdown]
# ## The final-step shrinkage
#
# Suppose a sampler reached the last visited step $t_\text{last}$ *perfectly*: $x \sim q(x_{t_\text{last}})$. Its final
# jump returns $\mathbb{E}[x_0 \mid x_{t_\text{last}}]$. For one isotropic mode of std $s$, Gaussian conditioning gives
# $\mathbb{E}[x_0 \mid x_t] = \mu + c\, (x_t - \ldots)$ with spread
#
# $$\mathrm{std}\big(\mathbb{E}[x_0 \mid x_t]\big) = s \sqrt{\frac{\mathrm{snr}\, s^2}{1 + \mathrm{snr}\, s^2}}, \qquad
# \mathrm{snr} = \frac{\bar\alpha_t}{1 - \bar\alpha_t} = \frac{1}{\sigma_t^2}$$
#
# which falls below $s$ once $\sigma_t$ is comparable with $s = 0.1$. The line is that formula, the grey dots the same
# spread measured with the exact mixture denoiser (distance of each $\mathbb{E}[x_0 \mid x_t]$ to its nearest centre).
# Beyond $\sigma \approx 0.3$ the dots rise again: a point of $x_t$ in the tail between two modes gets a posterior mean
# *between* them. The markers are real DDIM runs. With "trailing" spacing $t_\text{last} = T/S - 1$. The 5-step run
# ($t_\text{last} = 199$, $\sigma = 0.34$) is about twice as wide as a perfect sampler stopping there (0.17 against
# 0.08): there the grey dots climb steeply, and after four big steps its $x_{199}$ is itself too spread. From 20 steps
# on the runs sit near the grey dots, their modes 21 % (20 steps), 11 % (50) and 6 % (100) too narrow. (At 10 steps the
# extra spread of an imperfect $x_{99}$ partly offsets the shrinkage.) "linspace" and "leading" end at $t = 0$
# ($\sigma_0 = 0.006$), where the shrinkage is nil; what remains is the ODE's discretisation error: modes too *wide* at
# 5 steps (big first jumps overshoot), slightly too narrow at 10-50.

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
runs_shrink = {}                                                  # (steps, spacing) -> (t_last, mode std)
for i, steps in enumerate(SHRINK_STEPS):
    for spacing, marker in zip(SPACINGS, "sDo"):
        x, traj = sample(exact, (N_SHRINK, 2), schedule, method="ddim", steps=steps, timestep_spacing=spacing,
                         rng=SEED + 2, return_trajectory=True)
        t_last = int(traj.t[-2])
        ms = mode_statistics(x, mixture)["mode_std"]
        runs_shrink[steps, spacing] = (t_last, ms)
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


def perfect(t):
    """mode std of E[x0 | x_t] for exact samples x_t of q_t: a perfect sampler that stops at t and jumps."""
    ab = schedule.alphas_cumprod[t]
    return mode_statistics(exact.posterior(mixture.marginal(ab).sample(N_SHRINK, rng=rng), ab)["x0"], mixture)["mode_std"]


t5, ms5 = runs_shrink[5, "trailing"]
claims.claim(ms5 > 1.5 * perfect(t5),
             "5 trailing steps end wider than a perfect sampler stopping at t_last = {t}: mode std {a:.4f} vs {b:.4f}",
             t=t5, a=ms5, b=perfect(t5), quick=False)
later = [(runs_shrink[k, "trailing"], k) for k in SHRINK_STEPS if k >= 20]
claims.claim(all(abs(ms - perfect(t)) < 0.012 and ms < MODE_STD for (t, ms), _ in later),
             "from 20 trailing steps on the runs sit near the perfect sampler's spread and below the data's 0.1: "
             "{runs}", runs=", ".join(f"{k} steps {ms:.4f} ({1 - ms / MODE_STD:.0%} too narrow)" for (t, ms), k in later),
             quick=False)
ends_at_0 = [(k, sp) for k in SHRINK_STEPS for sp in ("linspace", "leading")]
claims.claim(all(runs_shrink[k, sp][1] > 0.12 for k, sp in ends_at_0 if k == 5)
             and all(0.08 <= runs_shrink[k, sp][1] < MODE_STD for k, sp in ends_at_0 if 10 <= k <= 50),
             "runs ending at t = 0 (linspace, leading): modes too wide at 5 steps ({w}), slightly too narrow at 10-50 "
             "({n})", w=[round(runs_shrink[5, sp][1], 3) for sp in ("linspace", "leading")],
             n=[round(runs_shrink[k, sp][1], 3) for k, sp in ends_at_0 if 10 <= k <= 50], quick=False)

# %% [markdown]
# ## Quality against the number of network evaluations (NFE)
#
# `bench_nfe.nfe_table` samples N_NFE points with each method and step count (trailing spacing, full sampling with the
# final jump: what a user gets). Left: the within-mode std ("mode std", the data have 0.1). Right: the mean
# log-likelihood of the samples under the exact mixture, minus that of a second exact sample of the data; the grey band
# is $\pm 2$ standard errors of such a mean, so a run outside it is resolved. Above 0 the modes are too narrow (the
# final-step shrinkage of the previous section), below 0 too wide or points between modes. ($\mathrm{MMD}^2$, the usual
# two-sample statistic, cannot resolve these runs at $n = 500$: every one of them lies within the $\mathrm{MMD}^2$ of
# the data against itself; its values are printed.) At 5 steps the first-order samplers overshoot and their modes are
# too wide; from 10 steps on the shrinkage of the trailing spacing's $t_\text{last}$ dominates. Heun pays two NFE per
# step. docs/samplers.md has the full tables (and linspace).

# %%
reference_points = mixture.sample(N_NFE, rng=SEED + 3)
other = mixture.sample(N_NFE, rng=SEED + 4)
log_p_other = mixture.log_prob(other)
floor = {"mmd2": mmd2(other, reference_points), **mode_statistics(other, mixture),
         "loglik": float(log_p_other.mean()), "loglik_se": float(log_p_other.std() / np.sqrt(N_NFE))}
rows = nfe_table(exact, reference_points, schedule, METHODS, NFE_STEPS, n=N_NFE, rng=SEED, mixture=mixture,
                 w2_points=N_NFE)


def plot_quality(rows, floor, title):
    """mode std and the mean log-likelihood (minus the data's) against NFE, one line per method."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    for i, method in enumerate(METHODS):
        mine = [r for r in rows if r["method"] == method]
        nfe = [r["nfe"] for r in mine]
        axes[0].semilogx(nfe, [r["mode_std"] for r in mine], "o-", color=f"C{i}", label=method)
        axes[1].semilogx(nfe, [r["loglik"] - floor["loglik"] for r in mine], "o-", color=f"C{i}", label=method)
    axes[0].axhline(MODE_STD, color="k", ls=":", lw=1, label="data (0.1)")
    axes[1].axhspan(-2 * floor["loglik_se"], 2 * floor["loglik_se"], color="0.85", label="data: +-2 s.e.")
    axes[1].axhline(0, color="k", ls=":", lw=1)
    axes[0].set_ylabel("within-mode std")
    axes[1].set_ylabel("mean log p(samples) - mean log p(data)")
    for ax in axes:
        ax.set_xlabel("NFE (network evaluations)")
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


for r in rows:
    print(f"{r['method']:>8} {r['steps']:3d} steps {r['nfe']:3d} NFE: MMD^2 {r['mmd2']:+.2e}  "
          f"mode std {r['mode_std']:.4f}  log-likelihood {r['loglik'] - floor['loglik']:+.3f} vs the data")
print(f"   floor (data vs data): MMD^2 {floor['mmd2']:+.2e}  mode std {floor['mode_std']:.4f}  "
      f"log-likelihood s.e. {floor['loglik_se']:.3f}")
resolved = [r for r in rows if abs(r["loglik"] - floor["loglik"]) > 2 * floor["loglik_se"]]
claims.claim(len(resolved) >= 0.75 * len(rows),
             "the log-likelihood resolves {k} of the {n} runs (outside +-2 s.e. of the data's)",
             k=len(resolved), n=len(rows), quick=False)
claims.claim(max(abs(r["mmd2"]) for r in rows) < 3 * abs(floor["mmd2"]) + 2e-3,
             "MMD^2 cannot resolve them: every run's |MMD^2| (largest {m:.1e}) is of the size of the data-vs-data "
             "value ({f:.1e})", m=max(abs(r["mmd2"]) for r in rows), f=floor["mmd2"], quick=False)
first_order_5 = [r for r in rows if r["steps"] == 5 and r["method"] in ("ddim", "euler", "dpm++2m")]
claims.claim(all(r["mode_std"] > 0.12 and r["loglik"] < floor["loglik"] - 2 * floor["loglik_se"] for r in first_order_5),
             "at 5 steps DDIM, Euler and DPM-Solver++ make the modes too wide (mode std {a})",
             a=[round(r["mode_std"], 3) for r in first_order_5], quick=False)
ode_10 = [r for r in rows if r["steps"] in (10, 20) and r["method"] in ("ddim", "euler", "dpm++2m")]
claims.claim(all(r["mode_std"] < MODE_STD and r["loglik"] > floor["loglik"] + 2 * floor["loglik_se"] for r in ode_10),
             "at 10-20 steps their modes are too narrow: the shrinkage (mode std {a})",
             a=[round(r["mode_std"], 3) for r in ode_10], quick=False)
viz.save(plot_quality(rows, floor, f"exact denoiser, {SCHEDULE} T={T}, trailing spacing, {N_NFE} points"),
         args.out / "quality_vs_nfe.png")

# %% [markdown]
# ## The same study with a trained network
#
# `data/checkpoints/8gaussians.npz` is the MLP denoiser of chapter 6, trained on the 8 Gaussians with the *uncapped*
# cosine schedule (`max_beta = 0.999`, so its last step has $\sigma = 2 \cdot 10^4$) by
#
#     python -m tinydiff train --data 8gaussians --schedule cosine --max-beta 0.999 --steps 4000 --batch-size 512 \
#         --lr 2e-3 --out runs/8g
#
# (docs/samplers.md: how it was stripped for shipping; today's defaults, `max_beta = 0.1`, would end at
# $\sigma \approx 100$ and hide the failure below). It samples in standardised units; `to_data` maps its samples back.
# Now the error is the network's and the sampler's together, and one new failure appears: the cosine schedule's first
# step has $\bar\alpha_t = 2.4 \cdot 10^{-9}$ ($\sigma = 2 \cdot 10^4$), where
# $\hat x_0 = (x_t - \sqrt{1 - \bar\alpha_t}\, \hat\epsilon) / \sqrt{\bar\alpha_t}$ multiplies an $\epsilon$ error of
# 0.02 into an $x_0$ error of 400. The exact denoiser has no such error; the network does, and without a guard DDPM,
# DDIM and DPM-Solver++ all start from that $\hat x_0$ and never recover (Euler and Heun start at $\sigma = 80$ and
# survive, mostly). The guard image models use is to clamp the $x_0$ estimate to the data's range (`clip`, here
# $[-3, 3]$ in standardised units) and recompute $\hat\epsilon$ from it.

# %%
trained = load_trained(CHECKPOINT)           # the network with its schedule, prediction type and data scaling
config = trained.config
print(f"trained MLP: {trained.network.num_parameters()} parameters, {config.steps} steps, {config.schedule} schedule")
claims.claim(trained.schedule.alphas_cumprod[0] > 0 and abs(trained.schedule.alphas_cumprod[-1] / 2.4e-9 - 1) < 0.05
             and abs(trained.schedule.sigmas[-1] / 2e4 - 1) < 0.05,
             "the checkpoint's schedule ends at alpha_bar = {ab:.2e}, sigma = {s:.2g}",
             ab=trained.schedule.alphas_cumprod[-1], s=trained.schedule.sigmas[-1])
clip_spread = {}
for clip in (None, CLIP):
    x = trained.sample(N_NFE, sampler="ddim", steps=20, clip=clip, rng=SEED)      # data units, one BLAS thread
    clip_spread[clip] = mode_statistics(x, mixture)["mode_std"]
    print(f"ddim, 20 steps, clip={clip}: mode std {clip_spread[clip]:.3g}")
claims.claim(clip_spread[None] > 10 and clip_spread[CLIP] < 0.2,
             "without clipping DDIM never recovers from the first x0 (mode std {a:.3g}); clipped to [-3, 3] it does "
             "({b:.3f})", a=clip_spread[None], b=clip_spread[CLIP])
with blas_threads(1):                        # many small matmuls: one BLAS thread is fastest
    rows_mlp = nfe_table(trained.network, reference_points, trained.schedule, METHODS, NFE_STEPS, n=N_NFE, rng=SEED,
                         mixture=mixture, w2_points=N_NFE, to_data=trained.standardizer.inverse_transform, clip=CLIP,
                         prediction_type=trained.prediction_type)
for r in rows_mlp:
    print(f"MLP {r['method']:>8} {r['steps']:3d} steps {r['nfe']:3d} NFE: MMD^2 {r['mmd2']:+.2e}  "
          f"mode std {r['mode_std']:.4f}")

# %% [markdown]
# With clipping, DDPM's mode width is within 0.02 of the data's from 20 steps on, and the ODE samplers' from 20-50:
# with a network their few-step runs are worse than with the exact denoiser (at 5-10 steps the deterministic
# samplers' modes come out wider: they follow the network's errors at high noise, which DDPM's fresh noise would wash
# out), and of the deterministic samplers Heun's large first step from $\sigma = 80$ costs it most (the stochastic
# `sde` and `pc`, which start there too, are as wide at 5 steps). Compare `quality_vs_nfe.png`: the sampler ranking
# of the exact model does not carry over unchanged.

# %%
mlp_at = {(r["method"], r["steps"]): r["mode_std"] for r in rows_mlp}
exact_at = {(r["method"], r["steps"]): r["mode_std"] for r in rows}
few = [(m, k) for m in ("ddim", "dpm++2m", "euler") for k in NFE_STEPS if k <= 10]
claims.claim(all(mlp_at[key] > exact_at[key] for key in few),
             "at 5-10 steps the deterministic samplers' modes are wider with the network than with the exact model "
             "({pairs})", pairs=", ".join(f"{m} {k}: {mlp_at[m, k]:.3f} vs {exact_at[m, k]:.3f}" for m, k in few),
             quick=False)
claims.claim(all(abs(mlp_at["ddpm", k] - MODE_STD) < 0.02 for k in NFE_STEPS if k >= 20),
             "with the network DDPM is within 0.02 of the data's mode std from 20 steps on ({v})",
             v=[round(mlp_at["ddpm", k], 3) for k in NFE_STEPS if k >= 20], quick=False)
deterministic = ("ddim", "dpm++2m", "euler", "heun")       # the deterministic samplers the sentence compares
claims.claim(mlp_at["heun", 5] == max(mlp_at[m, 5] for m in deterministic)
             and mlp_at["heun", 5] > 3 * exact_at["heun", 5],
             "of the deterministic samplers, Heun's large first step from sigma = 80 costs it most: mode std {h:.2f} at "
             "5 steps (exact model: {e:.3f}; {others})", h=mlp_at["heun", 5], e=exact_at["heun", 5],
             others=", ".join(f"{m} {mlp_at[m, 5]:.3f}" for m in deterministic if m != "heun"), quick=False)
stochastic = [m for m in ("sde", "pc") if (m, 5) in mlp_at]
claims.claim(bool(stochastic) and all(mlp_at[m, 5] >= 0.9 * mlp_at["heun", 5] for m in stochastic),
             "the stochastic samplers that also start at sigma = 80 are as wide at 5 steps ({v}; Heun {h:.2f})",
             v=", ".join(f"{m} {mlp_at[m, 5]:.2f}" for m in stochastic), h=mlp_at["heun", 5], quick=False)
viz.save(plot_quality(rows_mlp, floor, f"trained MLP ({config.steps} steps), clip {CLIP:g}, trailing spacing, "
                      f"{N_NFE} points"), args.out / "quality_vs_nfe_mlp.png")

# %%
claims.finish()   # every claim above was checked in this run: exit 1 if one failed
