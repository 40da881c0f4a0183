"""Autoencoder: a small convolutional VAE that maps 28 x 28 digits to a 4 x 7 x 7 latent and back (Kingma & Welling
2014), the first stage of latent diffusion (Rombach et al. 2022, "High-Resolution Image Synthesis with Latent Diffusion
Models", section 3.1).

    encoder:  x (B, 1, 28, 28) in [-1, 1]
              -> Conv3x3 C, SiLU -> Conv3x3/2 2C, SiLU (14) -> Conv3x3/2 2C, SiLU (7) -> Conv3x3 2C, SiLU
              -> Conv1x1 2 Z  = [mu; log sigma^2]                                    (B, 2 Z, 7, 7)
    sample:   z = mu + sigma * eps,  eps ~ N(0, I)                                  (the reparameterisation trick)
    decoder:  z (B, Z, 7, 7)
              -> Conv3x3 2C, SiLU -> Conv3x3 2C, SiLU -> Upsample2, Conv3x3 C, SiLU (14)
              -> Upsample2, Conv3x3 C, SiLU (28) -> Conv3x3 1 = logits l             (B, 1, 28, 28)
    image:    x_hat = sigmoid(l)  in [0, 1]

The loss per image is the negative ELBO with the KL term weighted by a small beta (Rombach et al. use ~1e-6 on top of a
perceptual loss: the KL only keeps the latent from drifting to arbitrary scales, it does not make it N(0, I)):

    L = sum_pixels BCE(x, sigmoid(l)) + beta * KL(N(mu, sigma^2) || N(0, I))
    BCE(x, p)   = -x log p - (1 - x) log(1 - p)                 (x in [0, 1]: a pixel's "probability of ink")
    KL          = 1/2 sum_latent (mu^2 + sigma^2 - 1 - log sigma^2)

Gradients by hand (B images, the loss averaged over the batch):

    dL/dl        = (sigmoid(l) - x) / B                          (BCE with logits: the softmax-style cancellation)
    dL/dmu       = dL/dz + beta mu / B
    dL/dlogvar   = dL/dz * eps * sigma / 2 + beta (sigma^2 - 1) / (2 B)

Every layer is an existing one (Conv2d, SiLU, Upsample), each gradient-checked; :meth:`VAE.loss_and_backward` is
checked against finite differences of :meth:`VAE.loss` in tests/test_models_autoencoder.py.

The latent's scale factor (Rombach et al., appendix "scale factor"): after training, s = 1 / std(mu) over the training
images, so the diffusion model sees latents s z of unit variance, like the [-1, 1] pixels it was designed for.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from tinydiff.nn.activations import SiLU
from tinydiff.nn.conv import Conv2d, Upsample
from tinydiff.nn.module import Module, Sequential
from tinydiff.rng import make_rng

LOGVAR_RANGE = (-30.0, 20.0)   # log sigma^2 is clipped here (as in Rombach et al.'s code), so exp() never overflows


@dataclass
class AutoencoderConfig:
    in_channels: int = 1           # grey-scale MNIST
    base_channels: int = 16        # C: channels at 28 x 28 (2C at 14 and 7)
    latent_channels: int = 4       # Z: the latent is (Z, 7, 7): 196 numbers for 784 pixels (4x compression)
    kl_weight: float = 1e-3        # beta: the weight of the KL term against the summed per-pixel BCE

    def __post_init__(self):
        if min(self.in_channels, self.base_channels, self.latent_channels) < 1 or self.kl_weight < 0:
            raise ValueError(f"AutoencoderConfig: channels must be >= 1 and kl_weight >= 0, got {asdict(self)}")


def sigmoid(x):
    """1 / (1 + e^-x), without overflow for large |x|."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def bce_with_logits(l, x):
    """BCE(x, sigmoid(l)) per element, computed stably: max(l, 0) - l x + log(1 + e^-|l|)."""
    return np.maximum(l, 0) - l * x + np.log1p(np.exp(-np.abs(l)))


def gaussian_kl(mu, logvar):
    """KL(N(mu, sigma^2) || N(0, 1)) per element: (mu^2 + sigma^2 - 1 - log sigma^2) / 2."""
    return 0.5 * (mu * mu + np.exp(logvar) - 1.0 - logvar)


