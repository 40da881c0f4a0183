"""``python -m tinydiff sample --checkpoint DIR/model.npz --n N --out samples.npy``: draw points from a trained model.

The samples are written in the data's ORIGINAL units (the inverse of the Standardizer stored in the checkpoint), as a
(N, D) float64 .npy file, or .csv if OUT ends in .csv. ``--plot`` also draws them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tinydiff.commands.common import positive_int, reports_errors


def add_arguments(p):
    p.add_argument("--checkpoint", required=True, type=Path, help="a model.npz written by `train` (or its folder)")
    p.add_argument("--n", required=True, type=positive_int, help="number of points to draw")
    p.add_argument("--out", required=True, type=Path, help="where to write the points (.npy, or .csv)")
    p.add_argument("--sampler", default="ddpm", help="ddpm (default), ddim, dpm++2m, euler or heun")
    p.add_argument("--steps", type=positive_int, default=None, help="sampling steps (default: all T)")
    p.add_argument("--seed", type=int, default=0, help="seed of the start noise and of every step (default 0)")
    p.add_argument("--label", type=int, default=None, help="class label, for a model trained with --conditional")
    p.add_argument("--guidance", type=float, default=1.0, help="classifier-free guidance scale (with --label)")
    p.add_argument("--plot", type=Path, default=None, help="also draw the samples to this .png")
    p.add_argument("--no-ema", action="store_true", help="use the raw training weights instead of their EMA")


def draw(model, schedule, standardizer, n: int, sampler: str = "ddpm", steps=None, seed=0, label=None,
         guidance: float = 1.0, return_trajectory: bool = False, prediction_type: str = "epsilon"):
    """n points from ``model`` in DATA units (and the Trajectory, in standardised units, if asked for).
    ``prediction_type`` must be what the model was trained to output (``config.prediction_type``)."""
    from tinydiff.threads import blas_threads

    from tinydiff.samplers import sample

    y = None if label is None else np.full(n, label, dtype=np.int64)
    shape = (n, *model.sample_shape) if hasattr(model, "sample_shape") else (n, model.dim)   # images or points
    with blas_threads(1):
        out = sample(model, shape, schedule, method=sampler, steps=steps, rng=seed, y=y,
                     guidance_scale=guidance, return_trajectory=return_trajectory, prediction_type=prediction_type)
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
    try:
        x = draw(model, schedule, standardizer, args.n, args.sampler, args.steps, args.seed, args.label, args.guidance,
                 prediction_type=config.prediction_type)
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
