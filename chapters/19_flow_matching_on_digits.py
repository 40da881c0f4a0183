# %% [markdown]
r"""
# Chapter 19 — Flow matching on digits

Chapter 17 trained an MLP with flow matching on 2D points and showed that, on a Gaussian path, a velocity model and a
diffusion model are one object seen two ways. Here the same objective trains the class-conditional U-Net of chapters
11-12 on MNIST, with nothing else changed: the same network, data, label dropout, optimiser and number of steps
(`python -m tinydiff train --data mnist --conditional --objective flow --out DIR`). We ask what the new objective buys
at equal cost, and why the two models should behave so much alike.

## The objective on images

A digit $x_0$ (scaled to $[-1, 1]$), noise $\epsilon \sim \mathcal{N}(0, I)$, $t \sim \mathcal{U}[0, 1]$, and the
straight path of chapter 17 (`tinydiff.processes.LinearInterpolant`):

$$x_t = (1 - t)\, x_0 + t\, \epsilon, \qquad u = \frac{d x_t}{dt} = \epsilon - x_0$$

The U-Net $v_\theta(x_t, 1000\, t, y')$ regresses the velocity, with the label replaced by the null label
$\varnothing$ with probability $p = 0.1$ (chapter 12):

$$\mathcal{L}_{\text{FM}}(\theta) = \mathbb{E}_{t,\, x_0,\, \epsilon,\, y'}
\left\| v_\theta(x_t, t, y') - (\epsilon - x_0) \right\|^2, \qquad
y' = \varnothing \text{ with probability } p, \text{ else } y$$

Sampling integrates $dx/dt = v$ from $t = 1$ (pure noise) to $t = 0$: Euler, midpoint or Heun in $t$ (`euler-t`,
`midpoint-t`, `heun-t`; chapter 17).

## Classifier-free guidance for a velocity

The guided velocity extrapolates from the unconditional field past the conditional one, exactly as chapter 12 did
for $\epsilon$ (Ho & Salimans 2022):

$$\tilde v(x, t, y) = v(x, t, \varnothing) + s\, \big(v(x, t, y) - v(x, t, \varnothing)\big)$$

It means the same thing as guiding $\epsilon$. At a fixed $(x_t, t)$ the velocity is an affine function of the
$\epsilon$ prediction with coefficients that do not depend on the label: from $x_t = (1 - t)\, x_0 + t\, \epsilon$,

$$v = \epsilon - x_0 = \frac{\epsilon - x_t}{1 - t}$$

so the guided velocity is the velocity of the guided $\epsilon$, and (since the score is $-\epsilon / t$) of the guided
score (`tests/test_chapter17_19_equations.py`). The cost is the same too: one network call on the conditional and
unconditional copies together per evaluation.

## Why the two models are one family

Both models learn the same Gaussian path (Kingma & Gao 2023; Gao et al. 2024, "Diffusion meets flow matching").
Step $t$ of the diffusion model's VP schedule is $x_t = a x_0 + s \epsilon$ with $a = \sqrt{\bar\alpha_t}$,
$s = \sqrt{1 - \bar\alpha_t}$. Divide by $a + s$:

$$\frac{x_t}{a + s} = (1 - u)\, x_0 + u\, \epsilon, \qquad u = \frac{s}{a + s}, \qquad
\lambda = \log \frac{a^2}{s^2} = 2 \log \frac{1 - u}{u}$$

the linear interpolant at the same log-SNR $\lambda$. Both networks therefore estimate the same thing,
$\mathbb{E}[x_0 \mid x_t, y]$, at every noise level, and the exact ODEs of both are one probability-flow ODE: from the
same start noise they map to the same digit (a DDIM step is an Euler step in $u$, chapter 17). What differs is only

1. **where the loss puts its weight.** At a fixed $x_t$, $\hat v - v = (\hat\epsilon - \epsilon) / (1 - t)$, so

   $$\| \hat v - v \|^2 = \frac{\| \hat\epsilon - \epsilon \|^2}{(1 - t)^2} =
   w(\lambda) \left(-\frac{d\lambda}{dt}\right) \| \hat\epsilon - \epsilon \|^2, \qquad
   w(\lambda) = e^{-\lambda / 2} / 2$$

   flow matching is an $\epsilon$ loss with Kingma & Gao's weighting $w(\lambda) = e^{-\lambda/2} / 2$ over log-SNR,
   where DDPM's simple loss weights each of its 1000 steps equally (figure `weighting.png`);
2. **the sampler's grid**: uniform in $t$ for the flow, the VP schedule's steps for DDIM;
3. **the ends**: the flow starts at $t = 1$ ($\lambda = -\infty$), the VP chain at step 999 ($\lambda = -10.1$,
   $u = 0.994$).

Figures: `flow_guidance.png`, `same_noise.png`, `denoise_vs_logsnr.png`, `weighting.png`, `nfe_side_by_side.png`,
`nfe_digits.png`.

Files: `data/checkpoints/mnist_conditional.npz` (diffusion, chapters 11-13) and `data/checkpoints/mnist_flow.npz`
(flow matching; README, "Flow matching"; another file: set `TINYDIFF_FLOW_CHECKPOINT`). Data: `TINYDIFF_DATA`
(docs/mnist.md).
"""

