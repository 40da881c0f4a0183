# %% [markdown]
r"""
# Chapter 13 — Evaluating generative models: Frechet distance, KID, memorisation

A grid of 64 good-looking digits says little about a model. Our eyes cannot tell whether the model draws all ten
digits in the right proportions, how its 10,000th sample looks, or whether each "new" digit is a training image it
has learned by heart. This chapter builds the numbers `python -m tinydiff evaluate` prints, checks each against a case
with a known answer, and then tries to fool them.

A generator is good when its samples are **faithful** (each one looks like real data), **diverse** (together they
cover the whole data distribution, with the right frequencies) and **new** (they are not copies of the training
set). One number cannot measure all three: we will need a distance between distributions (FD, KID), the judge's
accuracy on the requested labels, and a memorisation check.

## Where we compare: the judge's features

Two images of the same 7, one shifted by two pixels, are far apart in pixels: the strokes no longer overlap. A
distance between *distributions* of images built on pixels would mostly measure such accidents. So we compare
images through a network that already knows digits: the judge, `tinydiff.models.classifier.MNISTClassifier`
(99.2 % test accuracy), and its 128 penultimate ReLU features $f(x)$ = `classifier.embed(x)`. Heusel et al. (2017) do
the same with Inception-v3's 2048 pool features for natural images ("FID"); on MNIST a small digit classifier is the
usual stand-in. Every number below depends on the judge, so tinydiff ships one file with a fixed SHA-256
(`load_classifier()` checks it): numbers computed with another judge are not comparable.

## What the chapter measures

1. the feature space (`feature_pca.png`);
2. the Frechet distance, checked on Gaussians, and its small-sample bias, against KID, which has none
   (`fd_bias.png`);
3. how FD responds to damaged data: noise, blur, missing classes (`corruption_examples.png`,
   `fd_corruptions.png`);
4. the shipped conditional model against its floor (`model_samples.png`);
5. memorisation: how near samples sit to the training set (`memorisation_hist.png`, `nearest_neighbours.png`);
6. why pictures are not enough: three generators that look alike and score very differently (`which_is_best.png`).

Throughout, the reference set is one half ("A") of the MNIST test images; the other half ("B") plays a perfect
generator, drawing digits that are new but come from the right distribution. Data: `TINYDIFF_DATA` (docs/mnist.md).
"""

# %%
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")   # before NumPy loads: small matrix products run best on one thread
import time                                            # (docs/performance.md: thread pools fight on shared cores)
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter

from tinydiff import claims, viz
from tinydiff.data.mnist import load_mnist_float, require_mnist
from tinydiff.metrics.images import (class_accuracy, format_report, frechet_distance, frechet_distance_from_stats,
                                     image_report, kernel_distance, memorization, mmd2_unbiased, nearest_distances,
                                     real_data_floor)
from tinydiff.models.classifier import load_classifier
from tinydiff.trained import load_trained

args = viz.chapter_args(13, "Chapter 13: evaluating generative models")
require_mnist("chapter 13")                      # downloads MNIST if missing, else one line and exit 1

# ---- constants -------------------------------------------------------------------------------------------------
TEST_N = 4000 if args.quick else 10000           # test images used: half A is the reference, half B the "new digits"
BIAS_NS = (50, 100, 200, 500, 1000) if args.quick else (50, 100, 200, 500, 1000, 2000, 5000)  # n for fd_bias.png
REPEATS = 2 if args.quick else 6                 # independent pairs of disjoint sets per n
N = 200 if args.quick else 1000                  # images per damaged set and per generator of the last section
NOISE = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5)          # Gaussian pixel noise std (images in [0, 1])
BLUR = (0.0, 0.5, 1.0, 1.5, 2.0)                 # Gaussian blur std, pixels
CLASSES = (10, 8, 6, 5, 4, 3)                    # keep only the digits 0 .. k-1
MEMO_TEST = 100 if args.quick else 1000          # held-out test images that set "how near is near" (tau)
MEMO_TRAIN = 20000 if args.quick else 60000      # training images searched for nearest neighbours (all: 60000)
KID_SUBSETS = 5 if args.quick else 20            # KID subsets per number in sections 3 and 6
MEMO_N = 50 if args.quick else 300               # images per generator in the memorisation check of the last table
COPY_NOISE = 0.02                                # the copy machine's disguise: pixel noise std
CHECKPOINT = Path(__file__).resolve().parents[1] / "data" / "checkpoints" / "mnist_conditional.npz"
N_SAMPLES = 20 if args.quick else 200            # samples drawn from the shipped model (labels 0..9 in turn)
DDIM_STEPS = 10 if args.quick else 25            # DDIM steps per sample
GUIDANCE = (1.0, 3.0)                            # classifier-free guidance scales (chapter 12)
SEED = 0
# -----------------------------------------------------------------------------------------------------------------

