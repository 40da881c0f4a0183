"""``python -m tinydiff quality``: the 2D quality bar. Train each toy set with the default settings, sample, and test.

For every data set: train ``TrainConfig(data=name, objective=...)`` (the defaults `train` uses), draw N samples with
the objective's default sampler (DDPM over all T steps for ddpm), and compare them with N held-out points (a fresh seed) and, as the floor, a second held-out sample:

- MMD^2 (mixture of RBF kernels) and its permutation-test p-value: p > 0.05 means the test cannot tell them apart;
- energy distance and exact W2^2 (on 1000 points), each beside its floor;
- checkerboard: fraction of samples on the filled squares; 8 Gaussians: modes covered (>= 1/4 of a fair share
  within 3 std).

``--markdown FILE`` writes the table (with the command and the machine) for docs/quality_2d.md.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from tinydiff.commands.common import positive_int, reports_errors
from tinydiff.metrics.quality import DATASETS, HELDOUT_SEEDS

MARKDOWN_INTRO = """# Quality of the 2D models (the default settings of `python -m tinydiff train`)

For each toy set: train with the defaults (`TrainConfig()`, `--objective` as given), draw 2,000 samples with the
objective's default sampler (ddpm: DDPM over all T steps; ncsn: predictor-corrector; edm: Karras et al.'s Heun), and compare
them with 2,000 held-out points. "floor" is the same metric between two held-out samples of the same size: the value
a perfect model would get, up to sampling noise (MMD^2 and energy distance are unbiased, so their floors scatter
around 0; W2^2 of finite samples is biased upwards). p-value: MMD permutation test (mixture of RBF kernels); above
0.05 the test cannot tell the samples from held-out data at the 5% level. Pass: p > 0.05, and checkerboard in-support
fraction >= 0.97, and 8 Gaussians every mode covered. "train s" is wall time for training on a shared machine (the load
average is given below); "sample s" is the time to draw the 2,000 samples.

