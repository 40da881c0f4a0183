"""``python -m tinydiff train --data moons|mnist --out DIR``: train a denoiser (MLP on points, UNet on digits).

Writes DIR/model.npz (the latest checkpoint: weights, EMA, optimiser, RNG, config, standardizer, schedule),
DIR/loss.csv (step, loss), DIR/loss.png and DIR/loss_vs_t.png. ``--resume`` continues DIR/model.npz bit-for-bit.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import numpy as np

from tinydiff.commands.common import positive_int, reports_errors


def add_arguments(p):
    from tinydiff.train import MNIST_DEFAULTS, TrainConfig

    d, m = TrainConfig(), MNIST_DEFAULTS

    def default(name: str) -> str:
        """'default 8000; mnist: 6000': the points' default and, where it differs, the one --data mnist uses."""
        return f"default {getattr(d, name)}" + (f"; mnist: {m[name]}" if name in m else "")

    p.add_argument("--data", default=None,
                   help="moons|swissroll|circles|8gaussians|25gaussians|checkerboard|mnist, or a PATH.npy / "
                        "PATH.csv of (N, D) points (required unless --resume)")
    p.add_argument("--out", required=True, type=Path, help="folder for model.npz, loss.csv and the figures")
    p.add_argument("--steps", type=positive_int, default=None, help=f"optimiser steps ({default('steps')})")
    p.add_argument("--seed", type=int, default=None, help=f"seeds data, weights and batches ({default('seed')})")
    p.add_argument("--resume", action="store_true", help="continue the run in OUT/model.npz (same config)")
    p.add_argument("--batch-size", type=positive_int, default=None, help=default("batch_size"))
    p.add_argument("--lr", type=float, default=None, help=f"peak learning rate ({default('lr')})")
    p.add_argument("--T", type=positive_int, default=None, help=f"diffusion steps ({default('T')})")
    p.add_argument("--schedule", default=None, help=f"noise schedule ({default('schedule')})")
    p.add_argument("--max-beta", type=float, default=None,
                   help=f"cosine schedule: cap on beta_t (default {d.max_beta}; 0.999 is the uncapped schedule)")
    p.add_argument("--conditional", action="store_true",
                   help="learn eps(x, t, label) on labelled data (toy mixtures, mnist digits) for guidance")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--model", choices=("mlp", "unet"), default=None,
                   help=f"mlp for points, unet for images ({default('model')})")
    p.add_argument("--n-train", type=positive_int, default=None,
                   help=f"training points drawn from a toy set (default {d.n_train}); for mnist a random subset "
                        "of the 60,000 images (default: all)")
    p.add_argument("--base-channels", type=positive_int, default=None, help=f"UNet width ({default('base_channels')})")
    p.add_argument("--ema-decay", type=float, default=None, help=f"EMA of the weights ({default('ema_decay')})")
    p.add_argument("--checkpoint-every", type=positive_int, default=None,
                   help=f"steps between checkpoints ({default('checkpoint_every')})")
    p.add_argument("--blas-threads", type=positive_int, default=None,
                   help=f"BLAS threads (default {d.blas_threads}: on a shared 2-core machine two fight other jobs)")


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
        chosen = {k: v for k, v in vars(args).items() if k in names and v is not None}
        trainer = Trainer(TrainConfig.for_data(**chosen), out)
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