class Encoder(Sequential):
    """x (B, 1, 28, 28) in [-1, 1] -> moments (B, 2 Z, 7, 7) = [mu; log sigma^2] along channels."""

    def __init__(self, cfg: AutoencoderConfig, rng, dtype):
        C, kw = cfg.base_channels, dict(rng=rng, dtype=dtype)
        super().__init__(
            Conv2d(cfg.in_channels, C, 3, padding=1, **kw), SiLU(),                 # (B, C, 28, 28)
            Conv2d(C, 2 * C, 3, stride=2, padding=1, **kw), SiLU(),                 # (B, 2C, 14, 14)
            Conv2d(2 * C, 2 * C, 3, stride=2, padding=1, **kw), SiLU(),             # (B, 2C, 7, 7)
            Conv2d(2 * C, 2 * C, 3, padding=1, **kw), SiLU(),                       # (B, 2C, 7, 7)
            Conv2d(2 * C, 2 * cfg.latent_channels, 1, **kw))                        # (B, 2Z, 7, 7)


class Decoder(Sequential):
    """z (B, Z, 7, 7) -> logits (B, 1, 28, 28) (the image is their sigmoid)."""

    def __init__(self, cfg: AutoencoderConfig, rng, dtype):
        C, kw = cfg.base_channels, dict(rng=rng, dtype=dtype)
        super().__init__(
            Conv2d(cfg.latent_channels, 2 * C, 3, padding=1, **kw), SiLU(),         # (B, 2C, 7, 7)
            Conv2d(2 * C, 2 * C, 3, padding=1, **kw), SiLU(),                       # (B, 2C, 7, 7)
            Upsample(2), Conv2d(2 * C, C, 3, padding=1, **kw), SiLU(),              # (B, C, 14, 14)
            Upsample(2), Conv2d(C, C, 3, padding=1, **kw), SiLU(),                  # (B, C, 28, 28)
            Conv2d(C, cfg.in_channels, 3, padding=1, **kw))                         # (B, 1, 28, 28)


class VAE(Module):
    """The encoder, the decoder, and the latent scale factor s (1.0 until :meth:`fit_scale_factor`).

    Images go in and come out in [0, 1] (the data units of tinydiff's MNIST); inside, the encoder sees 2 x - 1."""

    kind = "autoencoder"

    def __init__(self, config: AutoencoderConfig | None = None, rng=0, dtype=np.float32, **fields):
        super().__init__()
        cfg = config if config is not None else AutoencoderConfig(**fields)
        rng = make_rng(rng)
        self.cfg, self.dtype = cfg, np.dtype(dtype)
        self.encoder, self.decoder = Encoder(cfg, rng, dtype), Decoder(cfg, rng, dtype)
        self.scale_factor = 1.0

    @property
    def latent_shape(self) -> tuple:
        """(Z, H / 4, W / 4) for 28 x 28 images: (Z, 7, 7)."""
        return (self.cfg.latent_channels, 7, 7)

    # ---- the two halves ---------------------------------------------------------------------------------------
    def encode(self, x):
        """Images (B, 1, 28, 28) in [0, 1] -> (mu, logvar), each (B, Z, 7, 7); logvar clipped to LOGVAR_RANGE."""
        x = np.asarray(x)
        if x.ndim != 4 or x.shape[1] != self.cfg.in_channels:
            raise ValueError(f"VAE.encode: expected images of shape (B, {self.cfg.in_channels}, 28, 28) in [0, 1], "
                             f"got {x.shape}")
        moments = self.encoder.forward(np.ascontiguousarray(2.0 * x - 1.0, dtype=self.dtype))    # (B, 2Z, 7, 7)
        Z = self.cfg.latent_channels
        self._logvar_raw = moments[:, Z:]
        return moments[:, :Z], np.clip(moments[:, Z:], *LOGVAR_RANGE)

    def decode_logits(self, z):
        """Latents (B, Z, 7, 7) -> logits (B, 1, 28, 28)."""
        return self.decoder.forward(np.ascontiguousarray(z, dtype=self.dtype))

    def decode(self, z):
        """Latents (B, Z, 7, 7) (unscaled) -> images (B, 1, 28, 28) float32 in [0, 1]."""
        return sigmoid(self.decode_logits(z)).astype(np.float32)

    def reconstruct(self, x, batch_size: int = 500):
        """x -> decode(mu(x)) in batches: the deterministic reconstruction (B, 1, 28, 28) in [0, 1]."""
        return np.concatenate([self.decode(self.encode(x[i:i + batch_size])[0])
                               for i in range(0, len(x), batch_size)])

    def encode_mean(self, x, batch_size: int = 500):
        """mu(x) (N, Z, 7, 7) in batches: the latents the diffusion model is trained on (before scaling)."""
        return np.concatenate([self.encode(x[i:i + batch_size])[0] for i in range(0, len(x), batch_size)])

    # ---- the loss and its gradient ----------------------------------------------------------------------------
    def loss(self, x, eps):
        """(L, recon, kl): L = mean_b [sum BCE + beta KL] for images x (B, 1, 28, 28) and noise eps (B, Z, 7, 7);
        recon and kl are the two per-image sums, averaged over the batch."""
        mu, logvar = self.encode(x)
        z = mu + np.exp(0.5 * logvar) * eps                                        # reparameterisation
        logits = self.decode_logits(z)
        B = len(x)
        recon = float(bce_with_logits(logits.astype(np.float64), x).sum() / B)
        kl = float(gaussian_kl(mu.astype(np.float64), logvar.astype(np.float64)).sum() / B)
        self._cache = (x, eps, mu, logvar, logits)
        return recon + self.cfg.kl_weight * kl, recon, kl

    def loss_and_backward(self, x, eps):
        """:meth:`loss`, then fill every parameter gradient with dL/dtheta (equations in the module docstring)."""
        out = self.loss(x, eps)
        x, eps, mu, logvar, logits = self._cache
        B, beta = len(x), self.cfg.kl_weight
        dlogits = (sigmoid(logits) - x) / B                                         # (B, 1, 28, 28)
        dz = self.decoder.backward(dlogits.astype(self.dtype))                      # (B, Z, 7, 7)
        ### BEGIN SOLUTION ex20_1: VAE backward through the sample and the KL — dL/dmu and dL/dlogvar from dz = dL/dz through z = mu + exp(logvar / 2) eps, plus beta times the gradients of the KL term averaged over the batch (chapter 20, 3 points)
        # defines: dmu, dlogvar, each (B, Z, 7, 7) like mu (dz, eps, mu, logvar: (B, Z, 7, 7); B, beta: ints/floats)
        sigma = np.exp(0.5 * logvar)
        dmu = dz + beta * mu / B
        dlogvar = dz * eps * 0.5 * sigma + beta * 0.5 * (sigma * sigma - 1.0) / B
        ### END SOLUTION
        inside = (self._logvar_raw >= LOGVAR_RANGE[0]) & (self._logvar_raw <= LOGVAR_RANGE[1])
        dmoments = np.concatenate([dmu, dlogvar * inside], axis=1)                  # the clip passes no gradient
        self.encoder.backward(dmoments.astype(self.dtype))
        return out

    # ---- the scale factor -------------------------------------------------------------------------------------
    def fit_scale_factor(self, x, batch_size: int = 500) -> float:
        """s = 1 / std(mu(x)) over every latent entry of the images x (Rombach et al.): s z has unit variance."""
        self.scale_factor = float(1.0 / np.std(self.encode_mean(x, batch_size).astype(np.float64)))
        return self.scale_factor

    def forward(self, x):
        return self.reconstruct(x)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in asdict(self.cfg).items()) + f", scale_factor={self.scale_factor:.4g}"


