# %% [markdown]
r"""
# Chapter 15 — Stochastic differential equations: forward, reverse, predictor-corrector and the probability-flow ODE

Song et al. (2021, "Score-based generative modeling through SDEs") joined DDPM (chapter 7) and NCSN (chapter 14)
into one picture: both are discretisations of a **stochastic differential equation** that turns data into noise,
and sampling is running a second SDE, its time reversal, with the learned score.

## Forward SDEs and their marginals

An Ito SDE $dx = f(t)\, x\, dt + g(t)\, dW$ moves every point by a deterministic drift plus Brownian noise. For a
linear drift the marginals are Gaussian around the scaled data, $x_t = \alpha(t)\, x_0 + \sigma(t)\, \epsilon$, when
(Kingma et al. 2021, App. A; `Process.sde`)

$$f(t) = \frac{d \log \alpha}{dt}, \qquad g(t)^2 = \frac{d \sigma^2}{dt} - 2 f(t)\, \sigma^2$$

- **VP** (Song et al. eq. 11, DDPM's limit): $f = -\beta(t) / 2$, $g^2 = \beta(t)$, $\alpha^2 + \sigma^2 = 1$.
- **VE** (eq. 9, NCSN's limit): $f = 0$, $g^2 = d \sigma^2 / dt$,
  $\sigma(t) = \sigma_{\min} (\sigma_{\max} / \sigma_{\min})^t$.

Euler-Maruyama, $x_{k+1} = x_k + f\, x_k\, \Delta t + g \sqrt{\Delta t}\, z_k$
(`tinydiff.sde.euler_maruyama_forward`), simulates them; its paths' spread must match $\sigma(t)$, which we check.

## The reverse-time SDE

Anderson (1982): the time reversal of the forward SDE is again an SDE, run from $t = 1$ down to 0
(Song et al., eq. 6),

$$dx = \big[f(t)\, x - g(t)^2\, \nabla_x \log p_t(x)\big]\, dt + g(t)\, d\bar W$$

Only the score is unknown, and that is what the network learns (chapter 14). tinydiff takes its Euler-Maruyama step
in the sigma frame $z = x / \alpha = x_0 + \sigma \epsilon$, where every process is VE with time $\tau = \sigma^2$
(Karras et al. 2022, eq. 6):

$$z' = z + (\sigma^2 - \sigma'^2)\, \nabla_z \log p(z) + \sqrt{\sigma^2 - \sigma'^2}\, \xi$$

(`reverse_sde_step`, method "sde"; Song et al.'s "reverse diffusion" predictor). Its last step, to $\sigma = 0$, is
Tweedie's $x_0$.

## Predictor-corrector

Any SDE step has discretisation error; Song et al. (Alg. 2, 5) correct it with a few Langevin steps at each level
(chapter 14), whose step size comes from a target signal-to-noise ratio $r$:
$\delta = 2 \big(r \|\xi\| / \|\nabla_z \log p(z)\|\big)^2$, with $\xi$ the injected noise, so that the drift is $r$
times the injected noise (`snr_step_size`; $r = 0.16$, one corrector step: method "pc", 2 NFE per level).

## The probability-flow ODE

Song et al. (eq. 13): the ODE

$$\frac{dx}{dt} = f(t)\, x - \tfrac{1}{2} g(t)^2\, \nabla_x \log p_t(x)$$

has the *same marginals* $p_t$ as the SDE, with no noise. In the sigma frame it is
$dz / d\sigma = -\sigma\, \nabla_z \log p = \epsilon$ (Karras et al. eq. 4): chapter 8's DDIM and Euler, chapter 9's
Heun and DPM-Solver++ are all solvers of this one ODE. We check that by integrating the ODE as Song et al. write it, in
the process's own time with $f$ and $g$, against the library's Heun.

Figures: `forward_sdes.png`, `reverse_paths.png`, `pf_ode_check.png`, `quality_vs_nfe.png`.
"""

# %%
import numpy as np

