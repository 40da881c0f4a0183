"""Training the VAE of latent diffusion: batches of digits -> loss_and_backward -> clip -> AdamW (warm-up + cosine lr).

    config = AutoencoderTrainConfig(steps=700)
    vae = train_autoencoder(config, out_dir="runs/ae")    # writes runs/ae/autoencoder.npz (atomically) at the end

After the last step the latent scale factor s = 1 / std(mu) is fitted on (up to 10,000 of) the training images and
stored with the weights, the loss log and the training time.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from tinydiff.errors import TinydiffError

# this module imports NumPy only at the top (the networks and Numba load inside the functions), so that the command
# line can build the train-autoencoder flags from AutoencoderTrainConfig instantly


class AutoencoderDiverged(TinydiffError, FloatingPointError):
    """The autoencoder's loss or gradient norm became NaN or inf."""


@dataclass
class AutoencoderTrainConfig:
    data: str = "mnist"            # only mnist for now
    n_train: int = 60_000          # training images (a random subset of the 60,000)
    base_channels: int = 16        # C of the encoder and decoder (AutoencoderConfig)
    latent_channels: int = 4       # Z: latents are (Z, 7, 7)
    kl_weight: float = 1e-3        # beta of the KL term (small, as in Rombach et al. 2022)
    steps: int = 700               # AdamW steps (8 min on a shared 2-core machine at load ~15; the shipped VAE)
    batch_size: int = 64           # images per step
    lr: float = 2e-3               # peak learning rate
    min_lr: float = 1e-4           # learning rate at the end of the cosine decay
    warmup_steps: int = 50         # linear warm-up
    grad_clip: float = 100.0       # clip the global gradient norm (the loss is a per-image sum over 784 pixels)
    seed: int = 0                  # data subset, weights, batches and the reparameterisation noise
    blas_threads: int = 1          # BLAS threads while training

    def model_config(self):
        """The :class:`tinydiff.models.autoencoder.AutoencoderConfig` of this run."""
        from tinydiff.models.autoencoder import AutoencoderConfig

        return AutoencoderConfig(base_channels=self.base_channels, latent_channels=self.latent_channels,
                                 kl_weight=self.kl_weight)


def load_images(split: str, n: int | None = None, rng=None):
    """MNIST images (N, 1, 28, 28) float32 in [0, 1] and labels (N,); a random subset of n with ``rng``."""
    from tinydiff.data.mnist import load_mnist_float

    x, y = load_mnist_float(split=split)
    if n is not None and n < len(x):
        keep = np.sort(rng.choice(len(x), n, replace=False))
        x, y = x[keep], y[keep]
    return x, y


def evaluate_autoencoder(vae, x) -> dict:
    """Mean squared error and mean absolute error per pixel of decode(mu(x)) against x, both in [0, 1] units."""
    r = vae.reconstruct(x).astype(np.float64)
    return {"mse": float(np.mean((r - x) ** 2)), "mae": float(np.mean(np.abs(r - x)))}


def train_autoencoder(config: AutoencoderTrainConfig, out_dir=None, progress: bool = True,
                      x_train=None):
    """Train a VAE on MNIST (or on ``x_train`` (N, 1, 28, 28) in [0, 1] if given); fit its scale factor; save it.
    Returns the :class:`tinydiff.models.autoencoder.VAE` (in eval mode)."""
    from tqdm.auto import tqdm

    from tinydiff.models.autoencoder import VAE
    from tinydiff.nn.optim import AdamW, clip_grad_norm, warmup_cosine_lr
    from tinydiff.threads import blas_threads

    c = config
    data_rng, rng = np.random.default_rng(c.seed).spawn(2)
    x = load_images("train", c.n_train, data_rng)[0] if x_train is None else np.asarray(x_train, np.float32)
    vae = VAE(c.model_config(), rng=c.seed)
    opt = AdamW(vae.parameters(), vae.gradients(), lr=c.lr)
    losses, seconds = [], 0.0
    with blas_threads(c.blas_threads), tqdm(total=c.steps, desc="autoencoder", disable=not progress) as bar:
        for k in range(c.steps):
            t0 = time.perf_counter()
            xb = x[rng.integers(0, len(x), c.batch_size)]                                 # (B, 1, 28, 28)
            eps = rng.standard_normal((c.batch_size, *vae.latent_shape), dtype=np.float32)  # (B, Z, 7, 7)
            loss, recon, kl = vae.loss_and_backward(xb, eps)
            norm = clip_grad_norm(vae.gradients(), c.grad_clip)
            if not (math.isfinite(loss) and math.isfinite(norm)):
                raise AutoencoderDiverged(f"autoencoder training diverged at step {k} (loss {loss}, gradient norm "
                                          f"{norm}): lower --lr (now {c.lr:g})")
            opt.lr = warmup_cosine_lr(k, c.lr, c.warmup_steps, c.steps, c.min_lr)
            opt.step()
            seconds += time.perf_counter() - t0
            losses.append((loss, recon, kl))
            bar.update(1)
            if k % 25 == 0:
                bar.set_postfix(bce=f"{recon:.1f}", kl=f"{kl:.1f}")
        vae.eval()
        vae.fit_scale_factor(x[:10_000])
    vae.train_log = np.array(losses)                    # (steps, 3): loss, recon (BCE sum), KL sum per image
    vae.train_seconds = seconds
    if out_dir is not None:
        save_autoencoder(vae, config, Path(out_dir) / "autoencoder.npz")
    return vae


def save_autoencoder(vae, config: AutoencoderTrainConfig, path) -> Path:
    """autoencoder.npz: the weights, config and scale factor, the training log and time (atomic write)."""
    from tinydiff import checkpoint as ckpt
    from tinydiff.models.autoencoder import autoencoder_arrays

    arrays = autoencoder_arrays(vae)
    arrays["meta/config"] = ckpt.json_array(asdict(config))
    arrays["meta/kind"] = ckpt.json_array("autoencoder")
    arrays["log/losses"] = np.asarray(getattr(vae, "train_log", np.zeros((0, 3))))
    arrays["log/seconds"] = np.array(getattr(vae, "train_seconds", 0.0))
    return ckpt.save_checkpoint(path, arrays)