start = time.perf_counter()
rng = np.random.default_rng(SEED)
plt = viz.plt()
judge = load_classifier()
train_x, train_y = load_mnist_float(split="train")                   # (60000, 1, 28, 28) in [0, 1], (60000,)
test_x, test_y = load_mnist_float(split="test")
pick = rng.permutation(len(test_x))[:TEST_N]
test_x, test_y = test_x[pick], test_y[pick].astype(np.int64)
test_f = judge.embed(test_x)                                         # (TEST_N, 128)
half = TEST_N // 2
ref_f = test_f[:half]                                                # reference features, half A
pool_x, pool_y, pool_f = test_x[half:-MEMO_TEST], test_y[half:-MEMO_TEST], test_f[half:-MEMO_TEST]   # half B
memo_x = test_x[-MEMO_TEST:]                                         # held out for the memorisation check
print(f"{TEST_N} test images embedded: reference A {half}, new-digit pool {len(pool_x)}, memorisation {MEMO_TEST}")
judge_accuracy, _ = class_accuracy(judge.predict(test_x), test_y)
claims.claim(test_f.shape[1] == 128 and abs(judge_accuracy - 0.992) < 0.005,
             "the judge's features have {d} dimensions and it reads {a:.1%} of these test digits right (99.2 % on the "
             "whole test set)", d=test_f.shape[1], a=judge_accuracy, quick=False)
memo_train = train_x[:MEMO_TRAIN]                                    # where section 5 looks for copies
if args.quick:
    print("QUICK MODE: small n everywhere; FD numbers at small n are mostly bias (section 2), so compare only with "
          f"the floors printed beside them; nearest neighbours searched among {MEMO_TRAIN} training images only")

# %% [markdown]
r"""
## 1. Pixels against features

The median distance between a test digit and the same digit shifted right by two pixels, and between it and a test
digit of another class, in both spaces:
"""

# %%
x, shifted, other = test_x[:500], np.roll(test_x[:500], 2, axis=-1), test_x[500:1000]
f, f_shifted, f_other = test_f[:500], judge.embed(shifted), test_f[500:1000]
differs = test_y[:500] != test_y[500:1000]


def dist(a, b):
    return np.sqrt(((a - b) ** 2).reshape(len(a), -1).sum(axis=1))     # (N,) row-wise Euclidean distance


near = {}                                                                   # space -> median(shifted) / median(other)
for space, (same, diff) in {"pixels": (dist(x, shifted), dist(x, other)),
                            "features": (dist(f, f_shifted), dist(f, f_other))}.items():
    near[space] = np.median(same) / np.median(diff[differs])
    print(f"{space:>8}: shifted copy {np.median(same):6.2f}, digit of another class {np.median(diff[differs]):6.2f}"
          f"  (ratio {near[space]:.2f})")
claims.claim(near["pixels"] > 0.8 and 0.2 < near["features"] < 0.5,
             "in pixels a shifted copy is nearly as far as a digit of another class (ratio {p:.2f}); in features it is "
             "about three times nearer (ratio {f:.2f})", p=near["pixels"], f=near["features"])

# %% [markdown]
r"""
In pixels a shifted copy is nearly as far as a different digit; in features it is about three times nearer. The
picture says the same: project the images (left) and their features (right) on their first two principal axes (the
top two eigenvectors of the covariance) and colour them by class. In pixels most classes overlap in one cloud (only
the 0s and 1s stand apart); in the judge's features they pull apart into arms, one per digit. (The run measures it:
the fraction of points whose nearest class centre in the 2-D projection is their own class, per class.) Distances
between feature distributions therefore measure what a reader would call "different digits". `feature_pca.png`
"""


# %%
def pca_2d(v):
    """Coordinates (N, 2) of v (N, D) on its first two principal axes."""
    v = v.reshape(len(v), -1)                                                     # (N, D)
    centred = v - v.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)                        # rows of vt: principal axes
    return centred @ vt[:2].T                                                     # (N, 2)


def centre_accuracy(p, y):
    """Per class (10,): the fraction of 2-D points p (N, 2) whose nearest class centre is their own class's."""
    centres = np.stack([p[y == c].mean(axis=0) for c in range(10)])              # (10, 2)
    nearest = ((p[:, None, :] - centres[None]) ** 2).sum(axis=2).argmin(axis=1)   # (N,)
    return np.array([np.mean(nearest[y == c] == c) for c in range(10)])


show = slice(0, 2000)
apart = {}
fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
for ax, (name, v) in zip(axes, [("pixels (784-d)", test_x[show]), ("judge's features (128-d)", test_f[show])]):
    p = pca_2d(v)
    apart[name] = centre_accuracy(p, test_y[show])
    print(f"{name}: nearest class centre in the 2-D projection is the right one for "
          + " ".join(f"{c}:{a:.2f}" for c, a in enumerate(apart[name])))
    sc = ax.scatter(p[:, 0], p[:, 1], c=test_y[show], cmap="tab10", s=3, vmin=-0.5, vmax=9.5, linewidths=0)
    ax.set_title(f"{name}: first two principal axes", fontsize=9)
    viz.square_axes(ax, None)