# %%
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")   # before NumPy loads: small matrix products run best on one thread
import time
from pathlib import Path

import numpy as np

from tinydiff import claims, viz
from tinydiff.bench.nfe_mnist import BAR_ACCURACY, BAR_FD_RATIO, compare_at_equal_nfe, steps_for_nfe
from tinydiff.data.mnist import load_mnist_float, require_mnist
from tinydiff.metrics.judge import DigitJudge
from tinydiff.processes import LinearInterpolant
from tinydiff.threads import blas_threads
from tinydiff.trained import load_trained

args = viz.chapter_args(19, "Chapter 19: flow matching on digits")
require_mnist("chapter 19")                      # downloads MNIST if missing, else one line and exit 1

# ---- constants -------------------------------------------------------------------------------------------------
CHECKPOINTS = Path(__file__).resolve().parents[1] / "data" / "checkpoints"
DIFFUSION_PATH = CHECKPOINTS / "mnist_conditional.npz"            # eps-prediction U-Net, linear VP schedule
FLOW_PATH = Path(os.environ.get("TINYDIFF_FLOW_CHECKPOINT", CHECKPOINTS / "mnist_flow.npz"))   # the same U-Net, flow
GUIDANCE = 2.0                                       # classifier-free guidance scale (the image default)
SCALES = (0.0, 1.0, 2.0, 4.0)                        # the guidance sweep of the flow model
PER_CLASS = 2 if args.quick else 10                  # sweep samples per class (accuracy over 10 PER_CLASS)
SAME_NOISE_NFE = 8 if args.quick else 32             # NFE of the same-noise comparison (Euler in t vs DDIM)
N_SAME = 20 if args.quick else 100                   # start noises of the same-noise comparison (labels 0..9 in turn)
LAMBDAS = (-6.0, -3.0, 0.0, 3.0, 6.0)                # log-SNRs of the denoising comparison
N_DENOISE = 20 if args.quick else 200                # test digits noised at each of them
NFES = (2, 8) if args.quick else (1, 2, 4, 8, 16, 32)   # the side-by-side at equal NFE
N_TABLE = 20 if args.quick else 200                  # samples per (model, NFE) cell
# samplers of the side-by-side, per model: the first that spends exactly the NFE (the README's table picks them by
# a pilot; these are its winners from NFE 4 on)
SAMPLERS = {"diffusion": ["dpm++2m"], "flow": ["midpoint", "euler"]}
SEED = 0
# -----------------------------------------------------------------------------------------------------------------

for path in (DIFFUSION_PATH, FLOW_PATH):
    if not path.exists():
        raise SystemExit(f"chapter 19 needs {path}, which is missing: the flow model is made by `python -m tinydiff "
                         "train --data mnist --conditional --objective flow --out DIR` (README, Flow matching); "
                         "copy DIR/model.npz there or set TINYDIFF_FLOW_CHECKPOINT=DIR/model.npz")
