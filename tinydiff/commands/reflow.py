"""``python -m tinydiff reflow --checkpoint DIR/model.npz --out DIR2``: one round of rectified flow (Liu et al. 2023).

Draws N (noise, sample) pairs from the flow-matching model in DIR (its ODE, midpoint in t), trains a new flow on those
pairs starting from its weights, and writes DIR2/model.npz (a flow checkpoint like any other: `sample` reads it), its
loss log and, with --straightness, the straightness of both flows (Liu et al.'s S, 0 for straight paths).
"""

from __future__ import annotations

from pathlib import Path

from tinydiff.commands.common import positive_int, reports_errors


def add_arguments(p):
    p.add_argument("--checkpoint", required=True, type=Path, help="a model.npz trained with --objective flow")
    p.add_argument("--out", required=True, type=Path, help="folder for the rectified model.npz")
    p.add_argument("--pairs", type=positive_int, default=10_000, help="(noise, sample) pairs to draw (default 10000)")
    p.add_argument("--ode-steps", type=positive_int, default=25,
                   help="midpoint steps of the teacher's ODE per pair (default 25 = 50 model calls)")
    p.add_argument("--steps", type=positive_int, default=None, help="training steps (default: the teacher's)")
    p.add_argument("--seed", type=int, default=0, help="seed of the noises and of training (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


@reports_errors
def run(args):
    import numpy as np

    from tinydiff.commands.train import write_outputs
    from tinydiff.flow import load_flow, measure_straightness, reflow

    path = args.checkpoint / "model.npz" if args.checkpoint.is_dir() else args.checkpoint
    try:
        trainer = reflow(path, args.out, n_pairs=args.pairs, steps=args.steps, ode_steps=args.ode_steps,
                         seed=args.seed, progress=not args.quiet)
    except ValueError as err:
        raise SystemExit(f"reflow: {err}") from None
    write_outputs(trainer, args.out)
    teacher, student = load_flow(path), load_flow(trainer.checkpoint_path)
    before = measure_straightness(teacher.network, teacher.process, n=1000, seed=args.seed + 1)
    after = measure_straightness(student.network, student.process, n=1000, seed=args.seed + 1)
    print(f"reflow round {trainer.config.reflow}: {args.pairs} pairs, {trainer.config.steps} steps in "
          f"{trainer.log.seconds:.1f} s; final loss {np.mean(trainer.log.loss[-100:]):.4f}; straightness "
          f"{before:.4f} -> {after:.4f}; wrote {trainer.checkpoint_path}")
    return 0
