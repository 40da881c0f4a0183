"""``python -m tinydiff sample --checkpoint DIR/model.npz --n N --out samples.npy``: draw from a trained model.

Points are written in the data's ORIGINAL units (the inverse of the Standardizer stored in the checkpoint), as a
(N, D) float64 .npy file, or .csv if OUT ends in .csv. Images (a UNet checkpoint) are written as float32 (N, 1, 28, 28)
in [0, 1]. ``--plot`` also draws them (a scatter plot, or a grid of images).

They are drawn ``--batch-size`` at a time and streamed to OUT (memory stays bounded whatever ``--n``); the memory of
a batch and the disk space of OUT are checked before the first step. The same ``--seed`` gives the same noise
whatever the batch size (so the same samples, up to the float32 network's rounding).
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

import numpy as np

from tinydiff.commands.common import finite_float, positive_int, reports_errors, thread_count


from tinydiff.errors import TinydiffError
from tinydiff.samplers import METHODS, TIME_METHODS
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
    p.add_argument("--sampler", default=None, choices=METHODS + TIME_METHODS + ("midpoint",),
                   help="the sampler (default: the checkpoint's objective's: ddpm for points, ddim for images, pc for "
                        "ncsn, edm for edm, midpoint in t with 10 steps = 20 model calls for flow); edm, sde, pc and "
                        "langevin apply to ncsn and edm models only; euler, midpoint and heun of a flow model "
                        "integrate in its own time t")
    p.add_argument("--steps", type=positive_int, default=None,
                   help=f"sampling steps (default: all T for ddpm points, {IMAGE_DEFAULTS['steps']} for images, 100 "
                        "for ncsn, 18 (35 NFE) for edm)")
    p.add_argument("--churn", type=float, default=None,
                   help="S_churn of the edm sampler (Karras et al. 2022, Alg. 2; default 0: deterministic Heun)")
    p.add_argument("--seed", type=int, default=0, help="seed of the start noise and of every step (default 0)")
    p.add_argument("--label", type=int, default=None, help="class label, for a model trained with --conditional")
    p.add_argument("--guidance", type=finite_float, default=None,
                   help=f"classifier-free guidance scale s, with --label (default: 1 for points, "
                        f"{IMAGE_DEFAULTS['guidance']:g} for images; 1 = the conditional model, no guidance)")
    p.add_argument("--clip", type=clip_value, default=None,
                   help="clip each x0 estimate (standardised units): a number c for [-c, c] (1 for images, "
                        "DDPM's clip_denoised), or 'dynamic' (Imagen's thresholding); default: no clipping")
    p.add_argument("--plot", type=Path, default=None, help="also draw the samples to this .png")
    p.add_argument("--threads", type=thread_count, default="auto",
                   help="cores while sampling: threads of the U-Net's kernels, or of BLAS for points (default auto: "
                        "every core this process may use for images, 1 for points; the same samples either way)")
    p.add_argument("--no-ema", action="store_true", help="use the raw training weights instead of their EMA")
    p.add_argument("--batch-size", type=positive_int, default=None,
                   help="samples per sampler call (default: 8192 points or 32 images, lowered to what fits in memory)")


def draw(model, schedule, standardizer, n: int, sampler: str = "ddpm", steps=None, seed=0, label=None,
         guidance: float = 1.0, return_trajectory: bool = False, prediction_type: str = "epsilon", clip=None,
         progress: bool = False):
    """The older by-hand form of ``TrainedDenoiser.sample`` (kept for callers holding a bare network): n samples in
    DATA units from ``model`` trained on ``schedule`` to output ``prediction_type``. ``progress``: a bar on stderr."""
    from tinydiff.trained import TrainedDenoiser

    return TrainedDenoiser(model, schedule, prediction_type, standardizer).sample(
        n, label=label, sampler=sampler, steps=steps, guidance=guidance, clip=clip, rng=seed,
        return_trajectory=return_trajectory, progress=progress)


def check_out(out: Path) -> Path:
    """OUT must be a .npy or .csv file name in a folder we can write (checked before any sampling)."""
    from tinydiff.errors import UsageError

    if out.is_dir():
        raise UsageError(f"sample: --out {out} is a folder: give a file name, such as {out / 'samples.npy'}")
    if out.suffix.lower() not in (".npy", ".csv"):
        raise UsageError(f"sample: --out must end in .npy or .csv, got {out.name!r}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"sample: cannot create the folder {out.parent} ({err.strerror}): choose another "
                         "--out") from None
    if not os.access(out.parent, os.W_OK):
        raise UsageError(f"sample: cannot write in {out.parent}: choose another --out")
    return out


def check_disk(out: Path, nbytes: int) -> None:
    from tinydiff.memory import MemoryLimitError, format_bytes

    free = shutil.disk_usage(out.parent).free
    if nbytes > free:
        raise MemoryLimitError(f"sample: {out} would take {format_bytes(nbytes)} but its disk has "
                               f"{format_bytes(free)} free: draw fewer (--n) or write elsewhere (--out)")


def write_samples(m, args, out: Path, size: int, threads) -> None:
    """Stream the batches of ``m.batches`` to OUT (.npy through a memory map, .csv row by row), via a temporary file
    renamed at the end, so an interrupted run leaves no half-written OUT."""
    shape, dtype = (args.n, *m.output_shape), np.float32 if m.kind == "images" else np.float64
    tmp = out.with_name(f".{out.name}.part")
    batches = m.batches(args.n, label=args.label, sampler=args.sampler, steps=args.steps, guidance=args.guidance,
                        clip=args.clip, rng=args.seed, batch_size=size, progress=True,   # a bar on stderr
                        churn=getattr(args, "churn", None), threads=threads)
    try:
        if out.suffix.lower() == ".csv":
            with open(tmp, "w") as f:
                for _, part in batches:
                    np.savetxt(f, part.reshape(len(part), -1), delimiter=",", fmt="%.8g")
        else:
            x = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
            for i, part in batches:
                x[i:i + len(part)] = part
            x.flush()
            del x
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()


@reports_errors
def run(args):
    from tinydiff.errors import UsageError
    from tinydiff.threads import auto_threads, blas_share, use_threads
    from tinydiff.trained import load_trained

    out = check_out(Path(args.out))
    m = load_trained(args.checkpoint, use_ema=not args.no_ema)
    if args.label is not None and not m.num_classes:
        raise UsageError("sample: --label needs a model trained with --conditional; this one is unconditional")
    if args.guidance is not None and (args.label is None or not m.num_classes):
        raise UsageError("sample: --guidance steers the samples towards a --label, so it needs a model trained with "
                         "--conditional and a --label" + ("" if m.num_classes else "; this model is unconditional"))
    model = "mlp" if m.kind == "points" else "unet"
    threads = auto_threads(model) if args.threads == "auto" else args.threads
    try:
        with use_threads(threads, blas_share(threads, model)):   # the memory probe runs the kernels sampling will
            size = m.plan_batches(args.n, args.batch_size, m.uses_guidance(args.label, args.guidance), in_memory=False)
            check_disk(out, args.n * int(np.prod(m.output_shape)) * (4 if m.kind == "images" else 8))
            write_samples(m, args, out, size, threads)
    except ValueError as err:          # steps > T, a label out of range, ...
        if isinstance(err, TinydiffError):
            raise
        raise UsageError(f"sample: {err}") from None
    print(f"wrote {args.n} {m.kind} of shape {m.output_shape} to {out}")
    if args.plot is not None:
        from tinydiff import viz

        x = np.loadtxt(out, delimiter=",", ndmin=2) if out.suffix.lower() == ".csv" else np.load(out, mmap_mode="r")
        if m.kind == "images":
            how = m.sampling_defaults             # what the sampling used where a flag was not given
            how.update({k: v for k, v in dict(sampler=args.sampler, steps=args.steps, guidance=args.guidance).items()
                        if v is not None})
            what = "unconditional" if args.label is None else f"label {args.label}, guidance {how['guidance']:g}"
            shown = min(len(x), 256)
            title = (f"{shown} of {len(x)} samples: {what}; {how['sampler']}, {how['steps'] or m.schedule.T} steps, "
                     f"seed {args.seed}")
            viz.save(viz.image_grid(np.asarray(x[:256]).reshape(-1, *m.output_shape), title=title), args.plot)
        elif x.shape[1] != 2:
            print(f"--plot draws 2D points only; these have dimension {x.shape[1]}")
        else:
            viz.save(viz.scatter_strip([(f"{len(x)} samples ({m.config.data})", np.asarray(x))], lim=None, size=4,
                                       s=2), args.plot)
    return 0