start = time.perf_counter()
plt = viz.plt()
rng = np.random.default_rng(SEED)
diffusion, flow = load_trained(DIFFUSION_PATH), load_trained(FLOW_PATH)   # EMA weights, process, scaling, labels
models = {"diffusion": diffusion, "flow": flow}
for name, m in models.items():
    print(f"{name}: {m}\n  made by: {m.command or 'the README command (this file predates stored commands)'}")
judge = DigitJudge(seed=SEED)                       # the classifier of chapter 13, the test set, floors
x_test, y_test = load_mnist_float(split="test")
if args.quick:
    print(f"QUICK MODE: {PER_CLASS} samples per class and scale, {N_SAME} same-noise pairs, {N_TABLE} per NFE cell")

# %% [markdown]
r"""
## 1. Guidance for a velocity model

PER_CLASS start noises per class, drawn once, through Euler in $t$ with 10 steps at scales $s = 0, 1, 2, 4$ (one row
per class in each panel). $s = 0$ is the unconditional field (the labels are ignored), $s = 1$ the conditional one,
$s > 1$ the extrapolation. The judge's accuracy on the requested label is printed for each.
"""

# %%
labels = np.repeat(np.arange(10), PER_CLASS)                                   # (10 PER_CLASS,)
x_T = rng.standard_normal((len(labels), *flow.data_shape))                     # (N, 1, 28, 28)
sweep, accuracy = {}, {}
for s in SCALES:
    sweep[s] = flow.sample(len(labels), label=labels, sampler="euler", steps=10, guidance=s, x_T=x_T)
    accuracy[s] = judge(sweep[s], labels)["accuracy"]
    print(f"s = {s:g}: accuracy {100 * accuracy[s]:.1f} % over {len(labels)} digits")
show = (np.arange(len(labels)) % PER_CLASS) < 2
viz.save(viz.image_grids([(f"s = {s:g}", sweep[s][show]) for s in SCALES], ncol=2, size=0.5),
         args.out / "flow_guidance.png")
claims.claim(accuracy[0.0] < 0.5 < accuracy[1.0] <= accuracy[2.0],
             "the label steers the flow as it steered the diffusion model: accuracy {a0:.0%} at s = 0 (labels "
             "ignored), {a1:.0%} at s = 1, {a2:.0%} at s = 2", a0=accuracy[0.0], a1=accuracy[1.0], a2=accuracy[2.0],
             quick=False)

# %% [markdown]
r"""
## 2. The same noise through both models

Each model gets the same start noise $z$ and the same label and runs its deterministic sampler with the same number
of evaluations: DDIM for the diffusion model ($\eta = 0$, from step 999), Euler in $t$ for the flow (from $t = 1$). If
the two networks have learned the same path, they integrate (nearly) the same ODE, and $z$ should become nearly the
same digit in both. The yardstick: the distance between a diffusion sample and the flow sample of *another* noise
with the same label. `same_noise.png`: top the diffusion model's digits, below the flow model's, column by column from
one $z$.
"""

# %%
labels = np.arange(N_SAME) % 10
z = rng.standard_normal((N_SAME, *flow.data_shape))
with blas_threads(1):
    same = {"diffusion": diffusion.sample(N_SAME, label=labels, sampler="ddim", steps=SAME_NOISE_NFE,
                                          guidance=GUIDANCE, x_T=z),
            "flow": flow.sample(N_SAME, label=labels, sampler="euler", steps=SAME_NOISE_NFE, guidance=GUIDANCE,
                                x_T=z)}
d_paired = np.sqrt(np.mean((same["diffusion"] - same["flow"]) ** 2, axis=(1, 2, 3)))          # (N,) rms per pixel
other = (np.arange(N_SAME) + 10) % N_SAME               # the flow sample of another noise with the same label
d_other = np.sqrt(np.mean((same["diffusion"] - same["flow"][other]) ** 2, axis=(1, 2, 3)))
print(f"rms pixel distance, diffusion vs flow: same noise {np.median(d_paired):.3f} (median), other noise of the "
      f"same label {np.median(d_other):.3f}")
