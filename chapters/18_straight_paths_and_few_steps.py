# %% [markdown]
r"""
# Chapter 18 — Straight paths and few steps

Chapter 17's flow carries noise to data along curved paths, so an ODE solver needs many small steps. If every path
were a straight line travelled at constant speed, one Euler step $x_0 = x_1 - v(x_1, 1)$ would be exact. This chapter
makes paths straighter in two ways, and then trains a network to take big steps directly.

## Straightness

Liu et al. (2023, Def. 2.2) measure how far a flow is from taking straight constant-speed paths
(`tinydiff.flow.straightness`):

$$S = \int_0^1 \mathbb{E} \left\| (x_1 - x_0) - \frac{dx_t}{dt} \right\|^2 dt$$

$S = 0$ exactly when every path is a straight line at constant speed; a half circle has $S = \pi^2 - 4$ (per unit
radius).

## Couplings: which noise goes with which data point

Flow matching needs *some* pairing of noise $\epsilon$ and data $x_0$. Independent pairs (chapter 17) send a noise
sample to a far-away mode as often as to a near one; the conditional paths cross, and the marginal flow, which cannot
cross, bends. **Minibatch optimal transport** (Tong et al. 2023; Pooladian et al. 2023) re-pairs each training batch by
the assignment $\pi$ that minimises $\sum_i \| x_{0,i} - \epsilon_{\pi(i)} \|^2$ (`flow.ot_pairing`, the Hungarian
algorithm, in blocks of 256 points since it costs $O(B^3)$): short, rarely crossing pairs, straighter learned paths
(`train --objective flow --coupling ot`).

## Rectified flow: reflow

Liu et al. (2023) take the pairs a trained flow itself produces, $(z,\ x = \text{ODE}(z))$, and train a new flow on
them (`python -m tinydiff reflow`). The new flow has the same marginals at $t = 0$ and 1, but its conditional paths are
the straight lines between *deterministically coupled* pairs, which cross less; each round lowers the transport cost
and $S$.

## Distillation: learn the big step

Progressive distillation (Salimans & Ho 2022; `tinydiff.distill`) trains a student to do in one Euler step what its
teacher does in two, then repeats: $N \to N/2 \to \dots \to 1$ step. For a velocity model the student's target over a
step $2h$ is the teacher's average velocity, $(x_t - x_{t-2h}) / (2h)$. It needs no straight paths: it learns the curved
flow's big steps directly.

Figures: `fm_couplings.png`, `fm_straightness.png`, `fm_few_steps.png`, `fm_quality_vs_nfe.png`.
"""

# %%
import copy

import numpy as np

from tinydiff import viz
from tinydiff.analytic import GaussianMixture, GaussianMixtureDenoiser
from tinydiff.claims import claim, finish
from tinydiff.data.toy2d import gaussian_mixture_params, make_dataset
from tinydiff.distill import progressive_distillation
from tinydiff.flow import FlowNetwork, FlowTrainer, measure_straightness, ot_pairing
from tinydiff.metrics.points import mmd2, w2_squared
from tinydiff.processes import LinearInterpolant
from tinydiff.samplers import sample
from tinydiff.threads import blas_threads
from tinydiff.train import TrainConfig

args = viz.chapter_args(18, "Chapter 18: straight paths and few steps")

# ---- constants -------------------------------------------------------------------------------------------------
DATA = "8gaussians"                               # a Gaussian mixture: the exact 1-rectified flow is known
TRAIN_STEPS = 150 if args.quick else 2000         # optimiser steps of each flow network
BATCH = 128 if args.quick else 512                # points per training step (and per OT assignment)
PAIRS = 1000 if args.quick else 10_000            # reflow pairs
DISTILL_ITERS = 40 if args.quick else 600         # iterations per progressive-distillation round
N = 300 if args.quick else 1000                   # samples per metric
NFES = (1, 2, 4)                                  # the few-step regime
SEED = 0
# -----------------------------------------------------------------------------------------------------------------

rng = np.random.default_rng(SEED)
plt = viz.plt()
path = LinearInterpolant()
mixture = GaussianMixture.from_params(gaussian_mixture_params(DATA))

# %% [markdown]
r"""
## 1. Two couplings of one batch

The same 64 data points and 64 noise samples, paired independently and by minibatch OT.
"""