fig.colorbar(sc, ax=axes, ticks=range(10), label="digit", shrink=0.8)
viz.save(fig, args.out / "feature_pca.png")
pix, feat = apart["pixels (784-d)"], apart["judge's features (128-d)"]
claims.claim(set(np.argsort(pix)[-2:]) == {0, 1} and np.median(pix) < 0.5 and feat.mean() > pix.mean() + 0.15,
             "in the 2-D pixel projection only the 0s and 1s stand apart (their own centre is nearest for {p01} of them; "
             "median class {pm:.2f}); in features the classes pull apart (mean {f:.2f} against {p:.2f} in pixels)",
             p01=f"{pix[0]:.2f} and {pix[1]:.2f}", pm=np.median(pix), f=feat.mean(), p=pix.mean())

# %% [markdown]
r"""
## 2. The Frechet distance

Fit a Gaussian to each set of features: mean $\mu$ and covariance $S$ (with $1/(n-1)$). The Frechet
(2-Wasserstein) distance between $\mathcal{N}(\mu_1, S_1)$ and $\mathcal{N}(\mu_2, S_2)$ has a closed form (Dowson &
Landau 1982):

$$\mathrm{FD} = \|\mu_1 - \mu_2\|^2 + \operatorname{Tr}\big(S_1 + S_2 - 2 (S_1 S_2)^{1/2}\big) \tag{1}$$

($S_1 S_2$ is not symmetric, but it is similar to the symmetric $S_2^{1/2} S_1 S_2^{1/2}$, which has the same
eigenvalues; `metrics.images.frechet_distance` takes the square root of that one with `eigh`, which is stable.)
Two special cases we can check by hand:

- equal covariances, $S_1 = S_2 = S$: $(S S)^{1/2} = S$, the trace term is 0 and $\mathrm{FD} = \|\mu_1 - \mu_2\|^2$;
- one dimension, variances $s_1^2$ and $s_2^2$: $\operatorname{Tr}(\dots) = s_1^2 + s_2^2 - 2 s_1 s_2$, so
  $\mathrm{FD} = (m_1 - m_2)^2 + (s_1 - s_2)^2$.

FD is a squared distance: zero only when the two Gaussians agree, and it sees the means AND the spread. A
generator that draws only the most typical digit gets the mean roughly right and the covariance badly wrong.
"""

# %%
a = rng.standard_normal((5, 5))
S = a @ a.T + 0.1 * np.eye(5)                                                      # (5, 5) a covariance
mu_1, mu_2 = rng.standard_normal(5), rng.standard_normal(5)
claims.claim(abs(frechet_distance_from_stats(mu_1, S, mu_2, S) - np.sum((mu_1 - mu_2) ** 2)) < 1e-8,
             "equal covariances: FD {fd:.6f} = |mu_1 - mu_2|^2 {d:.6f}",
             fd=frechet_distance_from_stats(mu_1, S, mu_2, S), d=np.sum((mu_1 - mu_2) ** 2))
(m_1, s_1), (m_2, s_2) = (0.5, 2.0), (-1.0, 0.5)
claims.claim(abs(frechet_distance_from_stats(m_1, s_1 ** 2, m_2, s_2 ** 2) - (m_1 - m_2) ** 2 - (s_1 - s_2) ** 2) < 1e-9,
             "1-D: FD {fd:.6f} = (m_1 - m_2)^2 + (s_1 - s_2)^2 = {d:.6f}",
             fd=frechet_distance_from_stats(m_1, s_1 ** 2, m_2, s_2 ** 2), d=(m_1 - m_2) ** 2 + (s_1 - s_2) ** 2)
big_1, big_2 = m_1 + s_1 * rng.standard_normal((20000, 1)), m_2 + s_2 * rng.standard_normal((20000, 1))
print(f"1-D from 20000 samples each: FD {frechet_distance(big_1, big_2):.4f}")
claims.claim(abs(frechet_distance(big_1, big_2) - (m_1 - m_2) ** 2 - (s_1 - s_2) ** 2) < 0.1,
             "from 20000 samples each, the estimated FD ({e:.3f}) is near the exact {d:.3f}",
             e=frechet_distance(big_1, big_2), d=(m_1 - m_2) ** 2 + (s_1 - s_2) ** 2)

