"""The training loop for point data: batches -> q_sample -> model -> simple loss -> backward -> clip -> AdamW -> EMA.

One step (Ho et al. 2020, Algorithm 1), with x0 a batch of standardised points::

    t ~ Uniform{0..T-1},  eps ~ N(0, I)
    x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps                       (diffusion.q_sample, eq. 4)
    L   = mean || eps - eps_theta(x_t, t) ||^2                                   (diffusion.diffusion_loss, eq. 14)
    dL/dtheta by model.backward; clip to norm grad_clip; AdamW with warm-up + cosine lr; EMA of the weights

    trainer = Trainer(TrainConfig(data="moons", steps=3000), out_dir="runs/moons")
    trainer.train()                      # writes runs/moons/model.npz every checkpoint_every steps and at the end

Everything random comes from one Generator whose state is saved in the checkpoint, so ``Trainer.resume(dir)``
continues with exactly the losses an uninterrupted run would have had.
"""

from __future__ import annotations

import math
import shlex
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from tinydiff import checkpoint as ckpt
from tinydiff.config import MNIST_DEFAULTS, ConfigError, TrainConfig  # noqa: F401  (TrainConfig: re-exported)
from tinydiff.data.files import load_points
from tinydiff.data.toy2d import LABELLED, Standardizer, _normalise, is_dataset_name, make_dataset
from tinydiff.diffusion import diffusion_loss, q_sample, sample_timesteps, training_target
from tinydiff.errors import DatasetError, RunError, TinydiffError
from tinydiff.models import build_model as build_network, model_from_spec, model_spec
from tinydiff.models.mlp_step import MLPTrainStep
from tinydiff.objectives import get_objective
from tinydiff.preconditioning import TIME_STEPS, weighted_mse
from tinydiff.nn.optim import EMA, AdamW, clip_grad_norm, warmup_cosine_lr
from tinydiff.schedules import NoiseSchedule


class TrainingDiverged(TinydiffError, FloatingPointError):
    """The loss, the gradients or the weights became NaN or inf, or the loss rose far above its start."""


# Settings a resumed run may change: they do not alter the steps taken so far. (steps also reshapes the cosine
# learning-rate decay from the resumed step on.) Every other setting of a resumed run is the stored one.
RESUMABLE = ("steps", "checkpoint_every", "threads", "blas_threads", "max_loss_rise")
LOSS_WINDOW = 20          # steps averaged in the loss-rise check (max_loss_rise)


# ---- data --------------------------------------------------------------------------------------------------------
def load_training_data(config: TrainConfig, rng: np.random.Generator):
    """(x (N, D) float64 in data units, labels (N,) int64 or None) for ``config.data``; clear errors otherwise.
    For data="mnist": x (N, 1, 28, 28) float32 in [0, 1] (a random subset of n_train of the 60,000 images)."""
    if _normalise(config.data) == "mnist":
        return load_mnist_training_data(config, rng)
    if config.conditional:
        if not is_dataset_name(config.data) or _normalise(config.data) not in LABELLED:
            raise DatasetError(f"conditional training needs a labelled toy set ({', '.join(LABELLED)}), "
                               f"got {config.data!r}")
        return make_dataset(config.data, config.n_train, rng, return_labels=True)
    x = load_points(config.data, n=config.n_train if is_dataset_name(config.data) else None, rng=rng)
    if x.ndim != 2 or len(x) < 2:
        raise DatasetError(f"training data must be an (N, D) array with N >= 2, got shape {x.shape}")
    return x, None


def load_mnist_training_data(config: TrainConfig, rng: np.random.Generator):
    """MNIST training images (N, 1, 28, 28) in [0, 1] and, with ``conditional``, their labels (N,) int64."""
    from tinydiff.data.mnist import load_mnist_float

    x, labels = load_mnist_float(split="train")
    if config.n_train < len(x):
        keep = np.sort(rng.choice(len(x), config.n_train, replace=False))
        x, labels = x[keep], labels[keep]
    return x, (labels.astype(np.int64) if config.conditional else None)