"""


def add_arguments(p):
    p.add_argument("--datasets", nargs="+", default=list(DATASETS), help=f"default: {' '.join(DATASETS)}")
    p.add_argument("--n", type=positive_int, default=2000, help="samples and held-out points (default 2000)")
    p.add_argument("--steps", type=positive_int, default=None, help="override the default training steps")
    p.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    p.add_argument("--objective", choices=("ddpm", "ncsn", "edm", "flow"), default="ddpm",
                   help="train with this objective (default ddpm) and sample with its default sampler and steps: ddpm "
                        "over all T, ncsn pc (200 calls), edm Heun (35 calls), flow midpoint in t (20 calls)")
    p.add_argument("--coupling", choices=("independent", "ot"), default="independent", help="flow only")
    p.add_argument("--reflow", action="store_true",
                   help="flow only: then one round of reflow per set (10,000 pairs, --reflow-steps steps) and MMD^2 / "
                        "W2^2 with their floors at 1, 2 and 4 Euler steps, before and after (a second table)")
    p.add_argument("--reflow-steps", type=positive_int, default=2000, help="training steps of the reflow (2000)")
    p.add_argument("--permutations", type=positive_int, default=500, help="MMD permutation test (default 500)")
    p.add_argument("--markdown", type=Path, default=None, help="also write the table to this markdown file")
    p.add_argument("--out", type=Path, default=None, help="keep each model and a samples figure in OUT/<dataset>/")
    p.add_argument("--profile", action="store_true",
                   help="instead: time one training step at batch 256 and 1024 and show where the time goes")


def reflow_table(args, trainers: dict, nfes=(1, 2, 4)) -> str:
    """One round of reflow of each trained flow; MMD^2 and W2^2 at ``nfes`` Euler steps before and after."""
    import tempfile

    from tinydiff.data.toy2d import make_dataset
    from tinydiff.flow import load_flow, measure_straightness, reflow
    from tinydiff.metrics import points as P

    lines = ["| data set | model | straightness | reflow s (pairs + training) | " + " | ".join(
        f"NFE {k}: MMD^2 / W2^2" for k in nfes) + " |", "|---" * (4 + len(nfes)) + "|"]
    for name, trainer in trainers.items():
        held, held2 = (make_dataset(name, args.n, rng=s) for s in HELDOUT_SEEDS)
        floor = (P.mmd2(held2, held), P.w2_squared(held2[:1000], held[:1000]))
        work = Path(tempfile.mkdtemp()) if args.out is None else args.out / name
        teacher = work / "model.npz"
        trainer.save(teacher)
        t0 = time.perf_counter()
        rectified = reflow(teacher, work / "reflow", steps=args.reflow_steps, seed=args.seed, progress=False)
        reflow_s = time.perf_counter() - t0
        for label, path, secs in (("1-rectified", teacher, None), ("2-rectified", rectified.checkpoint_path, reflow_s)):
            m = load_flow(path)
            cells = []
            for k in nfes:
                x = m.sample(args.n, sampler="euler", steps=k, rng=args.seed + 1)
                cells.append(f"{P.mmd2(x, held):.2e} / {P.w2_squared(x[:1000], held[:1000]):.3f}")
            s = measure_straightness(m.network, m.process, n=1000, seed=args.seed + 1)
            lines.append(f"| {name} | {label} | {s:.4f} | {'' if secs is None else f'{secs:.0f}'} | "
                         + " | ".join(cells) + " |")
            print(lines[-1], flush=True)
        lines.append(f"| {name} | floor (held-out vs held-out) | | | " + " | ".join(
            f"{floor[0]:.2e} / {floor[1]:.3f}" for _ in nfes) + " |")
    return "\n".join(lines)


@reports_errors
def run(args):
    from tinydiff.bench.machine import machine_summary
    from tinydiff.metrics.quality import evaluate, markdown_table, passes
    from tinydiff.train import TrainConfig, trainer_class

    if args.profile:
        from tinydiff.bench.profile import profile_train_step

        profile_train_step()
        return 0
    rows, trainers = [], {}
    for name in args.datasets:
        config = TrainConfig.for_data(name, seed=args.seed, objective=args.objective, coupling=args.coupling)
        if args.steps:
            config.steps = args.steps
        out = args.out / name if args.out else None
        trainer = trainer_class(config.objective)(config, out)
        t0 = time.perf_counter()
        trainer.train(progress=True)                   # bars on stderr; the table goes to stdout
        train_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        model = trainer.trained()                                            # EMA weights
        samples, traj = model.sample(args.n, rng=args.seed + 1, return_trajectory=True,   # the objective's default
                                     progress=True)
        sample_s = time.perf_counter() - t0
        row = {"data": name, "steps": config.steps, "sampler": model.sampling_defaults["sampler"], "nfe": traj.nfe,
               "train_s": train_s, "sample_s": sample_s,
               **evaluate(samples, name, args.n, args.permutations, progress=True)}
        rows.append(row)
        trainers[name] = trainer
        print(markdown_table([row]).splitlines()[-1], flush=True)
        if out is not None:
            from tinydiff import viz
            from tinydiff.data.toy2d import make_dataset

            viz.save(viz.data_vs_samples(make_dataset(name, args.n, rng=HELDOUT_SEEDS[0]), samples, title=name),
                     out / "samples.png")
    table = markdown_table(rows)
    print(table)
    if args.reflow:
        table += "\n\nAfter one reflow (Euler in t; MMD^2 and W2^2 against held-out data, floor beside):\n\n" + \
            reflow_table(args, trainers)
        print(table)
    if args.markdown is not None:
        command = "python -m tinydiff " + " ".join(sys.argv[1:]) if sys.argv[0].endswith("__main__.py") else \
            "python -m tinydiff quality ..."
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(MARKDOWN_INTRO + f"Command: `{command}`\n\nMachine: {machine_summary()}\n\n{table}\n")
        print(f"wrote {args.markdown}")
    return 0 if all(passes(r) for r in rows) else 1
