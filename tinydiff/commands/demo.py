"""``python -m tinydiff demo [--out DIR]``: the whole story on 2D points in about a minute on a laptop CPU.

Trains the MLP denoiser on a toy set, samples with DDPM, evaluates the samples against held-out data and writes:

    data_vs_samples.png   the data and 2,000 samples side by side and overlaid
    forward_chain.png     q(x_t | x_0) at a few steps: the data dissolving into noise
    reverse_chain.png     the DDPM reverse chain at a few steps: noise condensing into data
    reverse_chain.gif     the same, animated
    loss.png, loss_vs_t.png   the training loss per step, and per time step
    vector_field.png      the learned -eps_theta(x, t) on a grid: arrows point towards the data
    model.npz, metrics.json
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from tinydiff.commands.common import reports_errors


def add_arguments(p):
    p.add_argument("--out", type=Path, default=Path("demo_out"), help="folder for the figures (default demo_out)")
    p.add_argument("--data", default="moons", help="a built-in toy set (default moons)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="tiny sizes, seconds instead of a minute (for tests)")


@reports_errors
def run(args):
    from tinydiff import viz
    from tinydiff.commands.train import write_outputs
    from tinydiff.data.toy2d import make_dataset
    from tinydiff.diffusion import q_sample
    from tinydiff.metrics.quality import evaluate, passes
    from tinydiff.threads import blas_thread_count, blas_threads
    from tinydiff.train import TrainConfig, Trainer

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # enough for moons; the linear schedule's small final betas keep a short run's stray eps errors from flinging
    # a few samples far away (docs/quality_2d.md), which the cosine schedule of the defaults needs 8000 steps to avoid
    config = TrainConfig(data=args.data, seed=args.seed, steps=4000, batch_size=512, lr=2e-3, schedule="linear")
    n = 2000
    if args.quick:
        config.steps, config.n_train, config.T, config.checkpoint_every, n = 100, 1000, 50, 50, 200
        config.batch_size = 64                                                 # (NUMBA_DISABLE_JIT=1 stays bearable)
        config.ema_decay = 0.9                                                 # a short run: short EMA memory
    t_start = time.perf_counter()

    # ---- train -----------------------------------------------------------------------------------------------
    trainer = Trainer(config, out)
    print(f"training {trainer.model.num_parameters()} parameters on {args.data} for {config.steps} steps")
    trainer.train(progress=not args.quick)
    write_outputs(trainer, out)
    schedule, std = trainer.schedule, trainer.standardizer
    T = schedule.T

    # ---- sample, with the whole reverse chain ------------------------------------------------------------------
    trained = trainer.trained()                                                 # the EMA weights
    samples, traj = trained.sample(n, rng=args.seed + 1, return_trajectory=True, progress=not args.quick)
    show = [T - 1, T // 2, T // 5, T // 20, 0]
    gx, gy, u, v = trained.denoising_field(show)
    data = make_dataset(args.data, n, rng=10_001)

    # ---- evaluate ---------------------------------------------------------------------------------------------
    row = evaluate(samples, args.data, n, permutations=100 if args.quick else 500, progress=not args.quick)
    row["passes"] = passes(row)
    (out / "metrics.json").write_text(json.dumps(row, indent=1))
    print("  ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    if args.quick and not row["passes"]:
        print(f"(--quick: {config.steps} training steps and a {config.T}-step chain are far too few for samples that "
              "match the data, so passes=False is expected; quick mode only checks that every stage runs. Run "
              "without --quick for the real demo.)")

    # ---- figures -----------------------------------------------------------------------------------------------
    viz.save(viz.data_vs_samples(data, samples, title=f"{args.data}: data and DDPM samples"),
             out / "data_vs_samples.png")
    x0 = std.transform(data)                                                     # standardised, as the model sees it
    rng = np.random.default_rng(args.seed)
    forward = [q_sample(schedule, x0, np.full(n, t), rng.standard_normal(x0.shape)) for t in show[::-1]]
    viz.save(viz.trajectory_strip([x0] + forward, ["data"] + show[::-1], title="forward chain q(x_t | x_0)"),
             out / "forward_chain.png")
    steps = [T - 1, T // 2, T // 4, T // 10, T // 40, -1]                       # denser near the end (-1: samples)
    idx = [int(np.flatnonzero(traj.t == s)[0]) for s in steps]                  # traj.x[i] is x at step traj.t[i]
    viz.save(viz.trajectory_strip(traj.x[idx], steps[:-1] + ["samples"], title="reverse chain (DDPM)"),
             out / "reverse_chain.png")
    L = len(traj.x)
    frames = np.unique(np.r_[(L - np.geomspace(L, 1, 12 if args.quick else 60)).astype(int), L - 1])  # dense near t=0
    viz.trajectory_gif(traj.x[frames], traj.t[frames], out / "reverse_chain.gif", trail=x0)
    viz.save(viz.vector_field(gx, gy, u, v, show, data=x0, unit=True, color_label="|eps_theta(x, t)|"),
             out / "vector_field.png")
    with blas_threads(config.blas_threads):      # the limit training and sampling ran under, as BLAS reports it
        used = blas_thread_count()
    print(f"demo finished in {time.perf_counter() - t_start:.0f} s with {used or 'an unknown number of'} BLAS "
          f"thread(s); figures in {out}")
    return 0
