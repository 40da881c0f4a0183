"""MNISTClassifier: the small CNN that judges generated digits (features for the Frechet distance, labels for accuracy).

Image metrics need a network that already "sees" digits: FID uses Inception-v3's pool features (Heusel et al. 2017),
which is far too big for tinydiff, and it was trained on ImageNet, not on digits. A small CNN trained on MNIST is the
usual stand-in for MNIST generators. Ours:

    h1 = AvgPool2(ReLU(GroupNorm(Conv3x3(x))))          (B, 16, 14, 14)
    h2 = AvgPool2(ReLU(GroupNorm(Conv3x3(h1))))         (B, 32, 7, 7)
    f  = ReLU(W_f flatten(h2) + b_f)                    (B, 128)       the penultimate features ("features(x)")
    z  = W_z f + b_z                                    (B, 10)        logits

trained with softmax cross-entropy (below) and light augmentation (random shifts of up to 2 pixels). Its weights ship
in ``data/classifier/mnist_classifier.npz``; ``load_classifier()`` checks the file's SHA-256 against
``CLASSIFIER_SHA256``, so every user's FD and KID are computed with the same judge and can be compared.
Reproduce the file with ``python -m tinydiff train-classifier --out data/classifier/mnist_classifier.npz``
(docs/mnist.md records the time and the test accuracy). BLAS rounding differs between machines, so a retrained file
has the same accuracy but not the same bytes: pass its digest, or ``verify=False``.
"""

from __future__ import annotations

import hashlib
import time
import zipfile
from pathlib import Path

import numpy as np

from tinydiff.errors import ClassifierError  # noqa: F401  (defined in errors.py, re-exported here)
from tinydiff.nn.activations import ReLU
from tinydiff.nn.conv import AvgPool2d, Conv2d
from tinydiff.nn.linear import Linear
from tinydiff.nn.module import Module, Sequential
from tinydiff.nn.norm import GroupNorm
from tinydiff.nn.optim import AdamW, warmup_cosine_lr
from tinydiff.rng import make_rng

CLASSIFIER_PATH = Path(__file__).resolve().parents[2] / "data" / "classifier" / "mnist_classifier.npz"
# SHA-256 of the shipped file's bytes (docs/mnist.md records how it was trained)
CLASSIFIER_SHA256 = "0566c406b144ed42e22a93981e49eba48d5fe735298fc865d8117c93f9ecb629"
RETRAIN = "python -m tinydiff train-classifier --out data/classifier/mnist_classifier.npz"


# ---- the network -------------------------------------------------------------------------------------------------
class MNISTClassifier(Module):
    """x: (B, 1, 28, 28) float in [0, 1] -> logits (B, 10); ``features(x)`` -> (B, feature_dim), the ReLU features
    before the last layer. Backward (training only) returns dL/dx."""

    def __init__(self, channels=(16, 32), feature_dim: int = 128, num_classes: int = 10, rng=0, dtype=np.float32):
        super().__init__()
        rng = make_rng(rng)
        c1, c2 = channels
        self.dtype, self.feature_dim = np.dtype(dtype), feature_dim
        self.config = dict(channels=list(channels), feature_dim=feature_dim, num_classes=num_classes)
        self.conv = Sequential(
            Conv2d(1, c1, 3, padding=1, rng=rng, dtype=dtype), GroupNorm(4, c1, dtype=dtype), ReLU(), AvgPool2d(2),
            Conv2d(c1, c2, 3, padding=1, rng=rng, dtype=dtype), GroupNorm(8, c2, dtype=dtype), ReLU(), AvgPool2d(2),
        )
        self.fc = Linear(c2 * 7 * 7, feature_dim, rng=rng, dtype=dtype)
        self.fc_act = ReLU()
        self.head = Linear(feature_dim, num_classes, rng=rng, dtype=dtype)

    def _check(self, x):
        x = np.asarray(x)
        if x.ndim != 4 or x.shape[1:] != (1, 28, 28):
            raise ValueError(f"MNISTClassifier expects images of shape (B, 1, 28, 28), got {x.shape}. "
                             "For (B, 28, 28) use x[:, None]; images must be in [0, 1] like load_mnist_float's.")
        return np.ascontiguousarray(x, dtype=self.dtype)

    def features(self, x):
        """Penultimate features f (B, feature_dim): what the Frechet distance and KID compare."""
        h = self.conv.forward(self._check(x))                            # (B, c2, 7, 7)
        self._h_shape = h.shape
        return self.fc_act.forward(self.fc.forward(h.reshape(len(h), -1)))   # (B, feature_dim)

    def forward(self, x):
        return self.head.forward(self.features(x))                       # (B, 10) logits

    def backward(self, grad_output):
        df = self.fc.backward(self.fc_act.backward(self.head.backward(grad_output)))   # (B, c2 7 7)
        return self.conv.backward(df.reshape(self._h_shape))             # (B, 1, 28, 28)

    def predict(self, x, batch_size: int = 500) -> np.ndarray:
        """Predicted class (N,) for images (N, 1, 28, 28), in batches."""
        return np.concatenate([self.forward(x[i:i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)])

    def embed(self, x, batch_size: int = 500) -> np.ndarray:
        """features() for many images, in batches: (N, feature_dim) float64."""
        return np.concatenate([self.features(x[i:i + batch_size]).astype(np.float64)
                               for i in range(0, len(x), batch_size)])


# ---- loss ----------------------------------------------------------------------------------------------------------
def cross_entropy(logits, labels):
    """Mean softmax cross-entropy and its gradient.

        p = softmax(z),   L = -(1/B) sum_b log p[b, y_b],   dL/dz = (p - onehot(y)) / B
    """
    z = logits - logits.max(axis=1, keepdims=True)                       # softmax is shift-invariant
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))             # (B, K)
    B = len(labels)
    loss = -log_p[np.arange(B), labels].mean()
    dz = np.exp(log_p)
    dz[np.arange(B), labels] -= 1
    return float(loss), (dz / B).astype(logits.dtype)