from tinydiff import viz
from tinydiff.claims import claim, finish
from tinydiff.analytic import GaussianMixture, GaussianMixtureDenoiser
from tinydiff.data.toy2d import gaussian_mixture_params
from tinydiff.processes import VEProcess, VPProcess, grid
from tinydiff.samplers import sample
from tinydiff.sde import euler_maruyama_forward
from tinydiff.threads import blas_threads

args = viz.chapter_args(15, "Chapter 15: SDEs, reverse SDEs, predictor-corrector and the probability-flow ODE")

# ---- constants -------------------------------------------------------------------------------------------------
N_PATHS = 2000 if args.quick else 20_000       # Euler-Maruyama paths per start point
EM_STEPS = 200 if args.quick else 500          # their steps over t in [t_min, 1]
N_DRAWN = 12                                   # paths drawn
N_PF = 20 if args.quick else 50                # points for the PF-ODE check
PF_STEPS = 1000 if args.quick else 4000        # RK4 steps in t for the ODE as Song et al. write it
HEUN_STEPS = 512 if args.quick else 2048       # the library's Heun, rho = 7 grid
N_QUALITY = 400 if args.quick else 2000        # samples per (method, NFE)
NFES = (10, 20, 50) if args.quick else (10, 20, 50, 100, 200)
SEED = 0
# -----------------------------------------------------------------------------------------------------------------

rng = np.random.default_rng(SEED)
plt = viz.plt()
vp, ve = VPProcess(), VEProcess(0.01, 10.0)
mixture = GaussianMixture.from_params(gaussian_mixture_params("8gaussians"))
mix1d = GaussianMixture([0.3, 0.7], [[-1.5], [1.0]], [[[0.04]], [[0.04]]])    # for the path pictures

# %% [markdown]
# ## Forward SDEs, simulated
#
# From two start points $x_0 = -1.5$ and $1.0$, Euler-Maruyama paths of the VP and the VE SDE (thin lines), against the
# closed-form band $\alpha(t)\, x_0 \pm 2 \sigma(t)$. VP shrinks the signal while it adds noise (the band narrows onto
# $\mathcal{N}(0, 1)$); VE leaves the signal and lets the noise explode to $\sigma = 10$. At $t = 1$ the paths' spread
# matches $\sigma(1)$.

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
spread_gap = 0.0
for ax, (name, p) in zip(axes, (("VP", vp), ("VE", ve))):
    t0 = float(p.t_min)
    for k, x0 in enumerate((-1.5, 1.0)):
        a0, s0 = (float(v) for v in p.alpha_sigma(t0))
        start = a0 * x0 + s0 * rng.standard_normal((N_PATHS, 1))
        x1, ts, path = euler_maruyama_forward(p, start, t0, 1.0, EM_STEPS, rng=rng, return_path=True)
        a, s = p.alpha_sigma(ts)
        ax.plot(ts, path[:, :N_DRAWN, 0], color=f"C{k}", lw=0.5, alpha=0.6)
        ax.fill_between(ts, a * x0 - 2 * s, a * x0 + 2 * s, color=f"C{k}", alpha=0.15)
        spread_gap = max(spread_gap, abs(float(x1.std()) / float(s[-1]) - 1))
    ax.set_title(f"{name}: dx = f x dt + g dW (f, g^2 = {'-beta/2, beta' if name == 'VP' else '0, d sigma^2/dt'})",
                 fontsize=9)
    ax.set_xlabel("t")
    ax.set_yscale("linear" if name == "VP" else "symlog")
fig.tight_layout()
viz.save(fig, args.out / "forward_sdes.png")
claim(spread_gap < 0.02, "the Euler-Maruyama paths' spread at t = 1 matches sigma(1) within {g:.1%} (< 2%)",
      g=spread_gap, quick=False)

# %% [markdown]
# ## Reverse SDE against the probability-flow ODE
#
# The same 1D mixture (weights 0.3 / 0.7) sampled from the same start points with the reverse SDE (left, 200 steps)
# and the probability-flow ODE (right, Heun, 100 levels), in the VP process. ODE paths are smooth and never cross
# (a flow is a one-to-one map); SDE paths wander and may change mode late. Both end distributed as the data: the
# histograms on the right edge.