# ---- files -------------------------------------------------------------------------------------------------------
def autoencoder_arrays(vae: VAE) -> dict:
    """The arrays that store a VAE (weights, config, scale factor) under the ``autoencoder/`` prefix, so they can sit
    in their own autoencoder.npz or inside a latent denoiser's model.npz."""
    from tinydiff import checkpoint as ckpt

    arrays = {f"autoencoder/{k}": v for k, v in vae.state_dict().items()}
    arrays["autoencoder_meta/config"] = ckpt.json_array(asdict(vae.cfg))
    arrays["autoencoder_meta/scale_factor"] = np.array(vae.scale_factor, dtype=np.float64)
    return arrays


def autoencoder_from_arrays(arrays: dict, where="the checkpoint") -> VAE:
    """The VAE stored by :func:`autoencoder_arrays` in ``arrays`` (a loaded checkpoint)."""
    from tinydiff import checkpoint as ckpt

    if "autoencoder_meta/config" not in arrays:
        raise ckpt.CheckpointError(f"{where} holds no autoencoder: make one with `python -m tinydiff "
                                   "train-autoencoder --data mnist --out AE_DIR`")
    vae = VAE(AutoencoderConfig(**ckpt.from_json_array(arrays["autoencoder_meta/config"])))
    vae.load_state_dict(ckpt.group(arrays, "autoencoder"))
    vae.scale_factor = float(arrays["autoencoder_meta/scale_factor"])
    vae.eval()
    return vae


def load_autoencoder(path) -> VAE:
    """The VAE in an autoencoder.npz (from ``train-autoencoder``) or in a latent denoiser's model.npz."""
    from tinydiff import checkpoint as ckpt

    return autoencoder_from_arrays(ckpt.load_checkpoint(path), where=str(path))