k = min(N_SAME, 10)
viz.save(viz.image_rows([(f"diffusion\nDDIM x {SAME_NOISE_NFE}", same["diffusion"][:k]),
                         (f"flow\nEuler x {SAME_NOISE_NFE}", same["flow"][:k])], size=0.7),
         args.out / "same_noise.png")
claims.claim(np.median(d_paired) < 0.5 * np.median(d_other),
             "from the same noise the two models draw nearly the same digit: median rms distance {p:.3f}, "
             "under half the {o:.3f} between the same label's digits from other noise",
             p=float(np.median(d_paired)), o=float(np.median(d_other)), quick=False)

# %% [markdown]
r"""
## 3. One denoising task at every noise level

Noise N_DENOISE test digits to log-SNR $\lambda$ on both paths, with the same $\epsilon$: the VP step $t$ whose
$\lambda$ is closest, $x = a x_0 + s \epsilon$, and the interpolant at the same $\lambda$, $u = s / (a + s)$,
$x_u = x / (a + s)$. Ask both networks (with the true label) for the clean digit: $\hat x_0 = (x - s \hat\epsilon) / a$
for the diffusion model, $\hat x_0 = x_u - u \hat v$ for the flow. Both estimate $\mathbb{E}[x_0 \mid x, y]$, so both
should miss the true digit by about the same amount where the noise has destroyed most of it ($\lambda < 0$), and miss
it in the same way: there their two estimates should lie closer to each other than either is to the truth. Towards
the clean end ($\lambda \ge 0$) less is destroyed, both errors are small, and what is left is more and more each
network's own error, which the two do not share (`denoise_vs_logsnr.png`, standardised units).
"""

# %%
schedule = diffusion.schedule
lam_vp = np.log(schedule.alphas_cumprod / (1 - schedule.alphas_cumprod))          # (T,) decreasing in t
pick = rng.choice(len(x_test), N_DENOISE, replace=False)
x0, y0 = diffusion.standardizer.transform(x_test[pick]), y_test[pick].astype(np.int64)
eps = rng.standard_normal(x0.shape)
err_d, err_f, between, lam_used = [], [], [], []
for lam in LAMBDAS:
    t = int(np.argmin(np.abs(lam_vp - lam)))
    a, s = np.sqrt(schedule.alphas_cumprod[t]), np.sqrt(1 - schedule.alphas_cumprod[t])
    u = s / (a + s)
    x = a * x0 + s * eps
    with blas_threads(1):
        x0_d = diffusion.denoise(x, np.full(len(x), t), y0)
        x0_f = x / (a + s) - u * flow.network(x / (a + s), np.full(len(x), u), y0)
    err_d.append(float(np.mean((x0_d - x0) ** 2)))
    err_f.append(float(np.mean((x0_f - x0) ** 2)))
    between.append(float(np.mean((x0_d - x0_f) ** 2)))
    lam_used.append(float(lam_vp[t]))
    print(f"lambda {lam_vp[t]:+.2f} (VP step {t}, u = {u:.3f}): MSE to the digit: diffusion {err_d[-1]:.4f}, flow "
          f"{err_f[-1]:.4f}; between the two estimates {between[-1]:.4f}")
fig, ax = plt.subplots(figsize=(5.5, 3.5))
ax.plot(lam_used, err_d, "o-", label="diffusion: |x0_hat - x0|^2")
ax.plot(lam_used, err_f, "s-", label="flow: |x0_hat - x0|^2")
ax.plot(lam_used, between, "^:", color="k", label="between the two estimates")
ax.set_yscale("log")
ax.set_xlabel("log-SNR lambda")
ax.set_ylabel("mean squared error per pixel")
ax.legend(fontsize=8)
viz.save(fig, args.out / "denoise_vs_logsnr.png")
noisy_end = [(lam, b / min(d, f)) for lam, b, d, f in zip(lam_used, between, err_d, err_f) if lam < 0]
claims.claim(all(r < 1 for _, r in noisy_end), "at every log-SNR < 0 the two networks' clean-digit estimates are "
             "closer to each other than either is to the true digit (between / nearer error: {ratios})",
             ratios=", ".join(f"{r:.2f} at {lam:+.0f}" for lam, r in noisy_end), quick=False)

