"""``python -m tinydiff sample --checkpoint DIR/model.npz --n N --out samples.npy``: draw from a trained model.

Points are written in the data's ORIGINAL units (the inverse of the Standardizer stored in the checkpoint), as a
(N, D) float64 .npy file, or .csv if OUT ends in .csv. Images (a UNet checkpoint) are written as float32 (N, 1, 28, 28)
in [0, 1]. ``--plot`` also draws them (a scatter plot, or a grid of images).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from tinydiff.commands.common import positive_int, reports_errors


# Unless told otherwise. Points: the full DDPM chain (1000 steps of the small MLP take well under a second). Images: a
# UNet call costs a few ms per image, so DDIM in 50 steps, and guidance 2 for a conditional model: on the shipped
# checkpoint s = 1 / 2 / 3 gave 93.9 / 99.9 / 100 % recognisable digits at FD 1.2x / 4.2x / 7.7x the real-data floor
# (README, MNIST), so 2 buys nearly all of the fidelity for the least diversity.
POINT_DEFAULTS = dict(sampler="ddpm", steps=None, guidance=1.0)
IMAGE_DEFAULTS = dict(sampler="ddim", steps=50, guidance=2.0)


def sampling_defaults(model) -> dict:
    return IMAGE_DEFAULTS if hasattr(model, "sample_shape") else POINT_DEFAULTS


def clip_value(text: str):
    """--clip: a positive number or 'dynamic'."""
    if text == "dynamic":
        return text
    try:
        c = float(text)
    except ValueError:
        c = -1.0
    if not c > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number or 'dynamic', got {text!r}")
    return c


def add_arguments(p):
    p.add_argument("--checkpoint", required=True, type=Path, help="a model.npz written by `train` (or its folder)")
    p.add_argument("--n", required=True, type=positive_int, help="number of points (or images) to draw")
    p.add_argument("--out", required=True, type=Path, help="where to write them (.npy; points also .csv)")
    p.add_argument("--sampler", default=None, help="ddpm, ddim, dpm++2m, euler or heun (default: ddpm for points, "
                                                    "ddim for images)")
    p.add_argument("--steps", type=positive_int, default=None,
                   help=f"sampling steps (default: all T for points, {IMAGE_DEFAULTS['steps']} for images)")
    p.add_argument("--seed", type=int, default=0, help="seed of the start noise and of every step (default 0)")
    p.add_argument("--label", type=int, default=None, help="class label, for a model trained with --conditional")
    p.add_argument("--guidance", type=float, default=None,
                   help=f"classifier-free guidance scale s, with --label (default: 1 for points, "
                        f"{IMAGE_DEFAULTS['guidance']:g} for images; 1 = the conditional model, no guidance)")
    p.add_argument("--clip", type=clip_value, default=None,
                   help="clip each x0 estimate (standardised units): a number c for [-c, c] (1 for images, "
                        "DDPM's clip_denoised), or 'dynamic' (Imagen's thresholding); default: no clipping")
    p.add_argument("--plot", type=Path, default=None, help="also draw the samples to this .png")
    p.add_argument("--no-ema", action="store_true", help="use the raw training weights instead of their EMA")


def draw(model, schedule, standardizer, n: int, sampler: str = "ddpm", steps=None, seed=0, label=None,
         guidance: float = 1.0, return_trajectory: bool = False, prediction_type: str = "epsilon", clip=None):
    """n points from ``model`` in DATA units (and the Trajectory, in standardised units, if asked for).
    ``prediction_type`` must be what the model was trained to output (``config.prediction_type``)."""
    from tinydiff.threads import blas_threads

    from tinydiff.samplers import sample

    y = None if label is None else np.full(n, label, dtype=np.int64)
    shape = (n, *model.sample_shape) if hasattr(model, "sample_shape") else (n, model.dim)   # images or points
    with blas_threads(1):
        out = sample(model, shape, schedule, method=sampler, steps=steps, rng=seed, y=y,
                     guidance_scale=guidance, return_trajectory=return_trajectory, prediction_type=prediction_type,
                     clip=clip)
    x, traj = out if return_trajectory else (out, None)
    x = standardizer.inverse_transform(x)
    if x.ndim == 4:                       # images: back in [0, 1] (the last x0 estimate can overshoot a little)
        x = np.clip(x, 0.0, 1.0).astype(np.float32)
    return (x, traj) if return_trajectory else x


@reports_errors
def run(args):
    from tinydiff.train import load_model

    model, schedule, standardizer, config = load_model(args.checkpoint, use_ema=not args.no_ema)
    if args.label is not None and not model.num_classes:
        raise SystemExit("sample: --label needs a model trained with --conditional")
    given = {"sampler": args.sampler, "steps": args.steps, "guidance": args.guidance}
    how = {**sampling_defaults(model), **{k: v for k, v in given.items() if v is not None}}
    try:
        x = draw(model, schedule, standardizer, args.n, how["sampler"], how["steps"], args.seed, args.label,
                 how["guidance"], prediction_type=config.prediction_type, clip=args.clip)
    except ValueError as err:          # unknown sampler, steps > T, ...
        raise SystemExit(f"sample: {err}") from None
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".csv":
        np.savetxt(out, x, delimiter=",", fmt="%.8g")
    else:
        np.save(out, x)
    print(f"wrote {len(x)} {'images' if x.ndim == 4 else 'points'} of shape {x.shape[1:]} to {out}")
    if args.plot is not None:
        from tinydiff import viz

        if x.ndim == 4:
            viz.save(viz.image_grid(x), args.plot)
        elif x.shape[1] != 2:
            print(f"--plot draws 2D points only; these have dimension {x.shape[1]}")
        else:
            viz.save(viz.scatter_strip([(f"{len(x)} samples ({config.data})", x)], lim=None, size=4, s=2),
                     args.plot)
    return 0
