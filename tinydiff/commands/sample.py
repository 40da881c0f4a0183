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


from tinydiff.samplers import METHODS
from tinydiff.trained import IMAGE_DEFAULTS, POINT_DEFAULTS  # noqa: F401  (their home is tinydiff.trained)


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
    p.add_argument("--sampler", default=None, choices=METHODS,
                   help="the sampler (default: ddpm for points, ddim for images)")
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
    """The older by-hand form of ``TrainedDenoiser.sample`` (kept for callers holding a bare network): n samples in
    DATA units from ``model`` trained on ``schedule`` to output ``prediction_type``."""
    from tinydiff.trained import TrainedDenoiser

    return TrainedDenoiser(model, schedule, prediction_type, standardizer).sample(
        n, label=label, sampler=sampler, steps=steps, guidance=guidance, clip=clip, rng=seed,
        return_trajectory=return_trajectory)


@reports_errors
def run(args):
    from tinydiff.trained import load_trained

    m = load_trained(args.checkpoint, use_ema=not args.no_ema)
    if args.label is not None and not m.num_classes:
        raise SystemExit("sample: --label needs a model trained with --conditional")
    try:
        x = m.sample(args.n, label=args.label, sampler=args.sampler, steps=args.steps, guidance=args.guidance,
                     clip=args.clip, rng=args.seed)
    except ValueError as err:          # steps > T, a label out of range, ...
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
            viz.save(viz.scatter_strip([(f"{len(x)} samples ({m.config.data})", x)], lim=None, size=4, s=2),
                     args.plot)
    return 0