# %%
x_T = rng.standard_normal((400, 1))
exact1d = GaussianMixtureDenoiser(mix1d, vp, "epsilon")
with blas_threads(1):
    sde_x, sde_tr = sample(exact1d, x_T.shape, vp, method="sde", steps=200, x_T=x_T, rng=1, return_trajectory=True)
    ode_x, ode_tr = sample(exact1d, x_T.shape, vp, method="heun", steps=100, x_T=x_T, rng=1, return_trajectory=True,
                           timestep_spacing="karras")
fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), sharey=True)
for ax, tr, x, title in ((axes[0], sde_tr, sde_x, f"reverse SDE ({sde_tr.nfe} NFE)"),
                         (axes[1], ode_tr, ode_x, f"probability-flow ODE, Heun ({ode_tr.nfe} NFE)")):
    t_axis = np.where(tr.t < 0, 0.0, tr.t)                                  # -1 marks the clean data: draw at t = 0
    ax.plot(t_axis, tr.x[:, :N_DRAWN * 2, 0], lw=0.7)
    ax.invert_xaxis()
    ax.set_xlabel("t (sampling runs from t = 1 to t = 0)")
    ax.set_title(title, fontsize=9)
    hist, edges = np.histogram(x[:, 0], bins=40, range=(-2.5, 2))
    ax.barh(edges[:-1], -hist / hist.max() * 0.15, height=np.diff(edges), left=0.0, color="0.5", align="edge")
fig.tight_layout()
viz.save(fig, args.out / "reverse_paths.png")
left_sde, left_ode = float(np.mean(sde_x < -0.25)), float(np.mean(ode_x < -0.25))
claim(abs(left_sde - 0.3) < 0.07 and abs(left_ode - 0.3) < 0.07, "both put the data's 0.3 in the left mode "
      "(SDE {a:.2f}, ODE {b:.2f}, of 400 paths)", a=left_sde, b=left_ode, quick=False)

# %% [markdown]
# ## The probability-flow ODE as Song et al. write it is the library's ODE
#
# $dx/dt = f(t)\, x - \tfrac{1}{2} g(t)^2\, \nabla_x \log p_t(x)$, integrated with classical Runge-Kutta in $t$ over the
# VP process with the exact score ($f$ and $g$ from `VPProcess.sde`), from the same $x(t = 1)$ as
# `sample(method="heun")` on the $\rho = 7$ grid with the same end points. The two agree to the integration error, so
# the samplers of chapters 8-9 (DDIM = Euler, Heun, DPM-Solver++) are solving this ODE.

# %%
score_vp = GaussianMixtureDenoiser(mixture, vp, "score")


def pf_drift(x, t):
    """f(t) x - 1/2 g(t)^2 grad log p_t(x): the probability-flow ODE (Song et al. 2021, eq. 13)."""
    f, g2 = (float(v) for v in vp.sde(np.float64(t)))
    return f * x - 0.5 * g2 * score_vp(x, np.full(len(x), t))


x1 = rng.standard_normal((N_PF, 2)) * float(vp.scale(np.float64(1.0)))    # VP: scale 1
x = x1.copy()
ts = np.linspace(1.0, vp.t_min, PF_STEPS + 1)
with blas_threads(1):
    for t, t_next in zip(ts[:-1], ts[1:]):
        h = t_next - t
        k1 = pf_drift(x, t)
        k2 = pf_drift(x + h / 2 * k1, t + h / 2)
        k3 = pf_drift(x + h / 2 * k2, t + h / 2)
        k4 = pf_drift(x + h * k3, t_next)
        x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)                         # RK4
    heun = sample(GaussianMixtureDenoiser(mixture, vp, "epsilon"), x1.shape, vp, method="heun", steps=HEUN_STEPS,
                  timestep_spacing="karras", x_T=x1, final_step="none")