# %% [markdown]
r"""
### FD is biased: it depends on $n$

Fitted from $n$ points, $\mu$ and $S$ are noisy, and the noise does not average out: FD is zero only when the two
fitted Gaussians agree exactly and positive otherwise, so FD between two samples of ONE distribution is positive on
average, and shrinks like $1/n$ as the estimates sharpen. Part of it is easy to compute: for two independent sets
of $n$ points with covariance $S$, the difference of their means has covariance $2 S / n$, so

$$\mathbb{E}\, \|\mu_A - \mu_B\|^2 = \frac{2 \operatorname{Tr}(S)}{n} \tag{2}$$

The rest, from the covariance term, is larger in 128 dimensions. We measure FD between two disjoint random sets of
$n$ test images (same distribution, so the true distance is 0) for growing $n$, with several independent pairs per
$n$. This is why `tinydiff evaluate` prints, beside every FD, its **floor**: the FD of $n$ real training images
against the test set, at the same $n$. Chong & Forsyth (2020) go further and extrapolate,
$\mathrm{FD}_n \approx \mathrm{FD}_\infty + k / n$, fitting a line against $1/n$ and reading off its intercept
(printed below; about 0 for real against real).

## KID: an unbiased alternative

The kernel inception distance (Binkowski et al. 2018) is the squared maximum mean discrepancy between the two
feature distributions with the cubic polynomial kernel ($d = 128$):

$$k(a, b) = \Big(\frac{a \cdot b}{d} + 1\Big)^3 \tag{3}$$

$$\mathrm{MMD}^2_u = \frac{1}{m (m - 1)} \sum_{i \ne j} k(x_i, x_j) + \frac{1}{n (n - 1)} \sum_{i \ne j} k(y_i, y_j) -
\frac{2}{m n} \sum_{i, j} k(x_i, y_j) \tag{4}$$

Leaving out the diagonal terms $k(x_i, x_i)$ makes each sum an unbiased estimate of $\mathbb{E}\, k(x, x')$, so
$\mathrm{MMD}^2_u$ is 0 on average when both sets come from one distribution. It can therefore come out negative: that
is noise, not an error. `kernel_distance` reports its mean and standard deviation over random subsets (the std is the
spread over subsets, not an error bar on the model). Its units are the raw judge features cubed, so its scale means
nothing on its own, and differs from Inception KID's.
"""

# %%
tr_S = np.trace(np.cov(test_f, rowvar=False))
bias = {k: np.zeros((len(BIAS_NS), REPEATS)) for k in ("fd", "mean", "kid")}
for i, n in enumerate(BIAS_NS):
    for r in range(REPEATS):
        order = rng.permutation(TEST_N)
        fa, fb = test_f[order[:n]], test_f[order[n:2 * n]]                    # two disjoint sets of n (n, 128)
        bias["fd"][i, r] = frechet_distance(fa, fb)
        bias["mean"][i, r] = np.sum((fa.mean(axis=0) - fb.mean(axis=0)) ** 2)
        bias["kid"][i, r] = mmd2_unbiased(fa, fb)
ns = np.array(BIAS_NS)
fd_mean = bias["fd"].mean(axis=1)
fit_on = ns >= 200
slope, fd_inf = np.polyfit(1.0 / ns[fit_on], fd_mean[fit_on], 1)                  # FD_n ~ fd_inf + slope / n
for i, n in enumerate(BIAS_NS):
    print(f"n = {n:5d}: FD {fd_mean[i]:8.2f} (n FD {n * fd_mean[i]:6.0f}), |mu_A - mu_B|^2 "
          f"{bias['mean'][i].mean():6.3f} (eq. 2: {2 * tr_S / n:6.3f}), KID {bias['kid'][i].mean():+8.3f} "
          f"+- {bias['kid'][i].std():.3f}")
print(f"FD_n ~ {fd_inf:.2f} + {slope:.0f} / n  (fitted for n >= 200): extrapolated FD_inf = {fd_inf:.2f}")
mean_ratio = bias["mean"].mean(axis=1) / (2 * tr_S / ns)
claims.claim(np.all(np.abs(mean_ratio - 1) < 3 * np.sqrt(2 / REPEATS) + 0.1),
             "eq. 2 holds: |mu_A - mu_B|^2 averages 2 Tr(S) / n at every n (ratios {r})",
             r=np.round(mean_ratio, 2).tolist(), quick=False)
claims.claim(np.all(np.diff(fd_mean) < 0) and np.all(fd_mean > bias["mean"].mean(axis=1)),
             "FD between two samples of one distribution is positive and shrinks with n ({f}); its covariance term is "
             "the larger part", f=np.round(fd_mean, 2).tolist())
claims.claim(abs(fd_inf) < 0.1 * fd_mean[fit_on][0],
             "the 1/n fit extrapolates real-against-real FD to about 0: FD_inf = {f:.2f} (FD at n = {n}: {a:.2f})",
             f=fd_inf, n=int(ns[fit_on][0]), a=fd_mean[fit_on][0], quick=False)
claims.claim(all(abs(bias["kid"][i].mean()) < 3 * bias["kid"][i].std() / np.sqrt(REPEATS) + 1e-12
                 for i in range(len(BIAS_NS))),
             "KID is unbiased: its mean over pairs is within 3 standard errors of 0 at every n", quick=False)

fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
ax = axes[0]
ax.errorbar(ns, fd_mean, yerr=bias["fd"].std(axis=1), fmt="o-", label="FD (real vs real)")
ax.plot(ns, bias["mean"].mean(axis=1), "s-", label="its mean term |mu_A - mu_B|^2")
ax.plot(ns, 2 * tr_S / ns, "k:", label="2 Tr(S) / n  (eq. 2)")
ax.plot(ns, fd_inf + slope / ns, "C0--", lw=0.8, label=f"fit {fd_inf:.1f} + {slope:.0f} / n")
ax.set_xscale("log")
ax.set_yscale("log")
ax.set_xlabel("n images in each set")
ax.set_title("FD between two disjoint sets of n test images: biased", fontsize=9)
ax.legend(fontsize=7)
ax = axes[1]
ax.errorbar(ns, bias["kid"].mean(axis=1), yerr=bias["kid"].std(axis=1), fmt="o-", color="C2", capsize=3,
            label="KID (MMD^2_u)")
