"""``python -m tinydiff evaluate --checkpoint DIR/model.npz [--n 10000]``: how good are a MNIST model's digits?

Draws ``--n`` images (for a conditional model: labels 0..9 in turn, once per ``--guidance`` scale) and prints, beside
each number, its floor (the same metric for n real training images against the test set):

    FD        Frechet distance of the MNIST classifier's features, against the 10,000 test images
    KID       kernel distance (mean +- std over subsets of 1000)
    accuracy  the classifier's accuracy on conditional samples, overall and per class
    memorisation: fraction of samples nearer a training image than the median test image is (test images: ~0.5)

Sampling dominates the time: about n * steps * (2 with guidance) UNet evaluations; see docs/mnist.md.

With ``--nfe 1,2,4,...`` it compares models at equal cost instead: for each checkpoint (``--checkpoint`` and those of
``--compare``) and each NFE, the sampler with the lowest FD on a small pilot among those that spend exactly that many
evaluations, then the same numbers at ``--n``, as one markdown table (``--markdown FILE``; tinydiff.bench.nfe_mnist).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from tinydiff.commands.common import positive_int, reports_errors, thread_count
from tinydiff.commands.sample import clip_value
from tinydiff.samplers import METHODS
from tinydiff.trained import IMAGE_DEFAULTS


def guidance_list(text: str) -> list[float]:
    """--guidance: comma-separated finite numbers, checked at parse time (before ~15 s of loading)."""
    try:
        scales = [float(s) for s in text.split(",")]
    except ValueError:
        scales = []
    if not scales or not all(math.isfinite(s) for s in scales):
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers such as 1,2, got {text!r}")
    return scales


def add_arguments(p):
    p.add_argument("--checkpoint", required=True, type=Path, help="a model.npz trained with --data mnist")
    p.add_argument("--n", type=positive_int, default=2000, help="images per evaluation (default 2000; 10000 as in "
                                                                "the papers is ~5x slower)")
    d = IMAGE_DEFAULTS
    p.add_argument("--sampler", default=d["sampler"], choices=METHODS, help=f"sampler (default {d['sampler']}, as `sample`)")
    p.add_argument("--steps", type=positive_int, default=d["steps"], help=f"sampling steps (default {d['steps']})")
    p.add_argument("--guidance", type=guidance_list, default=None,
                   help=f"comma-separated guidance scales for a conditional model (default 1,{d['guidance']:g}: "
                        f"no guidance, and `sample`'s default)")
    p.add_argument("--clip", type=clip_value, default=None,
                   help="clip each x0 estimate, as in `sample` (default: no clipping)")
    p.add_argument("--batch-size", type=positive_int, default=250, help="images per sampler call (default 250)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--classifier", type=Path, default=None, help="classifier weights (default: the shipped file)")
    p.add_argument("--no-ema", action="store_true", help="use the raw training weights instead of their EMA")
    p.add_argument("--threads", type=thread_count, default="auto",
                   help="cores while sampling: threads of the U-Net's kernels (default auto: every core this "
                        "process may use; the samples are the same bits on any number)")
    p.add_argument("--blas-threads", type=positive_int, default=None,
                   help="BLAS threads while sampling (default 1: the U-Net's work is tinydiff's kernels)")
    p.add_argument("--memo-test", type=positive_int, default=2000,
                   help="test images for the memorisation reference (default 2000; each costs a pass over the 60,000 "
                        "training images)")
    p.add_argument("--json", type=Path, default=None, help="also write the numbers to this .json file")
    g = p.add_argument_group("equal-NFE comparison (tinydiff.bench.nfe_mnist)")
    g.add_argument("--nfe", type=positive_int_list, default=None,
                   help="compare at these numbers of guided-model evaluations, e.g. 1,2,4,8,16,32, instead of one "
                        "--sampler/--steps (one --guidance scale; no memorisation check)")
    g.add_argument("--compare", type=Path, nargs="+", default=[], metavar="CHECKPOINT",
                   help="more model.npz files for the same table (with --nfe)")
    g.add_argument("--samplers", default=None,
                   help="comma-separated candidate samplers per model, those that apply to each (default: ddim,dpm++2m "
                        "for diffusion; euler,midpoint,heun in t and dpm++2m for flow)")
    g.add_argument("--pilot-n", type=int, default=100,
                   help="samples per candidate in the pilot that picks each cell's sampler (default 100; 0: first)")
    g.add_argument("--markdown", type=Path, default=None, help="also write the table to this .md file")


def positive_int_list(text: str) -> list[int]:
    """--nfe: comma-separated positive integers, e.g. 1,2,4."""
    try:
        values = [int(s) for s in text.split(",")]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers such as 1,2,4, got {text!r}")
    return values


def generate(model, schedule, standardizer, labels, n: int, guidance: float, sampler: str, steps: int, seed: int,
             batch_size: int, prediction_type: str = "epsilon", clip=None, progress: bool = False) -> np.ndarray:
    """The older by-hand form of ``TrainedDenoiser.sample(n, label=labels, ..., rng=seed, batch_size=...)`` (kept for
    callers holding a bare network): n images (n, 1, 28, 28) in [0, 1], the same whatever the batch size.
    ``progress``: one bar (stderr) over every sampling step of every batch."""
    from tinydiff.trained import TrainedDenoiser

    return TrainedDenoiser(model, schedule, prediction_type, standardizer).sample(
        n, label=labels, sampler=sampler, steps=steps, guidance=guidance, clip=clip, rng=seed, batch_size=batch_size,
        threads=None, progress=progress)


@reports_errors
def run(args):
    from tinydiff.data.mnist import load_mnist_float
    from tinydiff.errors import UsageError
    from tinydiff.metrics.images import format_report, image_report, real_data_floor
    from tinydiff.models.classifier import load_classifier
    from tinydiff.threads import auto_threads, use_threads
    from tinydiff.trained import load_trained

    if args.nfe is not None:
        return run_nfe(args)
    if args.compare or args.markdown is not None:
        raise UsageError("evaluate: --compare and --markdown belong to the equal-NFE table: add --nfe 1,2,4,...")
    m = load_trained(args.checkpoint, use_ema=not args.no_ema)
    if m.kind != "images":
        raise UsageError("evaluate: this is a point model; evaluate image models (train --data mnist)")
    if args.guidance is not None and not m.num_classes:
        raise UsageError("evaluate: --guidance needs a class-conditional model (trained with --conditional); this one "
                         "is unconditional")
    classifier = load_classifier(args.classifier)
    train_x, _ = load_mnist_float(split="train")
    test_x, _ = load_mnist_float(split="test")
    print(f"embedding {len(test_x)} test images and the floor's {args.n} training images ...", file=sys.stderr,
          flush=True)
    test_features = classifier.embed(test_x)
    rng = np.random.default_rng(args.seed)
    floor_pick = train_x[rng.choice(len(train_x), args.n, replace=False)]
    floor = real_data_floor(classifier.embed(floor_pick), test_features, n=args.n, rng=args.seed)
    results = {"n": args.n, "sampler": args.sampler, "steps": args.steps, "clip": args.clip,
               "floor": {"fd": floor["fd"], "kid": floor["kid"]}}
    print(f"floor ({args.n} training images vs the test set): FD {floor['fd']:.3f}   "
          f"KID {floor['kid'][0]:.5f} +- {floor['kid'][1]:.5f}")
    labels = np.arange(args.n) % m.num_classes if m.num_classes else None
    threads = auto_threads("unet") if args.threads == "auto" else args.threads
    scales = (args.guidance or [1.0, IMAGE_DEFAULTS["guidance"]]) if m.num_classes else [1.0]
    for s in scales:
        t0 = time.perf_counter()
        with use_threads(threads, args.blas_threads or 1):     # the U-Net: one pool gets the cores
            images = m.sample(args.n, label=labels, sampler=args.sampler, steps=args.steps, guidance=s, clip=args.clip,
                              rng=args.seed, batch_size=args.batch_size, threads=None, progress=True)
        seconds = time.perf_counter() - t0
        print(f"evaluating {args.n} images: features, FD, KID, accuracy, memorisation against "
              f"{len(train_x)} training images ...", file=sys.stderr, flush=True)
        report = image_report(images, classifier, test_x, test_features, train_x, labels, args.memo_test)
        report["sampling_seconds"] = seconds
        results[f"guidance={s:g}" if m.num_classes else "unconditional"] = report
        name = f"guidance {s:g}" if m.num_classes else "samples"
        print(format_report(name, report) + f"\n  ({args.n} images sampled in {seconds:.0f} s)")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))
        print(f"wrote {args.json}")
    return 0


def run_nfe(args):
    """``--nfe``: the equal-NFE table of every checkpoint (tinydiff.bench.nfe_mnist)."""
    import shlex

    from tinydiff.bench import nfe_mnist
    from tinydiff.errors import UsageError
    from tinydiff.metrics.judge import DigitJudge
    from tinydiff.trained import load_trained

    scales = args.guidance or [IMAGE_DEFAULTS["guidance"]]
    if len(scales) != 1:
        raise UsageError(f"evaluate --nfe: give one --guidance scale (the table holds one), got {scales}")
    models = {}
    for path in [args.checkpoint, *args.compare]:
        m = load_trained(path, use_ema=not args.no_ema)
        if m.kind != "images":
            raise UsageError(f"evaluate: {path} is a point model; evaluate image models (train --data mnist)")
        if not m.num_classes:
            raise UsageError(f"evaluate --nfe: {path} is unconditional; the table judges class-conditional models")
        name = Path(path).stem if Path(path).stem != "model" else Path(path).parent.name
        models[name if name not in models else f"{name} ({len(models)})"] = m
    samplers = None if args.samplers is None else args.samplers.split(",")
    try:
        for m in models.values():
            nfe_mnist.candidates_for(m, samplers)
    except ValueError as err:
        raise UsageError(f"evaluate --samplers: {err}") from None
    start_load, cpu = nfe_mnist.load_average(), time.process_time()
    print(f"embedding the test images and the floor's {args.n} training images ...", file=sys.stderr, flush=True)
    judge = DigitJudge(args.classifier, seed=args.seed)
    floor = judge.floor(args.n)
    from tinydiff.threads import auto_threads, use_threads

    threads = auto_threads("unet") if args.threads == "auto" else args.threads
    with use_threads(threads, args.blas_threads or 1):                  # the U-Net: one pool gets the cores
        cells = nfe_mnist.compare_at_equal_nfe(models, judge, args.nfe, args.n, scales[0], samplers, args.pilot_n,
                                               args.seed, args.batch_size,
                                               log=lambda line: print(line, file=sys.stderr, flush=True))
    load = (start_load, nfe_mnist.load_average()) if start_load is not None else None
    command = "python -m tinydiff " + " ".join(shlex.quote(a) for a in getattr(args, "argv", []) or [])
    table = nfe_mnist.format_table(cells, floor, args.n, scales[0], models, args.pilot_n, args.seed, command,
                                   time.process_time() - cpu, load)
    print(table)
    if args.markdown is not None:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(table)
        print(f"wrote {args.markdown}")
    if args.json is not None:
        from dataclasses import asdict

        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"n": args.n, "guidance": scales[0], "floor": floor,
                                         "cells": [asdict(c) for c in cells]}, indent=1))
        print(f"wrote {args.json}")
    return 0
