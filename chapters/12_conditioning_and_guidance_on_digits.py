# %% [markdown]
r"""
# Chapter 12 — Conditioning and guidance on digits

Chapter 10 derived classifier-free guidance on 2D mixtures, where the exact conditional denoiser was known. Here we
use it where it is used in practice: on images, with a trained network and no ground truth, only a judge (the MNIST
classifier of `tinydiff.models.classifier`) to say whether a sample looks like the digit we asked for. The model is
the shipped class-conditional UNet of chapter 11 (`data/checkpoints/mnist_conditional.npz`).

## How the label enters

The UNet adds a learned vector for the label to the time embedding (`tinydiff/models/unet.py`):

$$e(t, y) = \mathrm{Linear}\big(\mathrm{SiLU}(\mathrm{Linear}(\mathrm{emb}(t)))\big) + E[y], \qquad
E \in \mathbb{R}^{(K + 1) \times d_{\text{emb}}}, \qquad y \in \{0, \dots, K\}$$

where $\mathrm{emb}(t)$ is the sinusoidal embedding of $t$. With $K = 10$ digits, row $K$ (`model.null_label`) is the
null label, "no condition". From there the label reaches the pixels the same way $t$ does: every ResBlock turns $e$
into its per-channel scale and shift (AdaGN, chapter 11). So a label does not paint anything; it changes how every
block treats the features it sees.

## One network, two models: label dropout

During training (`Trainer.step`) each label is replaced by the null label with probability $p$ = `label_dropout`
(0.1 for the shipped model):

$$y' = \begin{cases} K & \text{with probability } p \\ y & \text{otherwise} \end{cases}$$

so the same weights learn $\epsilon_\theta(x_t, t, y)$, the conditional model, and $\epsilon_\theta(x_t, t, K)$, the
unconditional one (from 10% of the examples, so it is the weaker of the two: its noise predictions are further from
the true noise, as the run measures below).

## Classifier-free guidance

At sampling time each step evaluates both and extrapolates from the unconditional prediction past the conditional
one (Ho & Salimans 2022; chapter 10 derives it from Bayes' rule and compares the $s$ and $w$ conventions,
$w = s - 1$):

$$\tilde\epsilon = \epsilon_\theta(x_t, t, K) + s\, \big(\epsilon_\theta(x_t, t, y) - \epsilon_\theta(x_t, t, K)\big)$$

$s = 0$ ignores the label, $s = 1$ is the conditional model, $s > 1$ adds $s - 1$ times the gradient of an implicit
classifier $\log p(y \mid x_t)$ to the score. `samplers.sample(..., y=y, guidance_scale=s)` runs both halves in one
batched call of $2B$ images, so guidance doubles the cost of a step.

## Measuring fidelity and diversity

Fidelity: the judge's accuracy on the requested label. Diversity: how different the samples of one class are from
each other, measured in the judge's 128 features $f$ (the same features as the Frechet distance). The mean squared
distance between two different samples of class $c$ has a closed form in the sample covariance $S_c$ (with
$1/(n - 1)$):

$$D_c = \frac{1}{n (n - 1)} \sum_{i \ne j} \|f_i - f_j\|^2 = 2 \operatorname{tr}(S_c)$$

and we report $\sqrt{D_c}$ averaged over the classes, beside the same number for real test digits. Guidance should
buy accuracy with diversity: as $s$ grows, samples of a class become more alike.

Figures: `label_embeddings.png`, `x0_given_label.png`, `label_effect_vs_t.png`, `guidance_sweep_digits.png`,
`guidance_accuracy_diversity.png`.
"""

# %%
import inspect
import time
from pathlib import Path

import numpy as np

from tinydiff import claims, viz
from tinydiff.data.mnist import load_mnist_float, require_mnist
from tinydiff.diffusion import q_sample
from tinydiff.metrics.images import class_accuracy, frechet_distance, gaussian_stats
from tinydiff.models.classifier import load_classifier
from tinydiff.models.unet import UNet
from tinydiff.threads import blas_threads
from tinydiff.train import Trainer, make_model
from tinydiff.trained import load_trained