ax.axhline(0, color="k", lw=0.8)
ax.set_xscale("log")
ax.set_xlabel("n images in each set")
ax.set_title("KID between the same sets: unbiased", fontsize=9)
ax.legend(fontsize=7)
fig.tight_layout()
viz.save(fig, args.out / "fd_bias.png")
n_fd = ns * fd_mean
share = bias["mean"].mean(axis=1) / fd_mean
claims.claim(n_fd[fit_on].max() / n_fd[fit_on].min() < 1.5 and fd_mean[0] > 10 * fd_inf,
             "n FD stays roughly constant for n >= 200 ({r}): the 1/n law", r=np.round(n_fd[fit_on]).astype(int).tolist(),
             quick=False)
claims.claim(share.max() < 0.3, "the mean term is only a small part of FD (at most {m:.0%} of it)", m=share.max())

# %% [markdown]
r"""
FD of real against real is far above 0 at small $n$, and $n \cdot \mathrm{FD}$ stays roughly constant: the $1/n$ law
(with few repeats per $n$ the points wobble). The mean term follows eq. (2) and is only a small part of it. KID
scatters around 0 at every $n$ (the error bars are the spread over the pairs). Take-away: an FD means nothing without
the $n$ it was computed at; compare models only at equal $n$, and beside the floor at that $n$.

## 3. What FD notices

A good distance should grow smoothly as data gets worse. We damage the new-digit pool (half B) in three ways and
measure its FD and KID against the reference (half A), at fixed $n = N$, beside the judge's accuracy on the damaged
digits (does each image still look like its digit?):

- Gaussian pixel noise of std $\sigma$ (clipped to [0, 1]);
- Gaussian blur of std $\sigma$ pixels (`scipy.ndimage.gaussian_filter`);
- **dropping classes**: keep only the digits $0, \dots, k-1$. Each image is a perfect real digit, so the accuracy
  stays at 99 %, but the distribution is wrong: a model that can only draw half the digits. This is "mode dropping",
  the typical failure of GANs, and FD catches it although no single sample looks bad.

`corruption_examples.png` shows the damage; `fd_corruptions.png` the distances (the dotted line is the floor: the
undamaged pool at the same $n$).
"""


# %%
def noisy(x, sigma, seed=SEED):
    return np.clip(x + sigma * np.random.default_rng(seed).standard_normal(x.shape), 0, 1).astype(np.float32)


def blurred(x, sigma):
    return gaussian_filter(x, sigma=(0, 0, sigma, sigma)) if sigma > 0 else x     # blur H and W only


def first_classes(k, n=N):
    keep = np.flatnonzero(pool_y < k)[:n]
    return pool_x[keep], pool_y[keep]


clean_x, clean_y = pool_x[:N], pool_y[:N]
damage = {"noise sigma": [(s, noisy(clean_x, s), clean_y) for s in NOISE],
          "blur sigma (pixels)": [(s, blurred(clean_x, s), clean_y) for s in BLUR],
          "classes kept (0 .. k-1)": [(k, *first_classes(k)) for k in CLASSES]}
floor_fd = frechet_distance(pool_f[:N], ref_f)
scores = {}
for name, levels in damage.items():
    scores[name] = []
    for level, xs, ys in levels:
        fs = judge.embed(xs)
        kid, _ = kernel_distance(fs, ref_f, subset_size=N, n_subsets=KID_SUBSETS, rng=SEED)
        accuracy, _ = class_accuracy(judge.predict(xs), ys)
        scores[name].append((level, frechet_distance(fs, ref_f), kid, accuracy))
        print(f"{name:>24} {level:4g}: n {len(xs):4d}  FD {scores[name][-1][1]:8.2f}  KID {kid:8.3f}  "
              f"accuracy {accuracy:.3f}")
print(f"floor (undamaged, n = {N}): FD {floor_fd:.2f}")

rows = [(f"noise {s:g}", xs[:8]) for s, xs, _ in damage["noise sigma"][1::2]]
rows += [(f"blur {s:g}", xs[:8]) for s, xs, _ in damage["blur sigma (pixels)"][2::2]]
k, xs, _ = damage["classes kept (0 .. k-1)"][3]
rows += [(f"digits 0-{k - 1}", xs[:8])]
viz.save(viz.image_rows(rows), args.out / "corruption_examples.png")

fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
for ax, (name, rows_) in zip(axes, scores.items()):
    level, fd, _, accuracy = np.array(rows_).T
    ax.plot(level, fd, "o-", label="FD")
    ax.axhline(floor_fd, color="k", ls=":", lw=1, label="floor")
    ax.set_yscale("log")
    ax.set_xlabel(name)
    ax.set_ylabel("FD against the reference")
    twin = ax.twinx()
    twin.plot(level, accuracy, "s--", color="C3", label="judge accuracy")
    twin.set_ylim(0, 1.02)
    twin.set_ylabel("accuracy", color="C3")
    if name.startswith("classes"):
        ax.invert_xaxis()
    ax.legend(loc="upper left", fontsize=7)