def encode_latents(config: TrainConfig, x):
    """Latent diffusion: (the autoencoder of ``config.latent``, its latents mu(x) (N, Z, 7, 7) float32), or (None, x)
    without ``config.latent``. The denoiser then trains on s mu(x) (s: the stored scale factor; make_standardizer)."""
    if not config.latent:
        return None, x
    from tinydiff.models.autoencoder import load_autoencoder

    if np.ndim(x) != 4:
        raise DatasetError(f"--latent needs image data (--data mnist), got data of shape {np.shape(x)}")
    vae = load_autoencoder(config.latent)
    return vae, vae.encode_mean(x)


def make_standardizer(config: TrainConfig, x, autoencoder=None) -> Standardizer:
    """Points: per-coordinate mean and std. Images: the fixed map [0, 1] -> [-1, 1] (x_std = (x - 0.5) / 0.5), the
    DDPM convention; per-pixel statistics would blow up the always-black border pixels. Latents: x_std = s z, the
    autoencoder's scale factor (Rombach et al. 2022), i.e. mean 0 and std 1 / s."""
    if autoencoder is not None:
        return Standardizer(0.0, 1.0 / autoencoder.scale_factor)
    return Standardizer(0.5, 0.5) if np.ndim(x) == 4 else Standardizer().fit(x)


def make_model(config: TrainConfig, data_shape, num_classes: int = 0):
    """MLPDenoiser for points (N, D), UNet for images (N, C, H, W) (``config.model`` must agree)."""
    if config.model == "unet" or len(data_shape) == 4:
        if config.model != "unet" or len(data_shape) != 4:
            raise DatasetError(f"--model unet goes with image data (--data mnist) and image data with --model unet; "
                               f"got model={config.model!r} and data of shape {tuple(data_shape)}")
        return build_network("unet", dict(in_channels=data_shape[1], base_channels=config.base_channels,
                                          num_classes=num_classes, image_size=data_shape[2],
                                          **config.model_layout()), rng=config.seed)
    return build_network("mlp", config.model_kwargs(data_shape[1], num_classes), rng=config.seed)


def build_model(model_config: dict):
    """Rebuild a model from the ``meta/model`` entry of a checkpoint: ``{"kind": ..., "config": {...}}``, or an older
    checkpoint's bare kwargs dict (:func:`tinydiff.models.model_from_spec`)."""
    return model_from_spec(model_config)


# ---- the loss log ------------------------------------------------------------------------------------------------
class TrainLog:
    """loss[k]: the loss of step k.  t_sum, t_count: (windows, buckets) sums and counts of per-sample losses, with
    window = step // log_every and bucket = t * buckets // T (the "loss vs t" table)."""

    def __init__(self, buckets: int):
        self.loss: list[float] = []
        self.t_sum = np.zeros((0, buckets))
        self.t_count = np.zeros((0, buckets), dtype=np.int64)
        self.seconds = 0.0

    def record(self, step: int, loss: float, per_sample: np.ndarray, t: np.ndarray, T: int, log_every: int) -> None:
        self.loss.append(loss)
        w, nb = step // log_every, self.t_sum.shape[1]
        if w >= len(self.t_sum):
            grow = w + 1 - len(self.t_sum)
            self.t_sum = np.vstack([self.t_sum, np.zeros((grow, nb))])
            self.t_count = np.vstack([self.t_count, np.zeros((grow, nb), dtype=np.int64)])
        bucket = t * nb // T                                                     # (B,)
        self.t_sum[w] += np.bincount(bucket, weights=per_sample, minlength=nb)
        self.t_count[w] += np.bincount(bucket, minlength=nb)

    def loss_vs_t(self, last_fraction: float = 0.2) -> np.ndarray:
        """(buckets,) mean loss per bucket over the last ``last_fraction`` of the windows."""
        k = max(1, int(math.ceil(len(self.t_sum) * last_fraction)))
        return self.t_sum[-k:].sum(0) / np.maximum(self.t_count[-k:].sum(0), 1)

    def state_dict(self) -> dict:
        return {"loss": np.array(self.loss, dtype=np.float64), "t_sum": self.t_sum, "t_count": self.t_count,
                "seconds": np.array(self.seconds)}

    def load_state_dict(self, d: dict) -> None:
        self.loss = d["loss"].tolist()
        self.t_sum, self.t_count, self.seconds = d["t_sum"].copy(), d["t_count"].copy(), float(d["seconds"])