def random_shift(x, max_shift: int, rng) -> np.ndarray:
    """Shift each image by (dy, dx) in [-max_shift, max_shift]^2 pixels, filling with 0 (background)."""
    B, C, H, W = x.shape
    m = max_shift
    padded = np.pad(x, ((0, 0), (0, 0), (m, m), (m, m)))                  # (B, C, H + 2m, W + 2m)
    dy, dx = rng.integers(0, 2 * m + 1, size=(2, B))
    out = np.empty_like(x)
    for b in range(B):
        out[b] = padded[b, :, dy[b]:dy[b] + H, dx[b]:dx[b] + W]
    return out


# ---- training --------------------------------------------------------------------------------------------------------
def accuracy(model: MNISTClassifier, x, labels, batch_size: int = 500) -> float:
    return float((model.predict(x, batch_size) == np.asarray(labels)).mean())


def train_classifier(x_train, y_train, x_test=None, y_test=None, epochs: int = 3, batch_size: int = 128,
                     lr: float = 2e-3, weight_decay: float = 1e-4, max_shift: int = 2, rng=0, log=print):
    """Train an MNISTClassifier with AdamW (warm-up + cosine learning rate) on float images in [0, 1].

    Returns (model, history) with history = {"loss": [...], "test_accuracy": [...per epoch], "seconds": total}.
    """
    rng = make_rng(rng)
    model = MNISTClassifier(rng=rng)
    opt = AdamW(model.parameters(), model.gradients(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = len(x_train) // batch_size
    total = epochs * steps_per_epoch
    history = {"loss": [], "test_accuracy": []}
    start = time.perf_counter()
    for epoch in range(epochs):
        order = rng.permutation(len(x_train))
        for i in range(steps_per_epoch):
            idx = order[i * batch_size:(i + 1) * batch_size]
            xb = random_shift(x_train[idx], max_shift, rng) if max_shift else x_train[idx]
            loss, dz = cross_entropy(model.forward(xb), y_train[idx])
            model.backward(dz)
            opt.lr = warmup_cosine_lr(opt.step_count, lr, warmup_steps=100, total_steps=total)
            opt.step()
            history["loss"].append(loss)
            if log and i % 100 == 0:
                seconds = time.perf_counter() - start
                log(f"epoch {epoch + 1} step {i}/{steps_per_epoch} loss {loss:.4f} ({seconds:.0f} s)")
        if x_test is not None:
            acc = accuracy(model, x_test, y_test)
            history["test_accuracy"].append(acc)
            if log:
                log(f"epoch {epoch + 1}: test accuracy {acc:.4f} ({time.perf_counter() - start:.0f} s)")
    history["seconds"] = time.perf_counter() - start
    return model, history


# ---- saving and loading (with a digest) ----------------------------------------------------------------------------
def save_classifier(model: MNISTClassifier, path) -> str:
    """Write the weights (float32) and config to ``path`` (.npz, no pickle); return the file's SHA-256."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {k: v.astype(np.float32) for k, v in model.state_dict().items()}
    arrays["config.channels"] = np.array(model.config["channels"])
    arrays["config.feature_dim"] = np.array(model.config["feature_dim"])
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(path)
    return file_sha256(path)


def file_sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_classifier(path=None, sha256: str | None = "default", verify: bool = True) -> MNISTClassifier:
    """The trained judge, in eval mode. ``path`` defaults to the shipped file, whose digest must be CLASSIFIER_SHA256.

    For a file of your own pass its ``sha256`` (or ``verify=False`` to skip the check).
    """
    path = Path(path) if path is not None else CLASSIFIER_PATH
    if sha256 == "default":
        sha256 = CLASSIFIER_SHA256 if path == CLASSIFIER_PATH else None
    if not path.exists():
        raise ClassifierError(f"no classifier weights at {path}. Train them with `{RETRAIN}` (a few minutes).")
    if verify and sha256 is not None:
        got = file_sha256(path)
        if got != sha256:
            raise ClassifierError(
                f"{path} has SHA-256 {got}, expected {sha256}: the file is corrupt or was retrained. Metrics computed "
                f"with another judge are not comparable. Restore it (git checkout {path.name}), or retrain with "
                f"`{RETRAIN}` and pass sha256=<its digest> (or verify=False)."
            )
    try:
        with np.load(path, allow_pickle=False) as f:
            state = {k: f[k] for k in f.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise ClassifierError(f"{path} is not readable classifier weights ({type(err).__name__}); it is corrupt or "
                              f"another kind of file. Retrain with `{RETRAIN}`") from None
    if "config.channels" not in state or "config.feature_dim" not in state:
        what = ("a tinydiff model checkpoint (give it as --checkpoint)" if "meta/config" in state
                else "a .npz without config.channels and config.feature_dim")
        raise ClassifierError(f"{path} is not MNIST classifier weights: it is {what}. The classifier is "
                              f"data/classifier/mnist_classifier.npz, or your own from `{RETRAIN}`")
    model = MNISTClassifier(channels=tuple(int(c) for c in state.pop("config.channels")),
                            feature_dim=int(state.pop("config.feature_dim")))
    model.load_state_dict(state)
    return model.eval()