fig.tight_layout()
viz.save(fig, args.out / "fd_corruptions.png")
fds = {name: np.array([r[1] for r in rows_]) for name, rows_ in scores.items()}
accs = {name: np.array([r[3] for r in rows_]) for name, rows_ in scores.items()}
claims.claim(all(np.all(np.diff(v) > 0) for v in fds.values()),
             "FD grows at every step of every kind of damage", quick=False)
early = {name: int(np.argmax(fds[name] > 2 * floor_fd)) for name in ("noise sigma", "blur sigma (pixels)")}
claims.claim(all(fds[name][k] > 2 * floor_fd and accs[name][k] >= 0.95 for name, k in early.items()),
             "noise and blur double FD ({f}) while the judge still reads at least 95% of the damaged digits right "
             "({a})", f=", ".join(f"{fds[n][k]:.1f} at {n} {scores[n][k][0]:g}" for n, k in early.items()),
             a=", ".join(f"{accs[n][0]:.3f} -> {accs[n][k]:.3f}" for n, k in early.items()), quick=False)
kept = "classes kept (0 .. k-1)"
claims.claim(accs[kept].min() >= 0.98 and fds[kept][CLASSES.index(5)] > 10 * floor_fd,
             "dropping classes keeps the accuracy at the top (at least {a:.3f}, each image a real digit) while FD rises "
             "steeply ({f:.1f} with digits 0-4 only, floor {fl:.1f})", a=accs[kept].min(),
             f=fds[kept][CLASSES.index(5)], fl=floor_fd, quick=False)

# %% [markdown]
r"""
FD grows steadily with every kind of damage. Noise and blur double FD while the judge still reads at least 95 % of the
damaged digits right, so FD is the more sensitive of the two. Dropping classes raises FD steeply while the accuracy
stays at the top: accuracy measures faithfulness, FD also diversity. (It would also grow if we kept all classes in the
wrong proportions.)

## 4. The shipped model

`data/checkpoints/mnist_conditional.npz` is the class-conditional UNet of chapters 11-12. We draw N_SAMPLES digits,
the labels 0..9 in turn, with DDIM, once per guidance scale, with the trained model's own `sample`, and score them
with `metrics.images.image_report`, what `python -m tinydiff evaluate` uses. The floor is $n$ training images
at the same $n$. FD at this $n$ is dominated by the bias of section 2, so read the model's FD only against the floor
(the full evaluation in docs/mnist.md uses thousands of samples). `model_samples.png` shows the first samples of
each scale.
"""

# %%
shipped = load_trained(CHECKPOINT)            # the UNet (EMA weights) with its schedule, scaling and labels
labels = np.arange(N_SAMPLES) % 10
floor_pick = train_x[rng.choice(len(train_x), N_SAMPLES, replace=False)]
floor = real_data_floor(judge.embed(floor_pick), ref_f, n=N_SAMPLES, rng=SEED)
print(f"floor ({N_SAMPLES} training images vs reference A): FD {floor['fd']:.2f}   "
      f"KID {floor['kid'][0]:.3f} +- {floor['kid'][1]:.3f}")
samples, reports = {}, {}
for s in GUIDANCE:
    t0 = time.perf_counter()
    samples[s] = shipped.sample(N_SAMPLES, label=labels, sampler="ddim", steps=DDIM_STEPS, guidance=s, rng=SEED,
                                batch_size=100, progress=not args.quick)          # (N_SAMPLES, 1, 28, 28) in [0, 1]
    seconds = time.perf_counter() - t0
    reports[s] = image_report(samples[s], judge, memo_x, ref_f, memo_train, labels, memo_test=MEMO_TEST)
    print(format_report(f"guidance {s:g} ({N_SAMPLES} samples, {DDIM_STEPS} DDIM steps, {seconds:.1f} s)",
                        reports[s]))
viz.save(viz.image_rows([(f"s = {s:g}", samples[s][:20]) for s in GUIDANCE]), args.out / "model_samples.png")

# %% [markdown]
r"""
Guidance buys accuracy (each sample more clearly its digit; here at least as high at $s = 3$ as at $s = 1$) with
diversity (samples of a class more alike); FD and KID say whether the trade paid off as a distribution. Neither
tells whether the digits are new.

## 5. Memorisation

A model that has learned its training set by heart scores a perfect FD: its samples ARE the data distribution.
The FD floor itself is computed from training images, so it is exactly what a copy machine scores. To catch copies
we look at pixels (where a copy is a copy): each image's distance to its nearest training image,

$$d_{\mathrm{NN}}(x) = \min_i \|x - x_i^{\text{train}}\| \tag{5}$$

and compare samples with held-out test images, which the model never saw but which come from the same
distribution: `metrics.images.memorization` sets $\tau$ = the median $d_{\mathrm{NN}}$ of half the test images and
reports the fraction of samples nearer than $\tau$ (test images: about 0.5) and of near-copies, nearer than
$\tau / 3$.

Our "copy machine" returns random training images with a little pixel noise (std COPY_NOISE = 0.02, invisible), so
they are not byte-for-byte copies. A second one shifts training images by one pixel. `memorisation_hist.png` shows
the $d_{\mathrm{NN}}$ of held-out test images, of the model's samples ($s = 1$) and of the two copy machines;
`nearest_neighbours.png` shows a few samples beside their nearest training image.
"""