# %%
config = TrainConfig(data=DATA, objective="flow", steps=TRAIN_STEPS, batch_size=BATCH, seed=SEED)
ot_trainer = FlowTrainer(TrainConfig(**{**vars(config), "coupling": "ot"}))
st = ot_trainer.standardizer                              # every network below works in these standardised units
std_mix = GaussianMixture(mixture.weights, (mixture.means - st.mean) / st.std, mixture.covs / np.outer(st.std, st.std))
x0 = std_mix.sample(256, rng=rng)
eps = rng.standard_normal(x0.shape)
pi = ot_pairing(x0, eps)
cost_ind, cost_ot = np.mean(np.sum((x0 - eps) ** 2, 1)), np.mean(np.sum((x0 - eps[pi]) ** 2, 1))
fig, axes = plt.subplots(1, 2, figsize=(8, 4))
for ax, e, name in ((axes[0], eps, f"independent: mean |x0 - eps|^2 = {cost_ind:.2f}"),
                    (axes[1], eps[pi], f"minibatch OT: mean |x0 - eps|^2 = {cost_ot:.2f}")):
    for i in range(64):
        ax.plot([e[i, 0], x0[i, 0]], [e[i, 1], x0[i, 1]], lw=0.6, color="C0")
    ax.scatter(*x0[:64].T, s=6, c="k", zorder=3)
    ax.set_title(name, fontsize=9)
    viz.square_axes(ax, 3)
viz.save(fig, args.out / "fm_couplings.png")
claim(cost_ot < 0.5 * cost_ind, "OT pairs a batch of 256 at mean squared distance {ot:.2f}, under half the "
      "independent pairs' {ind:.2f}", ot=cost_ot, ind=cost_ind)

# %% [markdown]
r"""
## 2. Straightness: the exact flow, an OT-trained flow, and a reflowed one

The *exact* marginal flow of independent pairs is what a perfect chapter-17 model would learn: it is the 1-rectified
flow, and we have it in closed form for the mixture. We train a flow with OT pairs, and reflow the exact flow: draw
pairs $(z, \text{ODE}(z))$ from it and train a network on them. $S$ is measured on Euler trajectories of 100 steps.
"""

# %%
exact = GaussianMixtureDenoiser(std_mix, path, "velocity")
with blas_threads(1):
    ot_trainer.train(progress=False)
    z_pairs = rng.standard_normal((PAIRS, 2))
    x_pairs = sample(exact, z_pairs.shape, path, method="heun-t", steps=50, x_T=z_pairs, prediction_type="velocity")
    reflow_trainer = FlowTrainer(config, pairs=(x_pairs, z_pairs))
    reflow_trainer.train(progress=False)


class Exact2D:
    """The exact field as a flow model for measure_straightness (it needs the point dimension)."""
    dim = 2

    def __call__(self, x, t, y=None):
        return exact(x, t)


models = {"exact 1-rectified": Exact2D()}
with ot_trainer.ema.average_weights(), reflow_trainer.ema.average_weights():
    models["minibatch OT"] = FlowNetwork(copy.deepcopy(ot_trainer.model))
    models["2-rectified (reflow)"] = FlowNetwork(copy.deepcopy(reflow_trainer.model))
S = {name: measure_straightness(m, path, n=N, seed=SEED + 1) for name, m in models.items()}
fig, axes = plt.subplots(1, 3, figsize=(12, 4))
z_show = rng.standard_normal((40, 2))
for ax, (name, m) in zip(axes, models.items()):
    _, traj = sample(m, z_show.shape, path, method="euler-t", steps=50, x_T=z_show, prediction_type="velocity",
                     return_trajectory=True)
    for i in range(len(z_show)):
        ax.plot(traj.x[:, i, 0], traj.x[:, i, 1], lw=0.6)
    ax.set_title(f"{name}: S = {S[name]:.3f}", fontsize=9)
    viz.square_axes(ax, 3)
viz.save(fig, args.out / "fm_straightness.png")
for name, s in S.items():
    print(f"straightness S of {name}: {s:.4f}")
claim(S["minibatch OT"] < S["exact 1-rectified"], "minibatch OT paths are straighter than the exact independent-pair "
      "flow: S = {ot:.3f} < {ex:.3f}", ot=S["minibatch OT"], ex=S["exact 1-rectified"], quick=False)
claim(S["2-rectified (reflow)"] < 0.5 * S["exact 1-rectified"], "one reflow more than halves S: {rf:.3f} against "
      "{ex:.3f}", rf=S["2-rectified (reflow)"], ex=S["exact 1-rectified"], quick=False)

