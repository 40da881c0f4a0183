"""TrainedDenoiser: a trained model that knows what it is, and samples itself.

A network alone is not enough to draw from: the sampler must also know the noising process it was trained on, what
the network outputs (eps, x0 or v), how the data were scaled, and which label means "no condition". A checkpoint
stores all of it; :func:`load_trained` gathers it into one object, so no caller passes those by hand::

    from tinydiff.trained import load_trained

    m = load_trained("data/checkpoints/8gaussians.npz")       # EMA weights by default
    x = m.sample(1000, rng=0)                                  # (1000, 2) float64 points, in data units
    m = load_trained("data/checkpoints/mnist_conditional.npz")
    digits = m.sample(16, label=7, rng=0)                      # (16, 1, 28, 28) float32 in [0, 1]

``.sample`` calls the low-level :func:`tinydiff.samplers.sample` (which takes any callable ``model(x_t, t[, y])``),
with the defaults of its kind (points: the whole DDPM chain; images: 50 DDIM steps, guidance 2) on the threads that
pay for the kind (points: one BLAS thread; images: the U-Net's kernels on every core, BLAS on one), and maps the
result back to data units.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from tinydiff.config import TrainConfig
from tinydiff.data.toy2d import Standardizer
from tinydiff.errors import TinydiffError
from tinydiff.schedules import NoiseSchedule

# Unless told otherwise. Points: the full DDPM chain (1000 steps of the small MLP take well under a second). Images: a
# UNet call costs a few ms per image, so DDIM in 50 steps, and guidance 2 for a conditional model: on the shipped
# checkpoint s = 1 / 2 / 3 gave 93.9 / 99.9 / 100 % recognisable digits at FD 1.2x / 4.2x / 7.7x the real-data floor
# (README, MNIST), so 2 buys nearly all of the fidelity for the least diversity.
POINT_DEFAULTS = dict(sampler="ddpm", steps=None, guidance=1.0)
IMAGE_DEFAULTS = dict(sampler="ddim", steps=50, guidance=2.0)

# Sampling in batches. Each block of RNG_BLOCK samples draws its noise from its own stream, so the samples do not
# depend on the batch size (batches are whole blocks). BATCH_DEFAULTS: samples per sampler call unless told, lowered
# to what fits in memory (measured: ~2 KB per point for the MLP, ~17 MB per image for the U-Net; tinydiff.memory).
RNG_BLOCK = {"points": 256, "images": 1}
BATCH_DEFAULTS = {"points": 8192, "images": 32}


class LabelError(TinydiffError, ValueError):
    """A label was given to an unconditional model, or is outside 0..num_classes-1."""


@dataclass
class TrainedDenoiser:
    """A trained network with everything needed to use it.

    network:          the denoiser, callable as ``network(x_t, t[, y])`` on standardised data (EMA weights by default);
                      for flow matching a :class:`tinydiff.flow.FlowNetwork` (t in [0, 1], the network sees 1000 t)
    process:          the noising process it was trained on: x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps,
                      a discrete VP :class:`NoiseSchedule` (also reachable as ``.schedule``), or for flow matching
                      the linear interpolant x_t = (1 - t) x0 + t eps (:mod:`tinydiff.processes`)
    prediction_type:  what the network outputs: "epsilon", "sample" (x0), "v_prediction", or "velocity" (flow)
    standardizer:     data units <-> the units the network sees: x_std = (x - mean) / std
    config:           the full TrainConfig of the run, as stored (``inferred`` names fields the file lacked)
    objective:        the training objective (tinydiff.objectives): "ddpm" (the simple loss of Ho et al. 2020),
                      "flow" (flow matching), or "ncsn" / "edm", whose ``network`` is the trained F seen through its
                      preconditioning (:class:`tinydiff.preconditioning.Preconditioned`, on a continuous ``process``)
    path, step:       the checkpoint it came from and the optimiser step it was saved at
    command:          the command line that made it (None for checkpoints older than this field)
    inferred:         config fields the checkpoint did not store, with how their value was found
    autoencoder:      latent diffusion: the VAE whose scaled latents the network denoises (None in pixel space);
                      ``.sample`` then decodes, so it returns images like a pixel model
    """

    network: object
    process: NoiseSchedule
    prediction_type: str
    standardizer: Standardizer
    config: TrainConfig = field(default_factory=TrainConfig)
    objective: str = "ddpm"
    path: Path | None = None
    step: int | None = None
    command: str | None = None
    inferred: dict = field(default_factory=dict)
    autoencoder: object = None

    # ---- what it is -------------------------------------------------------------------------------------------
    @property
    def schedule(self) -> NoiseSchedule:
        """The discrete VP schedule (betas, alpha_bar) of ``process``."""
        if not isinstance(self.process, NoiseSchedule):
            raise AttributeError(f"this model's process is a {type(self.process).__name__}, not a discrete "
                                 "NoiseSchedule: use .process")
        return self.process

    @property
    def num_classes(self) -> int:
        """K for a class-conditional model (labels 0..K-1), 0 for an unconditional one."""
        return int(getattr(self.network, "num_classes", 0))

    @property
    def null_label(self) -> int | None:
        """The label meaning "no condition" (K), or None for an unconditional model."""
        return getattr(self.network, "null_label", None) if self.num_classes else None

    @property
    def kind(self) -> str:
        """"images" for a network with a ``sample_shape`` (the U-Net), else "points"."""
        return "images" if hasattr(self.network, "sample_shape") else "points"

    @property
    def data_shape(self) -> tuple:
        """The shape of what the network denoises: (D,) for points, (C, H, W) for images, (Z, 7, 7) for latents."""
        return tuple(self.network.sample_shape) if self.kind == "images" else (self.network.dim,)

    @property
    def output_shape(self) -> tuple:
        """The shape of one sample in data units: ``data_shape``, except for a latent model, whose samples are
        decoded to images (C, 28, 28)."""
        if self.autoencoder is not None:
            return (self.autoencoder.cfg.in_channels, 28, 28)
        return self.data_shape

    @property
    def sampling_defaults(self) -> dict:
        """sampler, steps and guidance used when ``.sample`` is not told (:data:`POINT_DEFAULTS` or
        :data:`IMAGE_DEFAULTS`; a flow model: its objective's sampler and steps, midpoint in t x 10 = 20 calls)."""
        how = dict(IMAGE_DEFAULTS if self.kind == "images" else POINT_DEFAULTS)
        if self.objective != "ddpm":
            from tinydiff.objectives import get_objective

            o = get_objective(self.objective)
            how.update(sampler=o.sampler, steps=o.steps)
        return how

    @classmethod
    def of(cls, network, schedule, config, **fields) -> "TrainedDenoiser":
        """The trained object of a bare network and its run's config: for ncsn and edm the network is wrapped in its
        preconditioning (D = c_skip x + c_out F(c_in x; c_noise)) on the objective's continuous process."""
        from tinydiff.objectives import get_objective

        objective = get_objective(config.objective)
        if objective.precondition is None:
            return cls(network=network, process=schedule, prediction_type=config.prediction_type, config=config,
                       objective=objective.name, **fields)
        from tinydiff.preconditioning import Preconditioned

        pre = objective.precondition(config)
        return cls(network=Preconditioned(network, pre), process=pre.process(), prediction_type=pre.prediction_type,
                   config=config, objective=objective.name, **fields)

    def __call__(self, x_t, t, y=None):
        """The raw network output on standardised x_t (so the object can stand in for its network)."""
        return self.network(x_t, t) if y is None else self.network(x_t, t, y)

    def __repr__(self) -> str:
        where = f" from {self.path} (step {self.step})" if self.path is not None else ""
        labels = f", {self.num_classes} classes" if self.num_classes else ""
        space = (f"latents {self.data_shape} of a VAE" if self.autoencoder is not None
                 else f"{self.kind} {self.data_shape}")
        return (f"TrainedDenoiser({type(self.network).__name__}, {space}{labels}, "
                f"{self.objective}/{self.prediction_type}, {type(self.process).__name__}{where})")

    # ---- predictions ------------------------------------------------------------------------------------------
    def predict_x0_and_eps(self, x_t, t, y=None):
        """(x0_hat, eps_hat) for standardised x_t at integer steps t (B,), whatever the network predicts
        (:func:`tinydiff.diffusion.predict_x0_and_eps`)."""
        from tinydiff.diffusion import predict_x0_and_eps

        t = np.broadcast_to(np.asarray(t), (len(x_t),))
        out = np.asarray(self(x_t, t, y), dtype=np.float64)
        return predict_x0_and_eps(self.process, x_t, t, out, self.prediction_type)

    def denoise(self, x_t, t, y=None):
        """E[x0 | x_t] as the network estimates it, in standardised units (the first of :meth:`predict_x0_and_eps`)."""
        return self.predict_x0_and_eps(x_t, t, y)[0]

    def denoising_field(self, ts, lim: float = 3.0, grid: int = 21):
        """-eps_theta(x, t) on a grid of standardised 2D points: (gx, gy) (G, G) and u, v (len(ts), G, G).

        -eps_theta / sqrt(1 - alpha_bar_t) is the learned score grad log q_t(x): the arrows point towards the data."""
        gx, gy = np.meshgrid(np.linspace(-lim, lim, grid), np.linspace(-lim, lim, grid))  # (G, G) each
        pts = np.stack([gx.ravel(), gy.ravel()], axis=1)                                      # (G G, 2)
        uv = np.stack([-self.predict_x0_and_eps(pts, np.full(len(pts), t))[1] for t in ts])  # (S, G G, 2)
        return gx, gy, uv[..., 0].reshape(len(ts), grid, grid), uv[..., 1].reshape(len(ts), grid, grid)

    # ---- sampling ---------------------------------------------------------------------------------------------
    def _labels(self, label, n: int):
        if label is None:
            return None
        if not self.num_classes:
            raise LabelError("a label needs a class-conditional model (trained with --conditional); this one is "
                             "unconditional")
        y = np.broadcast_to(np.asarray(label, dtype=np.int64), (n,))
        if y.min() < 0 or y.max() >= self.num_classes:
            raise LabelError(f"labels must be in 0..{self.num_classes - 1}, got {np.unique(y)}")
        return y

    def sample(self, n: int, label=None, sampler: str | None = None, steps: int | None = None,
               guidance: float | None = None, clip=None, rng=0, batch_size: int | None = None,
               return_trajectory: bool = False, progress: bool = False, threads: int | str | None = "auto",
               x_T=None, churn: float | None = None, **options):
        """n samples in DATA units: points (n, D) float64, images (n, C, H, W) float32 clipped to [0, 1].

        label:      None, one int, or (n,) ints (a conditional model; None draws unconditionally)
        sampler, steps, guidance: default to :attr:`sampling_defaults`; guidance is the classifier-free scale s
                    (1 = the conditional model), used only with labels
        clip:       None, c (clip each x0 estimate to [-c, c] in standardised units) or "dynamic"
        rng:        seed (or Generator) of the start noise and of every step. The same seed gives the same noise
                    whatever ``batch_size`` (each block of RNG_BLOCK samples has its own stream: rng.BlockGenerator),
                    so the same samples up to the float32 network's rounding, which differs slightly with the
                    batch size (~1e-4 of the data's std after a few guided steps)
        batch_size: samples per sampler call (default BATCH_DEFAULTS, lowered to what fits in memory; rounded up to
                    a whole number of RNG blocks). Memory is estimated first: MemoryLimitError if it cannot fit
        threads:    cores while sampling (tinydiff.threads.use_threads): threads of the U-Net's kernels, and of
                    BLAS for points (images: 1 BLAS thread, blas_share). "auto" (the default, as in the `sample`
                    command): the cores that pay (tinydiff.threads.auto_threads: all for images, 1 for points);
                    1: serial; None: leave both as they are. The samples are the same bits on any number of threads
        progress:   a progress bar on stderr over the sampling steps (one bar over all batches)
        return_trajectory: also return the :class:`tinydiff.samplers.Trajectory` (standardised units; one batch only)
        x_T:        the start noise (n, *data_shape), standardised units (default: drawn from ``rng``; one batch only)
        churn:      S_churn of the "edm" sampler (Karras et al. 2022, Alg. 2)
        options:    passed on to :func:`tinydiff.samplers.sample` (eta, timestep_spacing, sigma_max, variance, ...)
        """
        one_batch = return_trajectory or x_T is not None
        if one_batch and batch_size is not None and batch_size < n:
            raise ValueError("return_trajectory and x_T need one batch: leave batch_size at None")
        size = self.plan_batches(n, n if one_batch else batch_size, self.uses_guidance(label, guidance))
        x = np.empty((n, *self.output_shape), dtype=np.float32 if self.kind == "images" else np.float64)
        traj = None
        for i, part in self.batches(n, label, sampler, steps, guidance, clip, rng, size, progress, threads,
                                    return_trajectory=return_trajectory, x_T=x_T, churn=churn, **options):
            part, traj = part if return_trajectory else (part, None)
            x[i:i + len(part)] = part
        return (x, traj) if return_trajectory else x

    def batches(self, n: int, label=None, sampler=None, steps=None, guidance=None, clip=None, rng=0,
                batch_size: int | None = None, progress: bool = False, threads: int | str | None = "auto",
                churn: float | None = None, **options):
        """Yield (start, samples start..start+B-1 in data units) batch by batch: :meth:`sample` without holding all n
        (the ``sample`` command streams them to its file). Same arguments as :meth:`sample`; same samples."""
        from tinydiff.objectives import sampling_plan
        from tinydiff.rng import BlockGenerator, seed_for_blocks
        from tinydiff.samplers import sample
        from tinydiff.threads import auto_threads, blas_share, use_threads

        how = self.sampling_defaults
        how.update({k: v for k, v in dict(sampler=sampler, steps=steps, guidance=guidance).items() if v is not None})
        how["sampler"], _, sampler_options = sampling_plan(self.objective, how["sampler"], how["steps"], churn)
        options.setdefault("sampler_options", sampler_options)
        y = self._labels(label, n)
        block = RNG_BLOCK[self.kind]
        size = batch_size or self.plan_batches(n, None, self.uses_guidance(label, guidance))
        if n > block:
            if size % block:
                raise ValueError(f"batch_size must be a multiple of {block} for {self.kind} (the RNG block), "
                                 f"got {size}")
            seed = seed_for_blocks(rng)
        bar = progress
        if progress and n > size:                       # one bar (stderr) over every step of every batch
            from tqdm.auto import tqdm

            per, batches = how["steps"] or getattr(self.process, "T", None), -(-n // size)
            bar = tqdm(total=None if per is None else per * batches, unit="step", leave=False,
                       desc=f"sampling {n} in {batches} batches ({how['sampler']}, {per} steps each)")
        try:
            model = "mlp" if self.kind == "points" else "unet"
            threads = auto_threads(model) if threads == "auto" else threads
            blas = None if threads is None else blas_share(threads, model)
            with use_threads(threads, blas):
                for i in range(0, n, size):
                    b = min(size, n - i)
                    out = sample(self.network, (b, *self.data_shape), self.process, method=how["sampler"],
                                 steps=how["steps"], rng=rng if n <= block else BlockGenerator(seed, i, i + b, block),
                                 y=None if y is None else y[i:i + b], guidance_scale=how["guidance"],
                                 prediction_type=self.prediction_type, clip=clip, progress=bar, **options)
                    if options.get("return_trajectory"):
                        yield i, (self.to_data(out[0]), out[1])
                    else:
                        yield i, self.to_data(out)
        finally:
            if bar is not progress:
                bar.close()

    def uses_guidance(self, label, guidance) -> bool:
        """Whether sampling calls the network twice per step (classifier-free guidance with s != 1)."""
        s = self.sampling_defaults["guidance"] if guidance is None else guidance
        return label is not None and s != 1

    def plan_batches(self, n: int, batch_size: int | None = None, guided: bool = False, in_memory: bool = True) -> int:
        """The batch size for drawing n samples: ``batch_size`` (or BATCH_DEFAULTS, lowered to what fits) rounded up
        to whole RNG blocks. Estimates the memory first (the network's bytes per sample, measured, x2 with guidance,
        x1.5 for the sampler's own arrays, plus the n samples if ``in_memory``): MemoryLimitError if it cannot fit."""
        from tinydiff.memory import MemoryLimitError, available_bytes, bytes_per_sample, format_bytes

        block = RNG_BLOCK[self.kind]
        size = min(batch_size or BATCH_DEFAULTS[self.kind], n)
        size = -(-size // block) * block
        free = available_bytes()
        if free is None:
            return size
        itemsize = 4 if self.kind == "images" else 8
        output = n * int(np.prod(self.output_shape)) * itemsize if in_memory else 0
        if "_bytes_per_sample" not in self.__dict__:     # measured once per object
            self._bytes_per_sample = bytes_per_sample(self.network, self.data_shape, 0 if self.num_classes else None,
                                                      probe=1 if self.kind == "images" else 64)
        per = 1.5 * (2 if guided else 1) * self._bytes_per_sample
        if batch_size is None:                            # the default: as large as fits, at least one block
            size = max(block, min(size, int((free - output) / per) // block * block))
        need = output + size * per
        if need > free:
            kind = self.kind
            raise MemoryLimitError(
                f"drawing {n} {kind} needs about {format_bytes(need)} ({format_bytes(output)} for the samples"
                + (", " if output else "; ") + f"{format_bytes(size * per)} for a batch of {size}, "
                f"{format_bytes(per)} per {kind[:-1]}{' with guidance' if guided else ''}), but only "
                f"{format_bytes(free)} is available: "
                + ("draw fewer, or stream them to a file (`python -m tinydiff sample --out F.npy` does)"
                   if output > free / 2 else "lower --batch-size"))
        return size

    def to_data(self, x_std):
        """Standardised samples -> data units (images: clipped to [0, 1], float32; the last x0 estimate can
        overshoot a little). Latents: z = x_std / s, decoded to images (B, 1, 28, 28) in [0, 1]."""
        x = self.standardizer.inverse_transform(x_std)
        if self.autoencoder is not None:
            return self.autoencoder.decode(x)
        if self.kind == "images":
            return np.clip(x, 0.0, 1.0).astype(np.float32)
        return x


# ---- loading ---------------------------------------------------------------------------------------------------
def load_trained(path, use_ema: bool = True) -> TrainedDenoiser:
    """The :class:`TrainedDenoiser` stored in a checkpoint (a model.npz, or its folder).

    ``use_ema``: the EMA of the weights (what sampling should use) or the raw training weights. The config is the one
    the run stored; a field an older checkpoint lacks is filled in from the file when it can be (``max_beta`` from
    the stored betas) and named in ``.inferred``."""
    from tinydiff import checkpoint as ckpt

    arrays = ckpt.load_checkpoint(path)
    with ckpt.reading(path):
        return _from_arrays(arrays, path, use_ema)


def _from_arrays(arrays: dict, path, use_ema: bool) -> TrainedDenoiser:
    from tinydiff import checkpoint as ckpt
    from tinydiff.models import model_from_spec
    from tinydiff.objectives import get_objective

    stored = ckpt.from_json_array(arrays["meta/config"])
    config = TrainConfig.from_dict(stored)
    objective = get_objective(str(stored.get("objective", "ddpm")))
    process = NoiseSchedule.from_dict(ckpt.group(arrays, "schedule"))
    network = model_from_spec(ckpt.from_json_array(arrays["meta/model"]))
    inferred = _infer_missing(stored, config, process, network)
    if use_ema:
        weights = {k[len("shadow."):]: v for k, v in ckpt.group(arrays, "ema").items() if k.startswith("shadow.")}
    else:
        weights = ckpt.group(arrays, "model")
    if not weights:
        raise ckpt.CheckpointError(f"{path} holds no {'EMA' if use_ema else 'raw training'} weights (the shipped "
                                   f"checkpoints keep only the EMA): load it with use_ema={not use_ema}")
    try:
        network.load_state_dict(weights)
    except (KeyError, ValueError) as err:
        raise ckpt.CheckpointError(f"{path}: the weights do not fit the stored model configuration: {err}") from err
    network.eval()
    network.num_timesteps = process.T              # steps t >= T are refused by the network (models.inputs)
    autoencoder = None
    if "autoencoder_meta/config" in arrays:       # a latent denoiser carries its VAE (train --latent)
        from tinydiff.models.autoencoder import autoencoder_from_arrays

        autoencoder = autoencoder_from_arrays(arrays, where=str(path))
    if objective.name == "flow":                   # continuous time: the network sees the objective's 1000 t
        from tinydiff.flow import FlowNetwork

        network.num_timesteps = None
        return TrainedDenoiser(
            network=FlowNetwork(network), process=objective.process(config), prediction_type="velocity",
            standardizer=Standardizer.from_dict(ckpt.group(arrays, "standardizer")), config=config,
            objective=objective.name, path=Path(path), step=int(arrays["meta/step"]), autoencoder=autoencoder,
            command=ckpt.from_json_array(arrays["meta/command"]) if "meta/command" in arrays else None,
            inferred=inferred)
    if config.objective != "ddpm":
        from tinydiff.preconditioning import TIME_STEPS

        network.num_timesteps = TIME_STEPS         # ncsn, edm: the time input is c_noise on 0..999
    return TrainedDenoiser.of(
        network, process, config, standardizer=Standardizer.from_dict(ckpt.group(arrays, "standardizer")),
        path=Path(path), step=int(arrays["meta/step"]), autoencoder=autoencoder,
        command=ckpt.from_json_array(arrays["meta/command"]) if "meta/command" in arrays else None,
        inferred=inferred)


def _infer_missing(stored: dict, config: TrainConfig, process: NoiseSchedule, network) -> dict:
    """Fill the config fields a checkpoint lacks from what it does store; returns {field: how it was found}.

    Checkpoints written before ``max_beta`` existed used the uncapped cosine (0.999): the stored betas say so, and the
    largest of them is the cap (a cosine's last betas always reach it). A field that cannot be recovered keeps
    today's default and is marked unknown."""
    inferred = {}
    for name in (f.name for f in fields(TrainConfig) if f.name not in stored):
        if name == "latent":
            continue                    # known: a checkpoint from before latent diffusion is a pixel / point model
        if name == "max_beta" and config.schedule.partition("+")[0] == "cosine":
            config.max_beta = float(np.max(process.betas))
            inferred[name] = "the largest stored beta"
        elif name == "model":
            config.model = network.kind
            inferred[name] = "meta/model"
        elif name in ("beta_start", "beta_end"):
            inferred[name] = "not stored: the schedule's own default (the only choice when the file was written)"
        elif name == "max_loss_rise":
            inferred[name] = "not stored: a training safeguard, no effect on the weights"
        elif name in ("objective", "coupling", "reflow", "sigma_min", "sigma_max", "sigma_data"):
            inferred[name] = "not stored: written before objectives existed, so ddpm (the default) for certain"
        elif name in ("max_beta", "base_channels"):
            inferred[name] = "not stored; does not apply to this schedule / model"
        else:
            inferred[name] = "not stored: today's default, unknown for this run"
    return inferred