# %%
claims.claim(reports[3.0]["accuracy"] >= reports[1.0]["accuracy"],
             "guidance buys accuracy: {a:.3f} at s = 3 against {b:.3f} at s = 1", a=reports[3.0]["accuracy"],
             b=reports[1.0]["accuracy"], quick=False)
copy_idx = rng.choice(MEMO_TRAIN, N, replace=False)
copies = noisy(train_x[copy_idx], COPY_NOISE, seed=SEED + 1)
shifted_copies = np.roll(train_x[copy_idx], 1, axis=-1)
d_nn = {"held-out test images": nearest_distances(memo_x, memo_train),
        "model samples (s = 1)": nearest_distances(samples[1.0], memo_train),
        f"copy machine (noise {COPY_NOISE})": nearest_distances(copies[:MEMO_N], memo_train),
        "copies shifted by 1 pixel": nearest_distances(shifted_copies[:MEMO_N], memo_train)}
memo = memorization(copies[:MEMO_N], memo_train, memo_x, rng=SEED)
tau = memo["tau"]
for name, d in d_nn.items():
    print(f"{name:>28}: median d_NN {np.median(d):5.2f}, below tau {np.mean(d < tau):.2f}, "
          f"near-copies {np.mean(d < tau / 3):.2f}")
below = {name: np.mean(d < tau) for name, d in d_nn.items()}
copies_of = {name: np.mean(d < tau / 3) for name, d in d_nn.items()}
held_out, model_s1, noisy_copies, shifted_name = d_nn                             # the four names, in order
claims.claim(abs(below[held_out] - 0.5) < 0.1, "about half the held-out test images are nearer than tau ({b:.2f})",
             b=below[held_out], quick=False)
claims.claim(copies_of[noisy_copies] == 1.0 and copies_of[shifted_name] < 0.05 and below[shifted_name] < 0.8,
             "the noisy copies are all near-copies ({c:.2f}); copies shifted by one pixel pass as new (near-copies "
             "{s:.2f}, below tau {b:.2f})", c=copies_of[noisy_copies], s=copies_of[shifted_name], b=below[shifted_name])
claims.claim(copies_of[model_s1] < 0.02 and below[model_s1] < 0.8,
             "the model's samples look like the test images, not like copies: near-copies {c:.2f}, below tau {b:.2f} "
             "(test images {t:.2f})", c=copies_of[model_s1], b=below[model_s1], t=below[held_out], quick=False)

fig, ax = plt.subplots(figsize=(6.5, 3.4))
bins = np.linspace(0, max(d.max() for d in d_nn.values()), 40)
for name, d in d_nn.items():
    ax.hist(d, bins=bins, density=True, histtype="step", lw=1.5, label=f"{name} ({len(d)})")
ax.axvline(tau, color="k", ls="--", lw=1, label="tau (median of test images)")
ax.axvline(tau / 3, color="k", ls=":", lw=1, label="tau / 3 (near-copy)")
ax.set_xlabel("distance to the nearest training image (pixels, images in [0, 1])")
ax.set_ylabel("density")
ax.legend(fontsize=7)
fig.tight_layout()
viz.save(fig, args.out / "memorisation_hist.png")


def nearest_training_image(x):
    """The training image nearest to each of a few images x (k, 1, 28, 28): eq. (5), keeping the argmin.
    |x - r|^2 = |x|^2 - 2 x . r + |r|^2, and |x|^2 is the same for every r."""
    r = memo_train.reshape(len(memo_train), -1)                                   # (M, 784)
    d2 = (r * r).sum(axis=1)[None, :] - 2.0 * x.reshape(len(x), -1) @ r.T         # (k, M), up to |x|^2
    return memo_train[d2.argmin(axis=1)]


few = {"model (s = 1)": samples[1.0][:6], "copy machine": copies[:6]}
rows = []
for name, x in few.items():
    rows += [(name, x), ("nearest training", nearest_training_image(x))]
viz.save(viz.image_rows(rows), args.out / "nearest_neighbours.png")

# %% [markdown]
r"""
The noisy copies sit far below $\tau$ (every one a near-copy), yet their FD is as good as the floor's (section 6). The
check has a blind spot: copies shifted by one pixel are about as far from their originals, in pixels, as a new digit is,
and pass as new. (FD is not fooled by that one: MNIST digits are centred, and shifted ones are not.) The model's samples
look like the test images, with no bump near 0: this model does not copy. Nearest neighbours in pixel space only find
near-literal copies: a fuller check would also search in feature space and look at the pairs.

## 6. Why pictures are not enough

Three generators, $N$ images each. Which one would you ship? (`which_is_best.png`)
"""

