"""Image metrics for generated MNIST digits: Frechet distance, KID, class accuracy and a memorisation check.

All of them look at images through the MNIST classifier (``tinydiff.models.classifier``): features f (B, 128) from its
penultimate layer for FD and KID, its predicted label for the accuracy of class-conditional samples. Pixels are used
only by the memorisation check. Each number means little alone: report it beside its FLOOR, the same metric between
two sets of real images of the same size (:func:`real_data_floor`), which is what a perfect generator would score.

Frechet distance (Heusel et al. 2017, "FID" with Inception features; here with the MNIST classifier's): fit a Gaussian
to each set of features and take the closed-form 2-Wasserstein distance between the two Gaussians (Dowson & Landau
1982), computed with eigendecompositions in ``metrics.points.gaussian_w2_squared``:

    FD = |mu_g - mu_r|^2 + tr(S_g + S_r - 2 (S_r^1/2 S_g S_r^1/2)^1/2)                              (1)

FD is biased upwards for small n (its sample covariances are noisy), so compare FDs only at the same n.

Kernel Inception Distance (Binkowski et al. 2018): the unbiased estimate of the squared MMD with the cubic polynomial
kernel, averaged over random subsets of m images from each set:

    k(a, b) = (a . b / d + 1)^3                                                                      (2)
    MMD^2_u = sum_{i != j} k(x_i, x_j) / (m (m - 1)) + sum_{i != j} k(y_i, y_j) / (m (m - 1))
              - 2 sum_{i, j} k(x_i, y_j) / m^2                                                       (3)

It is unbiased (zero on average for the same distribution, so it can come out slightly negative) and reliable at
small n, unlike FD.

Memorisation: a model that copies its training images scores a perfect FD. For each sample take the distance (in
pixels) to its nearest training image, d_NN(x) = min_i |x - x_i^train|. Held-out test images tell what "close" means
for an image the model has never seen: split the test images in two halves A and B, take tau = median of d_NN over
A, and compare the fraction of samples with d_NN < tau with the same fraction for B (about 0.5). A fraction well
above B's means samples sit closer to the training set than new digits do; ``copies`` counts near-duplicates
(d_NN < tau / 3).
"""

from __future__ import annotations

import numpy as np

from tinydiff.metrics.points import gaussian_w2_squared
from tinydiff.rng import make_rng


def _features(x, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"{name}: expected features of shape (N, D) with N >= 2, got {x.shape}. "
                         "Compute them with classifier.embed(images).")
    return x


# ---- Frechet distance --------------------------------------------------------------------------------------------
def gaussian_stats(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and covariance (D, D) (with 1/(N-1)) of features (N, D)."""
    f = _features(features, "gaussian_stats")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def frechet_distance_from_stats(mu1, cov1, mu2, cov2) -> float:
    """Eq. (1) from the two Gaussians' means and covariances."""
    return gaussian_w2_squared(mu1, cov1, mu2, cov2)


def frechet_distance(features_a, features_b) -> float:
    """Eq. (1) between Gaussians fitted to two sets of features (N_a, D) and (N_b, D)."""
    return frechet_distance_from_stats(*gaussian_stats(features_a), *gaussian_stats(features_b))


# ---- KID ---------------------------------------------------------------------------------------------------------
def polynomial_kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Eq. (2): k(a_i, b_j) = (a_i . b_j / d + 1)^3, (N_a, N_b)."""
    ### BEGIN SOLUTION ex13_2
    # returns: the kernel matrix (N_a, N_b) for a (N_a, D) and b (N_b, D)
    return (a @ b.T / a.shape[1] + 1.0) ** 3
    ### END SOLUTION


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Eq. (3) with the cubic polynomial kernel for x (m, D) and y (n, D) (the diagonals k(x_i, x_i) left out)."""
    m, n = len(x), len(y)
    ### BEGIN SOLUTION ex13_2: KID's unbiased MMD^2 — the cubic kernel (a . b / d + 1)^3 and eq. (3) without the diagonal terms k(x_i, x_i) (chapter 13, 3 points)
    # returns: a Python float (it can be slightly negative); x is (m, D), y is (n, D); use polynomial_kernel(a, b) -> (N_a, N_b)
    k_xx, k_yy, k_xy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    s_xx = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    s_yy = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return float(s_xx + s_yy - 2.0 * k_xy.mean())
    ### END SOLUTION


def kernel_distance(features_a, features_b, subset_size: int = 1000, n_subsets: int = 100,
                    rng=0) -> tuple[float, float]:
    """KID: mean and standard deviation of eq. (3) over ``n_subsets`` random subsets of ``subset_size`` from each set
    (without replacement within a subset; smaller sets use all their points)."""
    a, b = _features(features_a, "kernel_distance"), _features(features_b, "kernel_distance")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"kernel_distance: feature sizes differ ({a.shape[1]} and {b.shape[1]})")
    rng = make_rng(rng)
    m = min(subset_size, len(a), len(b))
    values = [mmd2_unbiased(a[rng.choice(len(a), m, replace=False)], b[rng.choice(len(b), m, replace=False)])
              for _ in range(n_subsets)]
    return float(np.mean(values)), float(np.std(values))