# ---- the trainer -------------------------------------------------------------------------------------------------
def drop_labels(labels, p: float, null_label: int, rng: np.random.Generator) -> np.ndarray:
    """Classifier-free guidance training (Ho & Salimans 2022, Alg. 1): each label becomes ``null_label`` with
    probability p, independently, so that one network learns both eps(x_t, y) and eps(x_t, null).

    labels: (B,) ints. Returns (B,) ints. Draws exactly one uniform number per label from ``rng`` (rng.random(B)).
    """
    ### BEGIN SOLUTION ex12_1: label dropout — replace each label by null_label with probability p, one rng.random draw per label (chapter 12, 1 point)
    # returns: y (B,) ints, the labels with about a fraction p of them set to null_label
    return np.where(rng.random(len(labels)) < p, null_label, labels)
    ### END SOLUTION


class Trainer:
    """Holds the data, model, optimiser, EMA, Generator and log of one run; ``train()`` runs it to config.steps.

    ``fast=False`` trains an MLP through its layers (model.forward / model.backward, clip_grad_norm, AdamW.step)
    instead of the fused ``MLPTrainStep``: the same computation, for comparison and debugging."""

    objectives = ("ddpm", "ncsn", "edm")   # what this loop trains (flow matching: tinydiff.flow.FlowTrainer)

    def __init__(self, config: TrainConfig, out_dir=None, fast: bool = True):
        if not (math.isfinite(config.lr) and config.lr > 0):
            raise ConfigError(f"lr must be a positive finite number, got {config.lr}")
        self.config, self.out_dir = config, (Path(out_dir) if out_dir is not None else None)
        data_rng, self.rng = np.random.default_rng(config.seed).spawn(2)
        x, self.labels = load_training_data(config, data_rng)
        self.autoencoder, x = encode_latents(config, x)                        # latent diffusion: x = mu(images)
        self.standardizer = make_standardizer(config, x, self.autoencoder)
        self.x = self.standardizer.transform(x).astype(np.float32)              # (N, D) or (N, C, H, W) standardised
        self.num_classes = int(self.labels.max()) + 1 if self.labels is not None else 0
        self.schedule = config.make_schedule()
        self.objective = get_objective(config.objective)                        # the registry entry
        if self.objective.name not in self.objectives:
            raise ValueError(f"the {self.objective.name!r} objective is not trained by {type(self).__name__}: use "
                             f"tinydiff.train.trainer_class({self.objective.name!r})")
        self.precond = self.objective.precondition(config) if self.objective.precondition else None  # ncsn, edm
        self.time_steps = self.schedule.T if self.precond is None else TIME_STEPS   # the network's time input range
        self.model = make_model(config, self.x.shape, self.num_classes)
        self.model.num_timesteps = self.time_steps      # steps t >= T are refused (models.inputs)
        self.opt = AdamW(self.model.parameters(), self.model.gradients(), lr=config.lr,
                         weight_decay=config.weight_decay)
        # an unconditional MLP trains through the fused step (the same numbers in fewer passes; models/mlp_step.py); it
        # moves the weights into one flat array, so it is built before the EMA takes references to them
        self.fast_step = MLPTrainStep(self.model, self.opt) if fast and MLPTrainStep.supports(self.model) else None
        self.ema = EMA(self.model, config.ema_decay)
        self.log = TrainLog(config.loss_buckets)
        self.step_count = 0
        self.saved_step: int | None = None    # the step of the last (finite) checkpoint written or resumed from
        self.changed: dict = {}               # settings a resume changed: {field: (stored, new)}
        self.command = shlex.join(sys.argv)   # what made this run (the CLI puts `python -m tinydiff train ...` here)

    # ---- one step ------------------------------------------------------------------------------------------------
    def step(self) -> float:
        c, k, rng = self.config, self.step_count, self.rng
        idx = rng.integers(0, len(self.x), size=c.batch_size)
        x0 = self.x[idx]                                                         # (B, D)
        if self.precond is None:
            t = sample_timesteps(self.schedule, c.batch_size, rng)               # (B,)
            noise = rng.standard_normal(x0.shape, dtype=np.float32)              # (B, D)
        y = None
        if self.num_classes:
            y = drop_labels(self.labels[idx], c.label_dropout, self.model.null_label, rng)
        if self.precond is not None:      # ncsn, edm: F(c_in x; c_noise) regresses on the effective target
            x_t, t, target, weight, _ = self.precond.training_batch(x0, rng)
        else:
            x_t, weight = q_sample(self.schedule, x0, t, noise), None
            target = training_target(self.schedule, x0, t, noise, c.prediction_type)
        if self.fast_step is not None and (weight is None or np.all(weight == 1.0)):
            return self._fast_step(k, x_t, t, target)
        with np.errstate(over="ignore", invalid="ignore"):                       # divergence is caught just below
            out = self.model.forward(x_t, t, y)
            try:
                if self.precond is not None:
                    loss, grad, _ = weighted_mse(out, target, weight)
                    if not np.all(np.isfinite(out)):
                        raise FloatingPointError
                else:
                    loss, grad = diffusion_loss(self.schedule, out, x0, t, noise, c.prediction_type)
            except FloatingPointError as err:
                raise self._diverged(k, "the model output") from err
            self.model.backward(grad, input_grad=False)                   # dL/dx is not needed
            norm = clip_grad_norm(self.model.gradients(), c.grad_clip)
        if not (math.isfinite(loss) and math.isfinite(norm)):
            raise self._diverged(k, "the loss" if not math.isfinite(loss) else "the gradient norm")
        self.opt.lr = warmup_cosine_lr(k, c.lr, c.warmup_steps, c.steps, c.min_lr)
        self.opt.step()
        return self._finish_step(k, loss, out, target, t)

    def _fast_step(self, k, x_t, t, target) -> float:
        """The same step through the fused MLPTrainStep (it checks the norm before it updates anything)."""
        c = self.config
        with np.errstate(over="ignore", invalid="ignore"):
            loss, out = self.fast_step.loss_and_gradients(x_t, t, target)
            if not math.isfinite(loss):
                raise self._diverged(k, "the model output")
            norm = self.fast_step.clip_and_update(warmup_cosine_lr(k, c.lr, c.warmup_steps, c.steps, c.min_lr),
                                                  c.grad_clip)
        if not math.isfinite(norm):
            raise self._diverged(k, "the gradient norm")
        return self._finish_step(k, loss, out, target, t)

    def _finish_step(self, k, loss, out, target, t) -> float:
        """EMA, the loss log and the step count, after the optimiser step."""
        self.ema.update()
        per_sample = np.square(out - target).reshape(len(out), -1).mean(axis=1)   # (B,)
        self.log.record(k, loss, per_sample, t, self.time_steps, self.config.log_every)
        self.step_count += 1
        return loss

    def _diverged(self, k: int, what: str) -> TrainingDiverged:
        lr = warmup_cosine_lr(k, self.config.lr, self.config.warmup_steps, self.config.steps, self.config.min_lr)
        return TrainingDiverged(
            f"training diverged at step {k}: {what} became NaN or inf (learning rate {lr:.3g}). Likely cause: the "
            f"learning rate is too high (try --lr {self.config.lr / 10:g}) or gradient clipping is off "
            f"(grad_clip={self.config.grad_clip}); also check the data for huge values. {self.last_good()}")

    def last_good(self) -> str:
        """Where the last good checkpoint is, in words (for the divergence errors)."""
        if self.out_dir is None:
            return "No checkpoint was written (no out_dir)."
        if self.saved_step is None:
            return "No checkpoint was written by this run."
        return f"The last good checkpoint, {self.checkpoint_path}, is from step {self.saved_step}; it is untouched."

    def check_loss_rise(self) -> None:
        """TrainingDiverged when the mean loss of the last LOSS_WINDOW steps exceeds max_loss_rise times the loss of
        the first step (the initial weights' loss, ~1 for any prediction type): finite, but exploding (a learning
        rate too high; Adam may even come back down later, to a model that learned nothing)."""
        rise, loss = self.config.max_loss_rise, self.log.loss
        if not rise > 0 or len(loss) < LOSS_WINDOW:
            return
        start, recent = loss[0], np.mean(loss[-LOSS_WINDOW:])
        if recent > rise * start:
            raise TrainingDiverged(
                f"training diverged at step {self.step_count}: the loss rose from {start:.3g} (step 0) to "
                f"{recent:.3g} (mean of the last {LOSS_WINDOW} steps), more than max_loss_rise={rise:g} times. "
                f"Likely cause: the learning rate is too high (try --lr {self.config.lr / 10:g}). "
                f"{self.last_good()} To train on anyway: --max-loss-rise 0.")

    # ---- the loop ------------------------------------------------------------------------------------------------
    def train(self, progress: bool = True, until: int | None = None) -> TrainLog:
        """Run from the current step to config.steps (or to ``until``, an early stop that leaves the schedule of a
        config.steps run intact), checkpointing to out_dir/model.npz. Returns the log."""
        from tinydiff.threads import blas_thread_count, kernel_threads, use_threads
        from tqdm.auto import tqdm

        c = self.config
        stop = c.steps if until is None else min(until, c.steps)
        running = None

        def one_step():
            nonlocal running
            t0 = time.perf_counter()
            loss = self.step()
            self.log.seconds += time.perf_counter() - t0
            running = loss if running is None else 0.98 * running + 0.02 * loss
            self.check_loss_rise()
            if self.out_dir is not None and (self.step_count % c.checkpoint_every == 0 or self.step_count == stop):
                self.save()

        with use_threads(c.threads, c.blas_threads):
            if self.step_count < stop:   # the first step compiles the kernels: taken before the ETA clock starts
                if progress:
                    print("compiling kernels (first run only; later runs load them from the cache) and taking the "
                          "first step ...", file=sys.stderr, flush=True)
                one_step()
            bar = tqdm(total=c.steps, initial=self.step_count, disable=not progress, dynamic_ncols=True,
                       desc=f"training on {c.data} (threads {kernel_threads()}, BLAS {blas_thread_count() or '?'})")
            with bar:
                while self.step_count < stop:
                    one_step()
                    bar.update(1)
                    if self.step_count % 25 == 0:
                        bar.set_postfix(loss=f"{running:.4f}")
        return self.log

    # ---- checkpoints ---------------------------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / "model.npz"

    def state_arrays(self) -> dict[str, np.ndarray]:
        arrays = ckpt.flatten({
            "model": self.model.state_dict(), "ema": self.ema.state_dict(), "optim": self.opt.state_dict(),
            "log": self.log.state_dict(), "standardizer": self.standardizer.to_dict(),
            "schedule": self.schedule.to_dict(),
        })
        arrays["meta/step"] = np.array(self.step_count, dtype=np.int64)
        arrays["meta/rng"] = ckpt.rng_state(self.rng)
        arrays["meta/config"] = ckpt.json_array(asdict(self.config))
        arrays["meta/model"] = ckpt.json_array(model_spec(self.model))
        arrays["meta/command"] = ckpt.json_array(self.command)
        if self.autoencoder is not None:          # a latent model carries its decoder: one file samples images
            from tinydiff.models.autoencoder import autoencoder_arrays

            arrays.update(autoencoder_arrays(self.autoencoder))
        return arrays

    def save(self, path=None) -> Path:
        """Write the checkpoint atomically, only if every weight, EMA weight and optimiser moment is finite: a
        diverged run never replaces a good checkpoint (TrainingDiverged names the last good step instead)."""
        arrays = self.state_arrays()
        bad = next((k for k, v in arrays.items() if k.split("/")[0] in ("model", "ema", "optim")
                    and v.dtype.kind in "fc" and not np.all(np.isfinite(v))), None)
        if bad is not None:
            raise TrainingDiverged(
                f"training diverged by step {self.step_count}: '{bad}' holds NaN or inf, so no checkpoint was "
                f"written. Likely cause: the learning rate is too high (try --lr {self.config.lr / 10:g}). "
                f"{self.last_good()}")
        path = ckpt.save_checkpoint(path or self.checkpoint_path, arrays)
        if path == self.checkpoint_path:
            self.saved_step = self.step_count
        return path

    def load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        with ckpt.reading(self.out_dir / "model.npz" if self.out_dir else "the checkpoint"):
            self._load_arrays(arrays)
        if "meta/command" in arrays:                   # the command that started the run (a resume keeps it)
            self.command = ckpt.from_json_array(arrays["meta/command"])

    def _load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        try:
            self.model.load_state_dict(ckpt.group(arrays, "model"))
            self.ema.load_state_dict(ckpt.group(arrays, "ema"))
            self.opt.load_state_dict(ckpt.group(arrays, "optim"))
            self.log.load_state_dict(ckpt.group(arrays, "log"))
        except (KeyError, ValueError) as err:
            raise ckpt.CheckpointError(f"the checkpoint does not fit this configuration: {err}") from err
        self.standardizer = Standardizer.from_dict(ckpt.group(arrays, "standardizer"))
        self.schedule = NoiseSchedule.from_dict(ckpt.group(arrays, "schedule"))    # the betas it was trained with
        self.rng = ckpt.rng_from_state(arrays["meta/rng"])
        self.step_count = self.saved_step = int(arrays["meta/step"])

    @classmethod
    def resume(cls, out_dir, steps: int | None = None, **settings) -> "Trainer":
        """Rebuild a run from out_dir/model.npz (its stored config) and continue from its step.

        ``steps`` changes the total; the learning-rate schedule then follows the new total, so only resuming with
        the same total repeats an uninterrupted run exactly. ``settings``: TrainConfig fields (None = not given).
        Those in RESUMABLE are applied; any other must equal the stored value, or RunError names the conflict.
        ``trainer.changed`` lists what was applied: {field: (stored, new)}."""
        arrays = ckpt.load_checkpoint(Path(out_dir) / "model.npz")
        with ckpt.reading(Path(out_dir) / "model.npz"):
            config = TrainConfig.from_dict(ckpt.from_json_array(arrays["meta/config"]))
        given = {k: v for k, v in dict(settings, steps=steps).items() if v is not None}
        conflicts = [f"--{k.replace('_', '-')} {v} (the run has {getattr(config, k)})" for k, v in given.items()
                     if k not in RESUMABLE and v != getattr(config, k)]
        if conflicts:
            raise RunError(f"--resume continues the run stored in {out_dir} with its own settings; these flags "
                           f"contradict it: {', '.join(conflicts)}. Drop them, or start a new run in another --out "
                           f"(only {', '.join('--' + k.replace('_', '-') for k in RESUMABLE)} may change on resume)")
        changed = {k: (getattr(config, k), v) for k, v in given.items() if k in RESUMABLE and v != getattr(config, k)}
        for k, (_, v) in changed.items():
            setattr(config, k, v)
        trainer = trainer_class(config.objective)(config, out_dir) if cls is Trainer else cls(config, out_dir)
        trainer.changed = changed
        trainer.load_arrays(arrays)
        return trainer


    def trained(self, use_ema: bool = True):
        """This run's model as a :class:`tinydiff.trained.TrainedDenoiser` (a copy with the EMA weights by default),
        the object that samples itself: ``trainer.trained().sample(1000, rng=0)``."""
        from tinydiff.trained import TrainedDenoiser

        network = build_model(model_spec(self.model))
        network.load_state_dict(self.ema.shadow if use_ema else self.model.state_dict())
        network.num_timesteps = self.time_steps
        network.eval()
        return TrainedDenoiser.of(network, self.schedule, self.config, standardizer=self.standardizer,
                                  step=self.step_count, command=self.command, autoencoder=self.autoencoder)


def trainer_class(objective: str) -> type[Trainer]:
    """The trainer of an objective: :class:`Trainer` for "ddpm", :class:`tinydiff.flow.FlowTrainer` for "flow"."""
    from tinydiff.objectives import get_objective

    if get_objective(objective).name == "flow":
        from tinydiff.flow import FlowTrainer

        return FlowTrainer
    return Trainer


def train(config: TrainConfig, out_dir=None, progress: bool = True) -> Trainer:
    """Train a fresh model with ``config``; returns the Trainer (model, EMA, log, standardizer, schedule)."""
    trainer = trainer_class(config.objective)(config, out_dir)
    trainer.train(progress)
    return trainer


# ---- using a trained model ---------------------------------------------------------------------------------------
def load_model(path, use_ema: bool = True):
    """(model, schedule, standardizer, config) from a checkpoint; the model holds the EMA weights by default.

    The older, by-hand form of :func:`tinydiff.trained.load_trained`, which gives one object that also knows its
    prediction type and labels and samples itself."""
    from tinydiff.trained import load_trained

    m = load_trained(path, use_ema=use_ema)
    return m.network, m.schedule, m.standardizer, m.config