# %% [markdown]
r"""
## 3. Distillation: 16 teacher steps down to 1

Reflow straightened the paths by retraining on new pairs. Distillation keeps the curved flow and learns its big steps
instead. The teacher is the exact 1-rectified flow with 16 Euler steps; four rounds of progressive distillation give
students that take 8, 4, 2 and 1 steps (each starts from the previous one; the first from the reflowed network's
weights, a network that already knows the data).
"""

# %%
data_std = st.transform(make_dataset(DATA, 20_000, rng=SEED + 2))
with blas_threads(1):
    students = progressive_distillation(exact, copy.deepcopy(models["2-rectified (reflow)"].network), data_std,
                                        teacher_steps=16, iters=DISTILL_ITERS, batch=256, lr=1e-3, rng=SEED + 3)

# %% [markdown]
r"""
## 4. Quality against the number of steps

$\text{MMD}^2$ and exact $W_2^2$ against held-out data (data units, $N$ points each), with the floor of two held-out
samples. Every model is sampled with Euler in $t$ from the same noise.
"""

# %%
held, held2 = make_dataset(DATA, N, rng=10_001), make_dataset(DATA, N, rng=10_002)
floor = (mmd2(held2, held), w2_squared(held2, held))
z = rng.standard_normal((N, 2))
rows = {name: m for name, m in models.items()}
rows["distilled student"] = None
table, shown = {}, {}
with blas_threads(1):
    for name, m in rows.items():
        for k in NFES:
            net = students[k] if m is None else m
            x = st.inverse_transform(sample(net, z.shape, path, method="euler-t", steps=k, x_T=z,
                                            prediction_type="velocity"))
            table[name, k] = (mmd2(x, held), w2_squared(x, held))
            shown[name, k] = x
print(f"{'model':24s} " + " ".join(f"NFE {k}: MMD^2 / W2^2".rjust(24) for k in NFES))
for name in rows:
    print(f"{name:24s} " + " ".join(f"{table[name, k][0]:11.2e} / {table[name, k][1]:8.3f}" for k in NFES))
print(f"{'floor (held-out)':24s} " + " ".join(f"{floor[0]:11.2e} / {floor[1]:8.3f}" for _ in NFES))

fig, axes = plt.subplots(len(rows), len(NFES), figsize=(3 * len(NFES), 3 * len(rows)))
for i, name in enumerate(rows):
    for j, k in enumerate(NFES):
        ax = axes[i, j]
        ax.scatter(*shown[name, k].T, s=1)
        ax.set_title(f"{name}, {k} step{'s' if k > 1 else ''}", fontsize=8)
        viz.square_axes(ax, 3.5)
viz.save(fig, args.out / "fm_few_steps.png")
fig, ax = plt.subplots(figsize=(5, 3.6))
for name in rows:
    ax.semilogy(NFES, [table[name, k][1] for k in NFES], "o-", label=name)
ax.axhline(floor[1], color="k", ls=":", label="floor (held-out vs held-out)")
ax.set_xticks(NFES)
ax.set_xlabel("model calls (Euler steps)")
ax.set_ylabel("W2^2 to held-out data")
ax.legend(fontsize=7)
viz.save(fig, args.out / "fm_quality_vs_nfe.png")

w1 = {name: table[name, 1][1] for name in rows}
claim(w1["2-rectified (reflow)"] < 0.5 * w1["exact 1-rectified"], "at one step the reflowed flow's W2^2 = {rf:.3f} "
      "is under half the exact 1-rectified flow's {ex:.3f}", rf=w1["2-rectified (reflow)"],
      ex=w1["exact 1-rectified"], quick=False)
claim(w1["distilled student"] < 0.1 * w1["exact 1-rectified"], "distillation makes the curved flow a one-step "
      "sampler: the student's W2^2 = {st:.3f} against its teacher's {ex:.3f} at one step", st=w1["distilled student"],
      ex=w1["exact 1-rectified"], quick=False)
claim(max(w1["minibatch OT"], w1["2-rectified (reflow)"]) < 1.5 * floor[1], "the straight flows need no "
      "distillation here: at one step OT's W2^2 = {ot:.3f} and the reflowed flow's {rf:.3f} are within 1.5x of the "
      "floor {fl:.3f}", ot=w1["minibatch OT"], rf=w1["2-rectified (reflow)"], fl=floor[1], quick=False)

finish()