gap = float(np.max(np.linalg.norm(x - heun, axis=1)))
fig, ax = plt.subplots(figsize=(4, 4))
ax.plot(x1[:, 0], x1[:, 1], ".", color="0.7", ms=4, label="x(t = 1)")
ax.plot(x[:, 0], x[:, 1], "o", mfc="none", ms=7, label=f"RK4 on f x - g^2/2 score ({PF_STEPS} steps in t)")
ax.plot(heun[:, 0], heun[:, 1], "x", ms=5, label=f"sample(method='heun'), {HEUN_STEPS} levels")
ax.legend(fontsize=6)
viz.square_axes(ax, 3.2)
ax.set_title(f"same ends, max distance {gap:.1e}", fontsize=9)
viz.save(fig, args.out / "pf_ode_check.png")
claim(gap < 1e-3, "the probability-flow ODE in t (RK4) and the library's Heun end at the same points (max distance "
      "{g:.1e} < 1e-3)", g=gap, quick=False)

# %% [markdown]
# ## SDE or ODE: quality against NFE
#
# The 8 Gaussians (within-mode std 0.1) on the VE process ($\sigma$ from 10 to 0.01), exact score: the reverse SDE,
# predictor-corrector (2 NFE per level), Euler and Heun on the probability-flow ODE, each on its default grid
# (geometric levels; Heun on $\rho = 7$), at the same NFE. The measure is how far the within-mode std is from 0.1: the
# finest detail, where discretisation shows first. With an *exact* score the ODE solvers win at equal NFE: the SDE's
# Euler-Maruyama step is first order in the weak sense and its noise must itself be resolved. The SDE's advantage,
# correcting a network's errors by re-noising, needs an imperfect network (chapter 16's churn).

# %%
def within_mode_std(x):
    k = np.argmin(((x[:, None, :] - mixture.means[None]) ** 2).sum(-1), axis=1)
    return float(np.sqrt(np.mean((x - mixture.means[k]) ** 2)))


exact_ve = GaussianMixtureDenoiser(mixture, ve, "epsilon")
levels = {"sde": lambda n: n, "pc": lambda n: n // 2, "euler": lambda n: n, "heun": lambda n: (n + 1) // 2}
errors = {m: [] for m in levels}
nfes_used = {m: [] for m in levels}
with blas_threads(1):
    for nfe in NFES:
        for m, steps in levels.items():
            x, tr = sample(exact_ve, (N_QUALITY, 2), ve, method=m, steps=steps(nfe), rng=SEED + 2,
                           return_trajectory=True, timestep_spacing="karras" if m == "heun" else "trailing")
            errors[m].append(abs(within_mode_std(x) - 0.1))
            nfes_used[m].append(tr.nfe)
fig, ax = plt.subplots(figsize=(5, 3.4))
for m in levels:
    ax.loglog(nfes_used[m], np.maximum(errors[m], 1e-4), "o-", label=m)
ax.set_xlabel("NFE")
ax.set_ylabel("| within-mode std - 0.1 |")
ax.legend(fontsize=7)
viz.save(fig, args.out / "quality_vs_nfe.png")
i50 = NFES.index(50)
claim(errors["heun"][i50] < errors["sde"][i50], "at ~50 NFE Heun on the ODE is closer to the true width than the "
      "reverse SDE (|error| {a:.4f} vs {b:.4f})", a=errors["heun"][i50], b=errors["sde"][i50], quick=False)
if not args.quick:
    worst = max(e[-1] for e in errors.values())
    claim(worst < 0.005, "at 200 NFE every method is within {w:.4f} of the true width 0.1", w=worst)

# %% [markdown]
# ## What to take away
#
# - DDPM and NCSN discretise two SDEs, VP and VE, fixed by $(\alpha, \sigma)$ through $f$ and $g$.
# - Sampling runs the reverse SDE with the score; a Langevin corrector can polish each level (PC).
# - The probability-flow ODE has the same marginals with no noise; every deterministic sampler of this course solves it.

# %%
finish()
