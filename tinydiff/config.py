"""TrainConfig: every setting of a training run, one commented field each (``python -m tinydiff train`` has a flag
for every field, generated from this dataclass: ``n_train`` -> ``--n-train``, its help is the field's comment).

This module imports NumPy only (not the networks, not Numba), so that the command line can build its flags instantly.

    config = TrainConfig(data="moons", steps=3000)                  # points: the field defaults below
    config = TrainConfig.for_data("mnist", batch_size=32)            # images: MNIST_DEFAULTS, then your overrides
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path

from tinydiff.schedules import NoiseSchedule

from tinydiff.errors import TinydiffError

MODEL_KINDS = ("mlp", "unet")   # the keys of tinydiff.models.MODELS (tested to agree), without importing Numba


class ConfigError(TinydiffError, ValueError):
    """A setting that does not apply to the rest of the config (e.g. beta_end with the cosine schedule)."""


# ---- configuration -----------------------------------------------------------------------------------------------
@dataclass
class TrainConfig:
    # data
    data: str = "moons"            # a toy set (moons, swissroll, circles, 8gaussians, 25gaussians, checkerboard),
                                   # mnist, or a PATH.npy / PATH.csv of (N, D) points
    n_train: int = 20_000          # points drawn once from a toy set (a file uses all its rows; mnist: a random subset
                                   # of the 60,000 images)
    conditional: bool = False      # train eps(x, t, y) on a labelled toy set or mnist (for classifier-free guidance)
    label_dropout: float = 0.1     # with conditional: fraction of labels replaced by the null label
    latent: str | None = None      # mnist: PATH of an autoencoder.npz (train-autoencoder); the denoiser then learns
                                   # its scaled latents s mu(x) (latent diffusion) and sampling decodes them
    # diffusion
    T: int = 1000                  # diffusion steps
    schedule: str = "cosine"       # linear | cosine | sigmoid | scaled_linear (+ztsnr: zero terminal SNR); cosine
                                   # spends ~2x more steps than linear at low noise, which sharpens edges (checkerboard:
                                   # 0.93 vs 0.91 in support)
    max_beta: float = 0.1          # cosine only: cap on beta_t. Uncapped (0.999), the first DDPM step multiplies
                                   # eps errors by ~30 and a few samples fly off (0.1: by 0.1; alpha_bar_end 1e-4)
    beta_start: float | None = None  # linear and scaled_linear only: the first beta (None: the schedule's own)
    beta_end: float | None = None  # linear and scaled_linear only: the last beta (None: the schedule's own)
    prediction_type: str = "epsilon"  # what the network outputs: epsilon | sample | v_prediction
    sigma_min: float | None = None  # ncsn/edm: smallest noise level (None: the objective's, ncsn 0.01, edm 0.002)
    sigma_max: float | None = None  # ncsn/edm: largest noise level (None: ncsn 10, edm 80)
    sigma_data: float | None = None  # ncsn/edm: std of the standardised data (None: 1)
    # model (MLPDenoiser; defaults in the spirit of tanelp/tiny-diffusion, ~99k parameters)
    width: int = 128               # MLP hidden width
    n_blocks: int = 3              # MLP residual Linear+GELU blocks
    emb_dim: int = 128             # MLP: size of each sinusoidal embedding (time, and each coordinate)
    coord_scale: float = 25.0      # MLP: coordinates are multiplied by this before their sinusoids
    # optimisation
    steps: int = 8000              # optimiser steps (moons passes the quality bar with 4000; checkerboard needs ~8000)
    batch_size: int = 1024         # points (or images) per step
    lr: float = 3e-3               # peak learning rate
    min_lr: float = 2e-5           # learning rate at the end of the cosine decay
    warmup_steps: int = 100        # linear warm-up from lr/warmup_steps to lr
    weight_decay: float = 0.0      # AdamW's decoupled weight decay
    grad_clip: float = 1.0         # clip the global gradient norm to this
    ema_decay: float = 0.995       # EMA of the weights, used for sampling
    # bookkeeping
    seed: int = 0                  # seeds the data, the initial weights and every batch
    checkpoint_every: int = 1000   # write model.npz every this many steps (and at the end)
    log_every: int = 100           # steps per row of the loss-vs-t table
    loss_buckets: int = 20         # time-step buckets of the loss-vs-t table
    threads: int = 1               # cores for training: threads of the U-Net's Numba kernels; BLAS gets them
                                   # too for the MLP and 1 for the U-Net, unless --blas-threads is given. 2 on a
                                   # quiet 2-core machine: 0.56-0.71x the time of a U-Net step; 1 by default, the
                                   # same bits on any machine (docs/performance.md, "Threads")
    blas_threads: int = 1          # BLAS threads while training (small matmuls: 1 is fastest on a busy machine)
    max_loss_rise: float = 10.0    # stop when the loss (mean of the last 20 steps) exceeds this many times the
                                   # first step's: a learning rate that is too high. 0: never stop
    # images (data="mnist"): the UNet of tinydiff.models.unet
    model: str = "mlp"             # mlp (points) | unet (images)
    base_channels: int = 24        # UNet channels at full resolution (levels: 1x, 2x, 2x)
    # objective (tinydiff.objectives): what the network learns along which path
    objective: str = "ddpm"        # ddpm: eps/x0/v on the noise schedule; ncsn: denoising score matching on the VE
                                   # process (Song & Ermon 2019); edm: Karras et al. (2022); flow: flow matching, the
                                   # velocity of x_t = (1 - t) x0 + t eps (sampled with midpoint in t, 10 steps = 20
                                   # calls); see tinydiff.objectives
    coupling: str = "independent"  # flow only: pair data and noise independently, or by minibatch optimal transport (ot)
    reflow: int = 0                # flow only: rounds of rectified flow's reflow behind this model (0: trained on data)

    def __post_init__(self):
        check_ranges(self)

    @classmethod
    def for_data(cls, data: str, **overrides) -> "TrainConfig":
        """The config for ``data`` with its own defaults (:data:`MNIST_DEFAULTS` for mnist, then
        :data:`LATENT_DEFAULTS` with ``latent``; :data:`FLOW_POINT_DEFAULTS` for flow matching on points), then
        ``overrides``."""
        defaults = MNIST_DEFAULTS if str(data).lower() == "mnist" else \
            FLOW_POINT_DEFAULTS if overrides.get("objective") == "flow" else {}
        if str(data).lower() == "mnist" and overrides.get("latent"):
            defaults = {**defaults, **LATENT_DEFAULTS}
        return cls(**{**defaults, "data": data, **overrides})

    def model_layout(self) -> dict:
        """UNetConfig fields fixed by the data: a latent (Z, 7, 7) cannot be halved, so one level (LATENT_UNET)."""
        return dict(LATENT_UNET) if self.latent else {}

    def model_kwargs(self, dim: int, num_classes: int = 0) -> dict:
        """The MLPConfig fields of this run for points of dimension ``dim``."""
        return dict(dim=dim, width=self.width, n_blocks=self.n_blocks, emb_dim=self.emb_dim,
                    coord_scale=self.coord_scale, num_classes=num_classes)

    def schedule_kwargs(self) -> dict:
        """The keyword arguments of ``NoiseSchedule.from_name`` this config sets (max_beta for cosine, beta_start
        and beta_end for the linear schedules)."""
        base = self.schedule.partition("+")[0]
        given = {k: v for k, v in (("beta_start", self.beta_start), ("beta_end", self.beta_end)) if v is not None}
        if given and base not in ("linear", "scaled_linear"):
            flags = " and ".join("--" + name.replace("_", "-") for name in given)
            raise ConfigError(f"{flags} set the linear and scaled_linear schedules, not {base!r}: "
                              "drop them or pick --schedule linear")
        if base == "cosine":
            return {"max_beta": self.max_beta}
        return given

    def make_schedule(self) -> NoiseSchedule:
        return NoiseSchedule.from_name(self.schedule, self.T, **self.schedule_kwargs())

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


# ---- the range of every numeric setting ----------------------------------------------------------------------------
# field -> (test, what it expects). None (not given) always passes; the other fields are checked where they are used
# (a data set's name by the loader, a schedule's name by NoiseSchedule.from_name).
def _at_least(lo):
    return (lambda v: v >= lo), f"an integer >= {lo}"


_POSITIVE = (lambda v: 0 < v < math.inf), "a positive finite number"
_FRACTION = (lambda v: 0 <= v < 1), "a number in [0, 1)"
_NONNEGATIVE = (lambda v: 0 <= v < math.inf), "a finite number >= 0"
_BETA = (lambda v: 0 < v < 1), "a number in (0, 1)"

RANGES = {
    "n_train": _at_least(1), "label_dropout": _FRACTION, "T": _at_least(2), "max_beta": ((lambda v: 0 < v <= 1),
    "a number in (0, 1]"), "beta_start": _BETA, "beta_end": _BETA, "sigma_min": _POSITIVE, "sigma_max": _POSITIVE,
    "sigma_data": _POSITIVE, "width": _at_least(1), "n_blocks": _at_least(0), "emb_dim": ((lambda v: v >= 2 and v % 2 == 0),
    "an even integer >= 2"), "coord_scale": _POSITIVE, "steps": _at_least(1), "batch_size": _at_least(1),
    "lr": _POSITIVE, "min_lr": _NONNEGATIVE, "warmup_steps": _at_least(0), "weight_decay": _NONNEGATIVE,
    "grad_clip": _POSITIVE, "ema_decay": _FRACTION, "seed": _at_least(0), "checkpoint_every": _at_least(1),
    "log_every": _at_least(1), "loss_buckets": _at_least(1), "threads": _at_least(1), "blas_threads": _at_least(1),
    "max_loss_rise": _NONNEGATIVE, "base_channels": ((lambda v: v >= 8 and v % 8 == 0),
    "a multiple of 8 (GroupNorm's 8 groups must divide every level's channels)"), "reflow": _at_least(0),
}


def check_ranges(config: "TrainConfig") -> None:
    """ConfigError naming the flag, its value and what it expects, for the first setting out of its range, or for a
    pair that contradicts itself (min_lr above lr, sigma_min above sigma_max, beta_start above beta_end, a flow-only
    setting on another objective)."""
    for name, (ok, expected) in RANGES.items():
        value = getattr(config, name)
        if value is not None and not ok(value):
            raise ConfigError(f"--{name.replace('_', '-')} {value}: {name} must be {expected}")
    pairs = (("min_lr", "lr"), ("sigma_min", "sigma_max"), ("beta_start", "beta_end"))
    for low, high in pairs:
        lo, hi = getattr(config, low), getattr(config, high)
        if lo is not None and hi is not None and lo > hi:
            raise ConfigError(f"--{low.replace('_', '-')} {lo} is above --{high.replace('_', '-')} {hi}: "
                              f"the first must not exceed the second")
    if config.objective != "flow" and (config.coupling != "independent" or config.reflow):
        raise ConfigError(f"--coupling and --reflow apply to --objective flow, not {config.objective!r}")


@lru_cache(maxsize=None)
def field_help() -> dict[str, str]:
    """{field: its comment} for every TrainConfig field, read from this file (the comments above are the help of
    the `train` flags; a field's comment may continue on the lines below it)."""
    helps, name = {}, None
    for line in Path(__file__).read_text().splitlines():
        field = re.match(r"    (\w+): [^#]+#\s*(.*)$", line)
        more = re.match(r"\s{8,}#\s*(.*)$", line)
        if field:
            name, helps[field.group(1)] = field.group(1), field.group(2).strip()
        elif more and name:
            helps[name] += " " + more.group(1).strip()
        else:
            name = None
    return helps


# The field defaults above are tuned for 2D points. Images need other ones: a batch of 1024 digits would take ~15 s a
# step. These produced the shipped data/checkpoints/mnist_conditional.npz (README: command, time, quality).
MNIST_DEFAULTS = dict(
    model="unet", n_train=60_000, base_channels=24,
    steps=6000, batch_size=64, lr=1e-3, schedule="linear",   # linear: DDPM's choice for images (T = 1000)
    ema_decay=0.999, checkpoint_every=250,
)

# Flow matching on points learns the velocity of the linear interpolant in fewer steps than DDPM's eps (README: every
# toy set passes the MMD test with these at 20 model calls).
FLOW_POINT_DEFAULTS = dict(steps=4000)

# Latent diffusion (--latent AE_DIR/autoencoder.npz): the U-Net sees (4, 7, 7) latents, 16x fewer positions than 28 x 28
# pixels, so it can afford wider layers; 7 is odd, so the U-Net has a single level (ResBlocks and attention at 7 x 7).
LATENT_DEFAULTS = dict(base_channels=32)
LATENT_UNET = dict(channel_mults=(1,), num_res_blocks=2)