# %%
generators = {
    "new test digits (a perfect generator)": (pool_x[:N], pool_y[:N]),
    "training images (the FD floor)": (train_x[copy_idx], train_y[copy_idx]),
    f"copy machine (noise {COPY_NOISE})": (copies, train_y[copy_idx]),
    "copies shifted by 1 pixel": (shifted_copies, train_y[copy_idx]),
    "new digits 0-4 only": first_classes(5),
    "new digits, blurred (sigma 1)": (blurred(pool_x[:N], 1.0), pool_y[:N]),
}
shown = {"A": "new digits 0-4 only", "B": f"copy machine (noise {COPY_NOISE})",
         "C": "new test digits (a perfect generator)"}
panels = [(f"generator {letter}", generators[name][0][rng.permutation(len(generators[name][0]))[:36]])
          for letter, name in shown.items()]                                      # 36 random images of each
fig = viz.image_grids(panels, ncol=6)
viz.save(fig, args.out / "which_is_best.png")

print(f"\n{'generator':>40} {'FD':>8} {'KID':>16} {'accuracy':>9} {'below tau':>10} {'copies':>7}   (n = {N}; "
      f"memorisation on {MEMO_N}; test images: below tau ~0.5)")
table = {}
for name, (x, y) in generators.items():
    f = judge.embed(x)
    kid = kernel_distance(f, ref_f, subset_size=N, n_subsets=KID_SUBSETS, rng=SEED)
    accuracy, _ = class_accuracy(judge.predict(x), y)
    m = memorization(x[:MEMO_N], memo_train, memo_x, rng=SEED)
    print(f"{name:>40} {frechet_distance(f, ref_f):8.2f} {kid[0]:8.3f} +- {kid[1]:5.3f} {accuracy:9.3f} "
          f"{m['samples_below']:10.2f} {m['samples_copies']:7.2f}")
    table[name] = dict(fd=frechet_distance(f, ref_f), accuracy=accuracy, below=m["samples_below"],
                       copies=m["samples_copies"])
print("generator A: digits 0-4 only; B: the copy machine; C: new test digits")
floor_6 = table["training images (the FD floor)"]["fd"]
A, B, C = (table[shown[k]] for k in "ABC")
shifted_6 = table["copies shifted by 1 pixel"]


def passes(g):
    # FD within 1.5 times the floor, the judge's accuracy >= 0.97, no more near-copies or nearness than test images
    return g["fd"] < 1.5 * floor_6 and g["accuracy"] >= 0.97 and g["copies"] < 0.05 and g["below"] < 0.8


claims.claim(A["accuracy"] >= 0.98 and A["fd"] > 5 * floor_6 and not passes(A),
             "A (digits 0-4 only) has near-perfect accuracy ({a:.3f}) and a bad FD ({f:.1f}, floor {fl:.1f})",
             a=A["accuracy"], f=A["fd"], fl=floor_6, quick=False)
claims.claim(B["fd"] < 1.5 * floor_6 and B["copies"] > 0.9 and not passes(B),
             "B (the copy machine) has an FD at the floor ({f:.1f}, floor {fl:.1f}) and fails the memorisation check "
             "({c:.0%} near-copies)", f=B["fd"], fl=floor_6, c=B["copies"], quick=False)
claims.claim(passes(C) and sum(passes(g) for g in table.values()) == 1,
             "only C passes everything: FD {f:.1f} (floor {fl:.1f}), accuracy {a:.3f}, near-copies {c:.2f}",
             f=C["fd"], fl=floor_6, a=C["accuracy"], c=C["copies"], quick=False)
claims.claim(shifted_6["fd"] > 2 * floor_6, "FD is not fooled by copies shifted by one pixel: {f:.1f} against the "
             "floor's {fl:.1f}", f=shifted_6["fd"], fl=floor_6, quick=False)
print(f"chapter 13 ran in {time.perf_counter() - start:.0f} s")

# %% [markdown]
r"""
The three grids all look like good MNIST digits (a careful eye may notice that A never draws a 5 to 9; nothing
gives B away). The table tells them apart: A (digits 0-4 only) has near-perfect
accuracy and a bad FD; B (the copy machine) has an FD at the floor and fails the memorisation check; only C passes
everything. Each failure is caught by a different number, and none by looking at a few dozen images. That is
why `tinydiff evaluate` prints all of them, each beside its floor:

- **FD / KID** against the test set, at a stated $n$, with the real-data floor at that $n$ (KID when $n$ is small);
- **accuracy** of the judge on the requested labels (conditional models);
- **memorisation**: samples nearer the training set than held-out test images are?

and why the judge's digest is fixed. Further reading: precision and recall for distributions (Sajjadi et al. 2018;
Kynkaanniemi et al. 2019) split FD's single number into fidelity and coverage; Stein et al. (2023) compare feature
extractors and find that Inception features under-rate modern diffusion models.
"""

# %%
claims.finish()   # every claim above was checked in this run: exit 1 if one failed