args = viz.chapter_args(12, "Chapter 12: conditioning and guidance on digits")
require_mnist("chapter 12")                      # downloads MNIST if missing, else one line and exit 1

# ---- constants -------------------------------------------------------------------------------------------------
CHECKPOINT = Path(__file__).resolve().parents[1] / "data" / "checkpoints" / "mnist_conditional.npz"
SWEEP = (0.0, 1.0, 3.0, 5.0)                       # guidance scales s of the sample figure (w = s - 1)
SCALES = SWEEP if args.quick else (0.0, 1.0, 2.0, 3.0, 5.0, 7.0)   # scales of the fidelity/diversity curves
PER_CLASS = 2 if args.quick else 10                # samples per class at each scale (same start noise at every s)
SHOW_PER_CLASS = 2 if args.quick else 4            # of which the sample figure shows this many
DDIM_STEPS = 8 if args.quick else 25               # DDIM steps (eta = 0: deterministic, so x_T fixes the sample)
LABEL_TS = (300, 500, 700)                         # steps of the "x0 given the label" figure
EFFECT_TS = np.linspace(0, 999, 6 if args.quick else 21).astype(int)   # steps of the label-effect curve
N_EFFECT = 20 if args.quick else 50                # test digits per step of the label-effect curve
N_REAL = 50 if args.quick else 200                 # real test digits per class for the diversity reference
SEED = 0
# -----------------------------------------------------------------------------------------------------------------

rng = np.random.default_rng(SEED)
plt = viz.plt()
trained = load_trained(CHECKPOINT)   # the UNet (EMA weights) with its schedule, scaling, labels and config
model, schedule, standardizer, config = trained.network, trained.schedule, trained.standardizer, trained.config
classifier = load_classifier()
x_test, y_test = load_mnist_float(split="test")                # (10000, 1, 28, 28) in [0, 1], (10000,)
print(f"model: {model.num_parameters()} parameters, {model.num_classes} classes, null label {model.null_label}, "
      f"trained with label_dropout {config.label_dropout}")
claims.claim(model.num_classes == 10 and model.null_label == 10 and config.label_dropout == 0.1,
             "K = {k} digits, the null label is row {n}, and the shipped model was trained with label_dropout {p}",
             k=model.num_classes, n=model.null_label, p=config.label_dropout)

# %% [markdown]
# ## The code path of a label
#
# The two places where the label is handled, printed from the library's source: the training step replaces a
# fraction `label_dropout` of the labels by the null label, and the UNet's embedding (`UNet._embed`, the first thing
# its forward pass computes) adds the label's row of the table to the time embedding.

# %%
found = []
for obj, word in ((Trainer.step, "label_dropout"), (UNet._embed, "y_embed")):
    lines = [line for line in inspect.getsource(obj).splitlines() if word in line]
    print(f"{obj.__qualname__}:")
    print("\n".join(lines))
    found.append(len(lines))
claims.claim(min(found) > 0, "both places are found in the library's source ({n} lines)", n=found)

# %% [markdown]
# ## The label table
#
# $E$ has $K + 1 = 11$ rows of $d_{\text{emb}} = 128$ numbers. Left: the cosine similarity of every pair of rows. The
# table starts from $\mathcal{N}(0, 1)$ entries (`nn.Embedding`, PyTorch's default), and two independent random
# vectors in 128 dimensions have a cosine of about $\pm 1 / \sqrt{128} = \pm 0.09$, so only values well beyond that
# would be structure the training put there. There is none: the trained rows still point where they started (the run
# compares them with the table the training began from, rebuilt from the stored config and seed). Training did not
# need to move them: random vectors in 128 dimensions are already nearly orthogonal, so every label arrives as its
# own direction, and the layers after the table (each ResBlock's projection to $s$ and $b$) learned to read them. So do
# not look for "4 is like 9" in this table. Right: each row's length, which starts near $\sqrt{128} = 11.3$, beside
# the typical length of the time part of $e$. Since the two parts are added, their lengths say which one dominates
# what every ResBlock receives: the label's part is the longer one.

