"""``python -m tinydiff train --data moons --out DIR``: train an MLP denoiser on points; write model.npz and figures.

Writes DIR/model.npz (the latest checkpoint: weights, EMA, optimiser, RNG, config, standardizer, schedule),
DIR/loss.csv (step, loss), DIR/loss.png and DIR/loss_vs_t.png. ``--resume`` continues DIR/model.npz bit-for-bit.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import numpy as np

from tinydiff.commands.common import positive_int, reports_errors


def add_arguments(p):
    from tinydiff.train import TrainConfig

    d = TrainConfig()
    p.add_argument("--data", default=None,
                   help="moons|swissroll|circles|8gaussians|25gaussians|checkerboard, or a PATH.npy / PATH.csv "
                        "of (N, D) points (required unless --resume)")
    p.add_argument("--out", required=True, type=Path, help="folder for model.npz, loss.csv and the figures")
    p.add_argument("--steps", type=positive_int, default=None, help=f"optimiser steps (default {d.steps})")
    p.add_argument("--seed", type=int, default=d.seed, help=f"seeds data, weights and batches (default {d.seed})")
    p.add_argument("--resume", action="store_true", help="continue the run in OUT/model.npz (same config)")
    p.add_argument("--batch-size", type=positive_int, default=d.batch_size, help=f"default {d.batch_size}")
    p.add_argument("--lr", type=float, default=d.lr, help=f"peak learning rate (default {d.lr})")
    p.add_argument("--T", type=positive_int, default=d.T, help=f"diffusion steps (default {d.T})")
    p.add_argument("--schedule", default=d.schedule, help=f"noise schedule (default {d.schedule})")
    p.add_argument("--max-beta", type=float, default=d.max_beta,
                   help=f"cosine schedule: cap on beta_t (default {d.max_beta}; 0.999 is the uncapped schedule)")
    p.add_argument("--conditional", action="store_true", help="learn eps(x, t, label) on a labelled toy set")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_image_arguments(p, d)


def add_image_arguments(p, d):
    """Flags for image training: `train --data mnist --model unet [--conditional] --n-train N --blas-threads 2`."""
    p.add_argument("--model", choices=("mlp", "unet"), default=None, help="mlp for points (default), unet for mnist")
    p.add_argument("--n-train", type=positive_int, default=None,
                   help=f"training points drawn from a toy set (default {d.n_train}); for mnist a random subset "
                        "of the 60,000 images (default: all)")
    p.add_argument("--base-channels", type=positive_int, default=None, help=f"UNet width (default {d.base_channels})")
    p.add_argument("--ema-decay", type=float, default=None, help=f"EMA of the weights (default {d.ema_decay})")
    p.add_argument("--checkpoint-every", type=positive_int, default=None,
                   help=f"steps between checkpoints (default {d.checkpoint_every})")
    p.add_argument("--blas-threads", type=positive_int, default=None,
                   help=f"BLAS threads (default {d.blas_threads}; 2 helps the UNet's large convolutions)")


def image_defaults(chosen: dict) -> dict:
    """--data mnist implies --model unet and all 60,000 images unless the flags say otherwise."""
    if str(chosen.get("data", "")).lower() == "mnist":
        chosen.setdefault("model", "unet")
        chosen.setdefault("n_train", 60_000)
    return chosen


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
    from tinydiff.train import TrainConfig, Trainer

    out = Path(args.out)
    if args.resume:
        trainer = Trainer.resume(out, steps=args.steps)
        print(f"resuming {out / 'model.npz'} at step {trainer.step_count} of {trainer.config.steps}")
    else:
        if args.data is None:
            raise SystemExit("train: --data is required (a toy set name or a .npy/.csv file), unless --resume")
        names = {f.name for f in fields(TrainConfig)}
        chosen = image_defaults({k: v for k, v in vars(args).items() if k in names and v is not None})
        trainer = Trainer(TrainConfig(**chosen), out)
    c = trainer.config
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