# %% [markdown]
r"""
## 4. Where each loss puts its weight

Kingma & Gao (2023) write every such objective as one $\epsilon$ loss weighted over log-SNR:

$$\mathcal{L} = \mathbb{E}_t\Big[w(\lambda_t) \left(-\frac{d\lambda}{dt}\right) \| \hat\epsilon - \epsilon \|^2\Big]$$

Per unit of $\lambda$ the weight is $w(\lambda)$ times the density with which training visits $\lambda$. DDPM's simple
loss with $t$ uniform over the 1000 steps of the linear schedule: weight 1 per step, so the density of $\lambda$ over
the steps; flow matching with $t \sim \mathcal{U}[0, 1]$: $(1 - t)^{-2}$ per unit $t$, which is
$w(\lambda) = e^{-\lambda/2} / 2$ per unit $\lambda$. Both are drawn normalised over the VP schedule's range of
$\lambda$ (`weighting.png`): the flow loss leans much harder on the noisy end ($\lambda < 0$), where the digit's shape
is decided.
"""

# %%
lam_grid = np.linspace(lam_vp.min(), lam_vp.max(), 400)
density_ddpm, edges = np.histogram(lam_vp, bins=40, density=True)                # steps per unit lambda
w_flow = 0.5 * np.exp(-lam_grid / 2)
dlam_grid = lam_grid[1] - lam_grid[0]
w_flow /= w_flow.sum() * dlam_grid                                               # a density over the VP range
t_check = np.array([0.2, 0.5, 0.8])
h = 1e-6
lin = LinearInterpolant()
dlam = (lin.log_snr(t_check + h) - lin.log_snr(t_check - h)) / (2 * h)
identity = np.max(np.abs(0.5 * np.exp(-lin.log_snr(t_check) / 2) * -dlam * (1 - t_check) ** 2 - 1))
claims.claim(identity < 1e-6, "w(lambda) (-d lambda/dt) = 1 / (1 - t)^2 on the linear interpolant (largest "
             "deviation {d:.1e})", d=identity)
fig, ax = plt.subplots(figsize=(5.5, 3.3))
ax.stairs(density_ddpm, edges, label="DDPM simple loss (uniform steps, linear schedule)")
ax.plot(lam_grid, w_flow, color="C1", label="flow matching: w = exp(-lambda/2) / 2")
ax.set_yscale("log")
ax.set_xlabel("log-SNR lambda (noisy <- -> clean)")
ax.set_ylabel("weight per unit lambda (normalised)")
ax.legend(fontsize=7)
viz.save(fig, args.out / "weighting.png")
noisy = float(w_flow[lam_grid < 0].sum() * dlam_grid)
noisy_ddpm = float(np.mean(lam_vp < 0))
print(f"share of the weight at lambda < 0: flow {noisy:.2f}, DDPM {noisy_ddpm:.2f}")
claims.claim(noisy > noisy_ddpm, "flow matching puts {f:.0%} of its weight at lambda < 0, DDPM's simple loss {d:.0%}",
             f=noisy, d=noisy_ddpm)

# %% [markdown]
r"""
## 5. The side-by-side at equal NFE

Each model at NFE = 1, 2, 4, 8, 16, 32 evaluations of the guided model ($s = 2$; each evaluation is one network call
on the conditional and unconditional halves), N_TABLE digits per cell for labels 0-9 in turn, judged by the classifier
as `evaluate` judges them: accuracy, and FD against its floor at the same $n$. The README's table (`python -m tinydiff
evaluate ... --nfe 1,2,4,8,16,32 --n 500`) picks each cell's sampler by a pilot; here the samplers are fixed to its
winners: DPM-Solver++(2M) for the diffusion model from NFE 4 (at 1 and 2 it is DDIM, the same update), midpoint in $t$
for the flow from NFE 4 (Euler in $t$ at NFE 1; at NFE 2 the pilot preferred Euler by a hair).
`nfe_side_by_side.png`: accuracy and FD / floor against NFE; `nfe_digits.png`: the same ten noises at each NFE.
"""