# %%
table = model.y_embed.params["weight"].astype(np.float64)                          # (K + 1, E)
unit = table / np.linalg.norm(table, axis=1, keepdims=True)
cos = unit @ unit.T                                                                # (K + 1, K + 1)
ts_all = np.arange(0, schedule.T, 10)
e_time = model.t_lin2(model.t_act(model.t_lin1(model.t_embed(ts_all))))           # (T / 10, E)
names = [str(k) for k in range(model.num_classes)] + ["null"]
fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.6))
im = axes[0].imshow(cos, cmap="RdBu", vmin=-1, vmax=1)
axes[0].set_xticks(range(len(names)), names, fontsize=7)
axes[0].set_yticks(range(len(names)), names, fontsize=7)
axes[0].set_title("cosine similarity of label rows", fontsize=9)
fig.colorbar(im, ax=axes[0])
axes[1].bar(names, np.linalg.norm(table, axis=1), color=["C0"] * model.num_classes + ["C3"])
axes[1].axhline(np.linalg.norm(e_time, axis=1).mean(), color="k", ls=":", label="mean |time embedding|")
axes[1].set_title("length of each row", fontsize=9)
axes[1].legend(fontsize=7)
fig.tight_layout()
viz.save(fig, args.out / "label_embeddings.png")
digit_cos = cos[:-1, :-1].copy()                                                   # (K, K), digits only
np.fill_diagonal(digit_cos, -np.inf)
pair = np.unravel_index(np.argmax(digit_cos), digit_cos.shape)
print(f"most similar digit rows: {pair[0]} and {pair[1]} ({cos[pair]:+.2f}); null row with the digits: "
      f"{cos[-1, :-1].min():+.2f} to {cos[-1, :-1].max():+.2f}")
print(f"row lengths {np.linalg.norm(table, axis=1).min():.1f} to {np.linalg.norm(table, axis=1).max():.1f}; "
      f"time part of e: {np.linalg.norm(e_time, axis=1).mean():.1f} on average over t")
start = make_model(config, (1, *model.sample_shape), num_classes=model.num_classes)   # the untrained network
table_0 = start.y_embed.params["weight"].astype(np.float64)                        # (K + 1, E) where training began
unit_0 = table_0 / np.linalg.norm(table_0, axis=1, keepdims=True)
off = ~np.eye(len(table), dtype=bool)                                               # the pairs i != j
moved = np.sum(unit * unit_0, axis=1)                                              # (K + 1,) cos(trained row, start)
print(f"cosine of each trained row with its starting row: {moved.min():.3f} to {moved.max():.3f}; "
      f"off-diagonal cosines: rms {np.sqrt(np.mean(cos[off] ** 2)):.3f} (at the start {np.sqrt(np.mean((unit_0 @ unit_0.T)[off] ** 2)):.3f}, "
      f"1 / sqrt(128) = {1 / np.sqrt(table.shape[1]):.3f})")
claims.claim(abs(np.sqrt(np.mean((unit_0 @ unit_0.T)[off] ** 2)) * np.sqrt(table.shape[1]) - 1) < 0.3
             and np.all(np.abs(np.linalg.norm(table_0, axis=1) / np.sqrt(table.shape[1]) - 1) < 0.2),
             "the untrained table's rows have lengths near sqrt(128) = 11.3 ({a:.1f} to {b:.1f}) and cosines of about "
             "+-1 / sqrt(128) (rms {c:.3f})", a=np.linalg.norm(table_0, axis=1).min(),
             b=np.linalg.norm(table_0, axis=1).max(), c=np.sqrt(np.mean((unit_0 @ unit_0.T)[off] ** 2)))
claims.claim(moved.min() > 0.9 and np.max(np.abs(cos[off])) < 4 / np.sqrt(table.shape[1]),
             "the trained rows still point where they started (cosine with the starting row >= {m:.3f}) and no pair of "
             "rows is far beyond random (largest |cosine| {c:.2f}, 4 / sqrt(128) = 0.35)", m=moved.min(),
             c=np.max(np.abs(cos[off])))
claims.claim(np.linalg.norm(table, axis=1).mean() > np.linalg.norm(e_time, axis=1).mean(),
             "the label's part of e is the longer one: rows {a:.1f} on average, the time part {b:.1f}",
             a=np.linalg.norm(table, axis=1).mean(), b=np.linalg.norm(e_time, axis=1).mean())

