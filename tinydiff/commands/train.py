"""``python -m tinydiff train --data moons|mnist --out DIR``: train a denoiser (MLP on points, UNet on digits).

Writes DIR/model.npz (the latest checkpoint: weights, EMA, optimiser, RNG, config, standardizer, schedule),
DIR/loss.csv (step, loss), DIR/loss.png and DIR/loss_vs_t.png. ``--resume`` continues DIR/model.npz bit-for-bit.
DIR is checked, locked and tidied before training starts (:mod:`tinydiff.rundir`): a fresh run never replaces another
run's model.npz unless ``--overwrite``, and two runs never share a folder.
"""

from __future__ import annotations

import argparse
import shlex
from dataclasses import fields
from pathlib import Path

import numpy as np

from tinydiff.commands.common import finite_float, positive_float, positive_int, reports_errors


# TrainConfig fields whose flag takes an integer >= 1 (the other ints may be 0 or negative), and fixed choices
POSITIVE = {"n_train", "T", "steps", "batch_size", "checkpoint_every", "log_every", "loss_buckets", "threads",
            "blas_threads", "base_channels", "width", "emb_dim"}
TYPES = {"int": int, "float": finite_float, "str": str, "float | None": finite_float, "int | None": int,
         "str | None": str}
POSITIVE_FLOAT = {"lr"}


def schedule_name(text: str) -> str:
    """argparse type: a schedule ``NoiseSchedule.from_name`` knows (its own check, so the two never disagree)."""
    import warnings

    from tinydiff.schedules import NoiseSchedule

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            NoiseSchedule.from_name(text, 1000)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def flag(name: str) -> str:
    """The command-line flag of a TrainConfig field: n_train -> --n-train (T stays --T)."""
    return "--" + name.replace("_", "-")


def add_arguments(p):
    from tinydiff.config import MNIST_DEFAULTS, MODEL_KINDS, TrainConfig, field_help
    from tinydiff.diffusion import PREDICTION_TYPES
    from tinydiff.objectives import COUPLINGS, OBJECTIVES

    p.add_argument("--out", required=True, type=Path, help="folder for model.npz, loss.csv and the figures")
    p.add_argument("--resume", action="store_true", help="continue the run in OUT/model.npz (its stored config; only "
                                                         "--steps, --checkpoint-every, --threads, --blas-threads and "
                                                         "--max-loss-rise may change)")
    p.add_argument("--overwrite", action="store_true",
                   help="start a new run in OUT even if it holds one (its model.npz is replaced at the first checkpoint)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    choices = {"prediction_type": PREDICTION_TYPES, "model": MODEL_KINDS, "objective": tuple(OBJECTIVES),
               "coupling": COUPLINGS}
    helps, d = field_help(), TrainConfig()
    for f in fields(TrainConfig):              # one flag per field; None = not given (the data set's default holds)
        default = f"default {getattr(d, f.name)}" + (f"; mnist: {MNIST_DEFAULTS[f.name]}"
                                                      if f.name in MNIST_DEFAULTS else "")
        text = f"{helps[f.name]} ({default})".replace("%", "%%")
        if f.name == "data":
            text = f"{helps[f.name]} (required unless --resume)"
        if f.type == "bool":
            p.add_argument(flag(f.name), action=argparse.BooleanOptionalAction, default=None, help=text)
        else:
            kind = (positive_int if f.name in POSITIVE else positive_float if f.name in POSITIVE_FLOAT
                    else schedule_name if f.name == "schedule" else TYPES[f.type])
            p.add_argument(flag(f.name), type=kind, default=None, choices=choices.get(f.name), help=text)


def config_from_args(args):
    """The TrainConfig a parsed `train` command asks for: the data set's defaults, then every flag given."""
    from tinydiff.config import ConfigError, TrainConfig

    chosen = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if getattr(args, f.name, None) is not None}
    config = TrainConfig.for_data(**chosen)
    if "max_beta" in chosen and config.schedule.partition("+")[0] != "cosine":
        raise ConfigError(f"--max-beta caps the cosine schedule's betas; this run uses {config.schedule!r}")
    config.schedule_kwargs()                               # beta_start / beta_end with a schedule they do not fit
    return config


def write_outputs(trainer, out: Path) -> None:
    """loss.csv, loss.png and loss_vs_t.png for a finished (or interrupted) run."""
    from tinydiff import viz

    loss = np.asarray(trainer.log.loss)
    np.savetxt(out / "loss.csv", np.c_[np.arange(len(loss)), loss], delimiter=",", header="step,loss",
               comments="", fmt=["%d", "%.6g"])
    viz.save(viz.loss_curve(loss), out / "loss.png")
    viz.save(viz.loss_vs_t(trainer.log.t_sum, trainer.log.t_count, trainer.schedule.T,
                           log_every=trainer.config.log_every), out / "loss_vs_t.png")


@reports_errors
def run(args):
    from tinydiff.errors import UsageError
    from tinydiff.rundir import open_run

    if args.resume and args.overwrite:
        raise UsageError("train: --resume continues the run in --out and --overwrite replaces it: give one of them")
    if args.data is None and not args.resume:
        raise UsageError("train: --data is required (a toy set name or a .npy/.csv file), unless --resume")
    config = None if args.resume else config_from_args(args)            # bad settings fail before any folder exists
    out = Path(args.out)
    with open_run(out, resume=args.resume, overwrite=args.overwrite):    # checked, locked, tidied (rundir.py)
        return train_in(args, out, config)


def train_in(args, out: Path, config=None):
    from tinydiff.config import TrainConfig
    from tinydiff.threads import blas_share
    from tinydiff.train import Trainer, trainer_class

    if args.resume:
        trainer = Trainer.resume(out, **{f.name: getattr(args, f.name, None) for f in fields(TrainConfig)})
        print(f"resuming {out / 'model.npz'} at step {trainer.step_count} of {trainer.config.steps}")
        for name, (stored, new) in trainer.changed.items():
            print(f"  {flag(name)} {new} (the run had {stored})")
    else:
        trainer = trainer_class(config.objective)(config, out)
        if getattr(args, "argv", None) is not None:
            trainer.command = shlex.join(["python", "-m", "tinydiff", *args.argv])
    c = trainer.config
    if getattr(args, "threads", None) is not None and getattr(args, "blas_threads", None) is None:
        c.blas_threads = blas_share(c.threads, c.model)                 # --threads N alone: one pool gets the cores
    print(f"{trainer.model.num_parameters()} parameters, {len(trainer.x)} training items of shape "
          f"{trainer.x.shape[1:]}, {c.steps} steps of batch {c.batch_size}")
    try:
        trainer.train(progress=not args.quiet)
    finally:
        if trainer.log.loss:
            write_outputs(trainer, out)
    print(f"trained {c.steps} steps in {trainer.log.seconds:.1f} s ({1e3 * trainer.log.seconds / max(c.steps, 1):.2f} "
          f"ms/step); final loss {np.mean(trainer.log.loss[-100:]):.4f}; wrote {trainer.checkpoint_path}")
    return 0