# ---- conditional accuracy ------------------------------------------------------------------------------------------
def class_accuracy(predicted, labels, num_classes: int = 10) -> tuple[float, np.ndarray]:
    """Overall accuracy and per-class accuracy (num_classes,) of predicted labels against the requested ones
    (NaN for a class with no samples). For class-conditional samples: predicted = classifier.predict(samples)."""
    predicted, labels = np.asarray(predicted), np.asarray(labels)
    if predicted.shape != labels.shape:
        raise ValueError(f"class_accuracy: {predicted.shape} predictions for {labels.shape} labels")
    correct = predicted == labels
    per_class = np.array([correct[labels == c].mean() if np.any(labels == c) else np.nan
                          for c in range(num_classes)])
    return float(correct.mean()), per_class


# ---- memorisation ---------------------------------------------------------------------------------------------
def nearest_distances(queries, reference, block: int = 1000) -> np.ndarray:
    """d_NN: Euclidean distance (N,) from each query image to its nearest reference image, in blocks of queries.

    |q - r|^2 = |q|^2 + |r|^2 - 2 q . r, so each block is one matrix product (float32, clipped at 0).
    """
    q = np.asarray(queries, dtype=np.float32).reshape(len(queries), -1)          # (N, P)
    r = np.asarray(reference, dtype=np.float32).reshape(len(reference), -1)      # (M, P)
    r2 = (r * r).sum(axis=1)                                                      # (M,)
    out = np.empty(len(q))
    for i in range(0, len(q), block):
        qb = q[i:i + block]
        d2 = (qb * qb).sum(axis=1)[:, None] + r2[None, :] - 2.0 * (qb @ r.T)    # (block, M)
        out[i:i + block] = np.sqrt(np.maximum(d2.min(axis=1), 0.0))
    return out


def memorization(samples, train, test, copy_ratio: float = 1 / 3, rng=0) -> dict:
    """Compare how close samples and held-out test images sit to the training set (see the module docstring).

    Returns a dict: ``tau`` (median d_NN of test half A), ``samples_below`` and ``test_below`` (fractions with
    d_NN < tau), ``samples_copies`` and ``test_copies`` (fractions with d_NN < copy_ratio tau), the medians of d_NN
    (``samples_median``, ``test_median``) and ``d_samples`` (N,), each sample's distance.
    """
    test = np.asarray(test)
    if len(test) < 4:
        raise ValueError(f"memorization: need at least 4 test images to split, got {len(test)}")
    order = make_rng(rng).permutation(len(test))
    half_a, half_b = test[order[: len(test) // 2]], test[order[len(test) // 2:]]
    d_samples, d_a, d_b = (nearest_distances(s, train) for s in (samples, half_a, half_b))
    tau = float(np.median(d_a))
    return dict(tau=tau, samples_below=float((d_samples < tau).mean()),
                test_below=float((d_b < tau).mean()),
                samples_copies=float((d_samples < copy_ratio * tau).mean()),
                test_copies=float((d_b < copy_ratio * tau).mean()),
                samples_median=float(np.median(d_samples)), test_median=float(np.median(d_b)), d_samples=d_samples)


# ---- the floor ------------------------------------------------------------------------------------------------
def real_data_floor(train_features, test_features, n: int, subset_size: int = 1000, n_subsets: int = 100,
                    rng=0) -> dict:
    """FD and KID of ``n`` random TRAINING images against the test set: what a perfect generator would score with
    ``n`` samples (FD's small-sample bias included). Returns {"fd": ..., "kid": (mean, std)}."""
    rng = make_rng(rng)
    train_features = _features(train_features, "real_data_floor")
    pick = train_features[rng.choice(len(train_features), min(n, len(train_features)), replace=False)]
    return {"fd": frechet_distance(pick, test_features),
            "kid": kernel_distance(pick, test_features, subset_size, n_subsets, rng)}


# ---- the report of `python -m tinydiff evaluate` ----------------------------------------------------------------
def image_report(images, classifier, test_x, test_features, train_x, labels=None, memo_test: int = 2000) -> dict:
    """FD and KID against ``test_features``, class accuracy (when ``labels`` (n,) are given) and memorisation of
    generated ``images`` (n, 1, 28, 28) in [0, 1], judged by ``classifier`` (``models.classifier``)."""
    feats = classifier.embed(images)
    report = {"fd": frechet_distance(feats, test_features), "kid": kernel_distance(feats, test_features)}
    if labels is not None:
        overall, per_class = class_accuracy(classifier.predict(images), labels)
        report.update(accuracy=overall, accuracy_per_class=per_class.tolist())
    mem = memorization(images, train_x, test_x[:memo_test])
    report["memorization"] = {k: v for k, v in mem.items() if k != "d_samples"}
    return report


def format_report(name: str, r: dict) -> str:
    """The lines `evaluate` prints for one :func:`image_report`."""
    m = r["memorization"]
    lines = [f"{name}: FD {r['fd']:.3f}   KID {r['kid'][0]:.5f} +- {r['kid'][1]:.5f}"]
    if "accuracy" in r:
        lines.append(f"  accuracy {r['accuracy']:.4f}; per class " +
                     " ".join(f"{c}:{a:.2f}" for c, a in enumerate(r["accuracy_per_class"])))
    lines.append(f"  memorisation: {m['samples_below']:.3f} of samples vs {m['test_below']:.3f} of test images closer "
                 f"to a training image than tau={m['tau']:.2f}; near-copies {m['samples_copies']:.4f} "
                 f"(test {m['test_copies']:.4f})")
    return "\n".join(lines)