# %% [markdown]
# ## What the label changes in one prediction
#
# Take one test digit, noise it to step $t$, and ask the network for its clean image,
# $\hat x_0 = (x_t - \sqrt{1 - \bar\alpha_t}\, \hat\epsilon) / \sqrt{\bar\alpha_t}$, once with the null label and once
# with each digit label. At $t = 300$ the digit is still plain in $x_t$, and a good model should see it whatever the
# label says: the judge reads every one of the eleven estimates as the true digit. By $t = 700$ $x_t$ holds almost
# nothing of it (chapter 11: $\sigma_t = 12$), and the label decides what the network "sees": the judge reads most
# estimates as the label asked for.

# %%
digit = standardizer.transform(x_test[:1])                                          # (1, 1, 28, 28) in [-1, 1]
print(f"the digit: a {y_test[0]}")
noise = rng.standard_normal(digit.shape)
labels_all = np.concatenate([[model.null_label], np.arange(model.num_classes)])    # null, then 0..9
judged = {}                                                                         # t -> the judge's labels (K + 1,)
fig, axes = plt.subplots(len(LABEL_TS), len(labels_all) + 1, figsize=(1.0 * (len(labels_all) + 1),
                                                                          1.1 * len(LABEL_TS)))
for row, t in enumerate(LABEL_TS):
    x_t = q_sample(schedule, digit, np.array([t]), noise)                           # (1, 1, 28, 28)
    batch = np.repeat(x_t, len(labels_all), axis=0)                                 # (K + 1, 1, 28, 28)
    tt = np.full(len(batch), t)
    with blas_threads(1):
        x0_hat, _ = trained.predict_x0_and_eps(batch, tt, labels_all)               # (K + 1, 1, 28, 28)
    panels = [("x_t", x_t[0, 0])] + [(names[y], np.clip(img[0], -1, 1)) for y, img in zip(labels_all, x0_hat)]
    for ax, (title, img) in zip(axes[row], panels):
        lim = 2.5 if title == "x_t" else 1.0                                        # x_t is wider than [-1, 1]
        ax.imshow(img, cmap="gray", vmin=-lim, vmax=lim)
        ax.set_title(title if row == 0 else "", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[row, 0].set_ylabel(f"t = {t}", fontsize=8)
    judged[t] = classifier.predict(np.clip(standardizer.inverse_transform(x0_hat), 0, 1))   # (K + 1,) the judge's reading
    print(f"t = {t}: sigma_t {schedule.sigmas[t]:.1f}; the judge reads the estimates (null, 0..9) as {judged[t].tolist()}")
fig.tight_layout()
viz.save(fig, args.out / "x0_given_label.png")
claims.claim(np.all(judged[300] == y_test[0]), "at t = 300 every estimate, whatever the label, is read as the true "
             "digit {d}", d=int(y_test[0]))
follows = np.mean(judged[700][1:] == labels_all[1:])
follows_500 = np.mean(judged[500][1:] == labels_all[1:])
claims.claim(follows >= 0.8 and follows_500 >= 0.8 and abs(schedule.sigmas[700] - 12) < 0.5,
             "at t = 700 (sigma_t = {s:.1f}) the label decides: {f:.0%} of the ten labelled estimates are read as their "
             "label ({f5:.0%} already at t = 500)", s=schedule.sigmas[700], f=follows, f5=follows_500)

# %% [markdown]
# ## Where along the chain the label acts
#
# For a batch of test digits, each noised to step $t$, compare the conditional prediction (true label) with the
# unconditional one. Left: the root mean square of $\epsilon_c - \epsilon_u$ per pixel, the difference in what the
# network outputs; guidance adds $s - 1$ times it to $\epsilon$. Right: the same difference in the clean-image
# estimates. Since $x_0 = (x_t - \sqrt{1 - \bar\alpha_t}\, \epsilon) / \sqrt{\bar\alpha_t}$, it is
#
# $$\hat x_{0,c} - \hat x_{0,u} = -\sigma_t\, (\epsilon_c - \epsilon_u), \qquad
# \sigma_t = \sqrt{(1 - \bar\alpha_t) / \bar\alpha_t}$$
#
# how differently the network pictures the digit with and without its label. While $x_t$ still shows the digit
# (small $t$) the two pictures should agree; once the noise has taken it (from $t \approx 500$ on: chapter 11, and
# the judge's readings above) the conditional picture is the label's average digit and the unconditional one the
# average of all digits. A small $\epsilon$ difference at large $t$ is a large difference in $x_0$: that is where
# guidance decides which digit a sample becomes. The same predictions, set beside the noise that was really added,
# also show which of the two models is the weaker one.

# %%
idx = rng.choice(len(x_test), N_EFFECT, replace=False)
x0 = standardizer.transform(x_test[idx])                                            # (N_EFFECT, 1, 28, 28)
y = y_test[idx].astype(np.int64)
effect_eps, effect_x0, err_c, err_u = [], [], [], []
for t in EFFECT_TS:
    tt = np.full(len(x0), t)
    eps = rng.standard_normal(x0.shape)                                             # the noise really added
    x_t = q_sample(schedule, x0, tt, eps)
    with blas_threads(1):
        _, both = trained.predict_x0_and_eps(np.concatenate([x_t, x_t]), np.concatenate([tt, tt]),
                                             np.concatenate([y, np.full(len(y), model.null_label)]))  # eps (2 N_EFFECT, ...)
    eps_c, eps_u = both[:len(y)], both[len(y):]
    effect_eps.append(np.sqrt(np.mean((eps_c - eps_u) ** 2)))
    effect_x0.append(schedule.sigmas[t] * effect_eps[-1])                           # rms of x0_c - x0_u
    err_c.append(np.mean((eps_c - eps) ** 2))                                       # each model's loss at this t
    err_u.append(np.mean((eps_u - eps) ** 2))
    print(f"t = {t:4d}: rms(eps_c - eps_u) = {effect_eps[-1]:.4f}, rms(x0_c - x0_u) = {effect_x0[-1]:.4f}")
claims.claim(effect_x0[-1] > 5 * effect_x0[0] and effect_x0[-1] > 3 * effect_eps[-1],
             "the label changes the clean-image estimate far more at t = {t1} (rms {a:.3f}) than at t = {t0} ({b:.3f}); "
             "at t = {t1} a small eps difference ({e:.3f}) is a large x0 difference",
             t0=EFFECT_TS[0], t1=EFFECT_TS[-1], a=effect_x0[-1], b=effect_x0[0], e=effect_eps[-1])
print(f"mean squared error of the predicted noise over these t: conditional {np.mean(err_c):.4f}, unconditional "
      f"{np.mean(err_u):.4f}")
claims.claim(np.mean(err_c) < np.mean(err_u), "the unconditional model is the weaker one: its noise predictions are "
             "further from the true noise (mean squared error {u:.4f} against {c:.4f} with the label)",
             u=np.mean(err_u), c=np.mean(err_c), quick=False)
fig, axes = plt.subplots(1, 2, figsize=(9, 3))
axes[0].plot(EFFECT_TS, effect_eps, "o-", ms=3)
axes[0].set_ylabel("rms of eps_c - eps_u per pixel")
axes[1].plot(EFFECT_TS, effect_x0, "o-", ms=3, color="C2")
axes[1].set_ylabel("rms of x0_c - x0_u per pixel")
axes[1].set_yscale("log")
for ax in axes:
    ax.set_xlabel("time step t")
fig.suptitle("how much the label changes the prediction", fontsize=9)
fig.tight_layout()
viz.save(fig, args.out / "label_effect_vs_t.png")

# %% [markdown]
# ## A guidance sweep from the same noise
#
# PER_CLASS start noises $x_T$ per class, drawn once. For every scale $s$ the same $x_T$ and the same labels go through
# DDIM with $\eta = 0$, which is deterministic: the only thing that changes between panels is $s$. (One row per class,
# panels left to right: $s$ = 0, 1, 3, 5.) At $s = 0$ the label is ignored and each $x_T$ becomes whatever digit the
# unconditional model makes of it. At $s = 1$ it should become the requested class, with about the variety of real
# digits; at larger $s$ expect bolder strokes (more ink: the mean pixel value grows with $s$), and digits of a row that
# look more and more alike: the "typical" digit of each class. Where a start noise keeps its shape across the panels,
# that is DDIM's determinism at work. Guidance costs a second prediction per step: the run counts the images the
# network sees.

# %%
labels = np.repeat(np.arange(model.num_classes), PER_CLASS)                   # (10 PER_CLASS,) 0, 0, ..., 9, 9
x_T = rng.standard_normal((len(labels), *model.sample_shape))                  # (10 PER_CLASS, 1, 28, 28)
samples, seconds, images_seen = {}, {}, {}


def counting(forward):
    # the network's forward, counting the images it is given (into images_seen[s] of the current scale)
    def counted(x, *rest):
        images_seen[s] += len(x)
        return forward(x, *rest)
    return counted


model.forward = counting(model.forward)                                          # an instance attribute, removed below
for s in sorted(set(SCALES) | set(SWEEP)):
    images_seen[s] = 0
    t0 = time.perf_counter()
    samples[s] = trained.sample(len(labels), label=labels, sampler="ddim", steps=DDIM_STEPS, guidance=s,
                                x_T=x_T, progress=not args.quick)               # (N, 1, 28, 28) in [0, 1]
    seconds[s] = time.perf_counter() - t0
del model.forward
print(f"{len(labels)} digits per scale, {DDIM_STEPS} DDIM steps: {seconds[1.0]:.1f} s at s = 1, "
      f"{seconds[SWEEP[-1]]:.1f} s with guidance (two predictions per step)")
claims.claim(images_seen[1.0] == len(labels) * DDIM_STEPS and images_seen[SWEEP[-1]] == 2 * images_seen[1.0],
             "guidance doubles the work: the network saw {a} images at s = 1 ({n} digits x {k} steps) and {b} at "
             "s = {s:g}", a=images_seen[1.0], n=len(labels), k=DDIM_STEPS, b=images_seen[SWEEP[-1]], s=SWEEP[-1])
ink = {s: float(samples[s].mean()) for s in SWEEP}                                # mean pixel value, 0 = black
print("mean pixel value (ink) at s = " + ", ".join(f"{s:g}: {v:.3f}" for s, v in ink.items()))
claims.claim(ink[SWEEP[-1]] > ink[1.0], "bolder strokes with guidance: the mean pixel value grows from {a:.3f} at "
             "s = 1 to {b:.3f} at s = {s:g}", a=ink[1.0], b=ink[SWEEP[-1]], s=SWEEP[-1], quick=False)
show = (np.arange(len(labels)) % PER_CLASS) < SHOW_PER_CLASS                       # the first few of each class
viz.save(viz.image_grids([(f"s = {s:g}", samples[s][show]) for s in SWEEP], ncol=SHOW_PER_CLASS, size=0.5),
         args.out / "guidance_sweep_digits.png")

# %% [markdown]
# ## Fidelity and diversity against $s$
#
# The judge's accuracy on the requested label (left) and the diversity $\sqrt{D_c} = \sqrt{2 \operatorname{tr}(S_c)}$
# of its features, averaged over the classes (right), for every scale. Dotted: the same numbers for real test digits
# (the judge's accuracy on them, and the diversity of N_REAL test digits per class). At $s = 0$ the labels mean
# nothing, so the samples "of one class" are digits of every class, and their diversity exceeds that of real digits of
# one class. More diversity than real digits have is no virtue either: malformed samples are far from each other too,
# so read the two panels together. With few samples per class the numbers are noisy: the full run (without --quick)
# uses more.

# %%
def diversity(features, labels):
    """Mean over classes of sqrt(D_c), D_c = 2 tr(S_c): the rms distance between two samples of the same class."""
    return float(np.mean([np.sqrt(2 * np.trace(gaussian_stats(features[labels == c])[1]))
                          for c in np.unique(labels)]))


real_idx = np.concatenate([np.flatnonzero(y_test == c)[:N_REAL] for c in range(model.num_classes)])
real_div = diversity(classifier.embed(x_test[real_idx]), y_test[real_idx])
real_acc, _ = class_accuracy(classifier.predict(x_test[real_idx]), y_test[real_idx])
acc, div = [], []
for s in SCALES:
    a, per_class = class_accuracy(classifier.predict(samples[s]), labels)
    acc.append(a)
    div.append(diversity(classifier.embed(samples[s]), labels))
    print(f"s = {s:3.1f} (w = {s - 1:4.1f}): accuracy {a:.3f}, diversity {div[-1]:.2f}; per class "
          + " ".join(f"{c}:{p:.2f}" for c, p in enumerate(per_class)))
print(f"real test digits: accuracy {real_acc:.3f}, diversity {real_div:.2f}")
at_s = dict(zip(SCALES, zip(acc, div)))
s_big = max(SCALES)
claims.claim(at_s[0.0][0] < 0.35 and at_s[s_big][0] >= at_s[1.0][0] and at_s[s_big][1] < at_s[1.0][1],
             "s = 0 ignores the labels (accuracy {a0:.2f}); from s = 1 to s = {s:g} the samples get easier to recognise "
             "(accuracy {a1:.3f} -> {a2:.3f}) and less varied (diversity {d1:.2f} -> {d2:.2f})",
             a0=at_s[0.0][0], s=s_big, a1=at_s[1.0][0], a2=at_s[s_big][0], d1=at_s[1.0][1], d2=at_s[s_big][1],
             quick=False)
claims.claim(at_s[1.0][0] >= 0.9 and abs(at_s[1.0][1] / real_div - 1) < 0.25,
             "at s = 1 the samples are their requested class (accuracy {a:.3f}) with about the variety of real digits "
             "(diversity {d:.2f} against {r:.2f})", a=at_s[1.0][0], d=at_s[1.0][1], r=real_div, quick=False)
claims.claim(at_s[0.0][1] > real_div, "at s = 0 the samples 'of one class' are more varied than real digits of one "
             "class (diversity {d:.2f} against {r:.2f})", d=at_s[0.0][1], r=real_div, quick=False)

fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
axes[0].plot(SCALES, acc, "o-")
axes[0].axhline(real_acc, color="k", ls=":", lw=1, label="real test digits")
axes[0].set_ylabel("judge's accuracy on the requested label")
axes[0].set_ylim(0, 1.05)
axes[1].plot(SCALES, div, "o-", color="C1")
axes[1].axhline(real_div, color="k", ls=":", lw=1, label="real test digits")
axes[1].set_ylabel("rms feature distance within a class")
for ax in axes:
    ax.set_xlabel("guidance scale s  (w = s - 1)")
    ax.legend(fontsize=7)
fig.suptitle(f"{PER_CLASS} samples per class, DDIM {DDIM_STEPS} steps, the same x_T at every s", fontsize=9)
fig.tight_layout()
viz.save(fig, args.out / "guidance_accuracy_diversity.png")

# %% [markdown]
# The trade is the one chapter 10 predicted for the mixtures: guidance moves samples away from what the other classes
# could also explain, so they become easier to recognise and less varied. Which $s$ is best depends on what one wants:
# the Frechet distance to the test set (chapter 13; `python -m tinydiff evaluate --guidance 1,2,3` computes it from
# thousands of samples) balances the two and prefers a small $s$; a demo that must show recognisable digits takes a
# larger one. Below, FD of this run's samples at every scale, all at the same $n$ (chapter 13: FD is biased at small
# $n$, so only the comparison between scales means something).

# %%
test_f = classifier.embed(x_test)                                                 # (10000, 128) the reference
fd = {s: frechet_distance(classifier.embed(samples[s]), test_f) for s in SCALES}
print(f"FD against the 10,000 test digits, {len(labels)} samples each: "
      + ", ".join(f"s = {s:g}: {v:.1f}" for s, v in fd.items()))
best = min(fd, key=fd.get)
claims.claim(1.0 <= best <= 3.0 and fd[best] < fd[max(SCALES)],
             "FD prefers a small guidance scale: its minimum is at s = {b:g} (FD {f:.1f}), against {g:.1f} at s = {s:g}",
             b=best, f=fd[best], g=fd[max(SCALES)], s=max(SCALES), quick=False)

claims.finish()   # every claim above was checked in this run: exit 1 if one failed