# %%
t0 = time.perf_counter()
with blas_threads(1):
    cells = compare_at_equal_nfe(models, judge, NFES, N_TABLE, GUIDANCE, SAMPLERS, pilot_n=0, seed=SEED)
floor = judge.floor(N_TABLE)
print(f"the side-by-side took {time.perf_counter() - t0:.0f} s; floor at n = {N_TABLE}: FD {floor['fd']:.2f}")
by = {(c.model, c.nfe): c for c in cells}
fig, axes = plt.subplots(1, 2, figsize=(9, 3.3))
for name, marker in (("diffusion", "o-"), ("flow", "s-")):
    got = [by[name, k] for k in NFES]
    axes[0].plot(NFES, [100 * c.accuracy for c in got], marker, label=f"{name} ({got[-1].sampler})")
    axes[1].plot(NFES, [c.fd / floor["fd"] for c in got], marker, label=name)
axes[0].axhline(100 * BAR_ACCURACY, color="k", ls=":", lw=0.8)
axes[1].axhline(BAR_FD_RATIO, color="k", ls=":", lw=0.8)
axes[0].set_ylabel("accuracy (%)")
axes[1].set_ylabel("FD / floor")
axes[1].set_yscale("log")
for ax in axes:
    ax.set_xscale("log", base=2)
    ax.set_xlabel("NFE (guided evaluations)")
    ax.legend(fontsize=8)
fig.suptitle(f"equal cost: n = {N_TABLE} per point, guidance {GUIDANCE:g}; dotted: the MNIST bar", fontsize=9)
fig.tight_layout()
viz.save(fig, args.out / "nfe_side_by_side.png")
rows, z10 = [], rng.standard_normal((10, *flow.data_shape))
for k in NFES:
    for name, m in models.items():
        c = by[name, k]
        rows.append((f"{name}\n{c.sampler} x {c.steps}", m.sample(10, label=np.arange(10), sampler=c.sampler,
                                                                   steps=c.steps, guidance=GUIDANCE, x_T=z10)))
viz.save(viz.image_rows(rows, size=0.6), args.out / "nfe_digits.png")
print("| NFE | " + " | ".join(f"{name}: sampler, accuracy, FD / floor" for name in models) + " |")
for k in NFES:
    print(f"| {k} | " + " | ".join(f"{by[n, k].sampler} x {by[n, k].steps}, {100 * by[n, k].accuracy:.1f} %, "
                                   f"{by[n, k].fd / floor['fd']:.1f}x" for n in models) + " |")


def first_meeting_bar(name):
    """The smallest NFE at which the model meets the bar (None if none does)."""
    return next((k for k in NFES if by[name, k].meets_bar(floor["fd"])), None)


k_flow, k_diff = first_meeting_bar("flow"), first_meeting_bar("diffusion")
claims.claim(k_flow is not None and k_flow <= 16,
             "the flow model meets the MNIST bar (accuracy >= 97 %, FD <= 10x floor at n = {n}) with {k} evaluations "
             "(<= 16; FD / floor shrinks as n falls, the README's table at n = 500 says 2)", k=k_flow, n=N_TABLE,
             quick=False)
claims.claim(by["flow", NFES[0]].fd < by["diffusion", NFES[0]].fd,
             "at the fewest evaluations ({k}) the flow's digits are closer to the data: FD {f:.1f} against {d:.1f}",
             k=NFES[0], f=by["flow", NFES[0]].fd, d=by["diffusion", NFES[0]].fd, quick=False)
print(f"chapter 19 took {time.perf_counter() - start:.0f} s")
claims.finish()
