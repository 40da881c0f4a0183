"""Few-step accuracy of the samplers: distance to the data against the number of model evaluations (NFE).

    python -m tinydiff.bench.nfe                      # exact denoiser of 8 Gaussians, the table in docs/samplers.md
    python -m tinydiff.bench.nfe --checkpoint data/checkpoints/8gaussians.npz      # a trained MLP (`train` CLI)

(``python -m tinydiff.bench_nfe`` is the same command under its older name.)

With the exact denoiser (:mod:`tinydiff.analytic`) the model is perfect, so every distance above the noise floor is
the sampler's discretisation error. The floor row compares two independent samples of the data of the same size.
With a trained checkpoint the errors are the model's and the sampler's together.
"""

from __future__ import annotations

import argparse

import numpy as np

from tinydiff.errors import TinydiffError
from tinydiff.metrics.points import mmd2, w2_squared
from tinydiff.rng import make_rng
from tinydiff.samplers import sample

__all__ = ["nfe_table", "format_nfe_table", "mode_statistics"]


def nfe_table(model, reference, schedule, methods=("ddpm", "ddim", "dpm++2m", "euler", "heun"),
              steps_list=(5, 10, 20, 50), n=1000, rng=0, mixture=None, w2_points=1000, to_data=None,
              **sample_kwargs) -> list[dict]:
    """Sample n points with each method and step count; compare with ``reference`` (m, D).

    ``to_data``: a function applied to the samples before they are compared, e.g. the ``inverse_transform`` of the
    Standardizer of a trained model (which samples in standardised units) so that they are in the reference's units.

    Returns one dict per run: method, steps, nfe (model calls), mmd2 (unbiased MMD^2), w2 (exact W2 of the
    empirical measures on the first ``w2_points`` points of each). With ``mixture`` (a GaussianMixture) also
    mode_std (within-mode RMS distance to the nearest mean, per axis: sqrt(tr S / D) if perfect) and weight_tv (total
    variation between the fractions of points nearest each mean and the weights) and loglik (the mixture's mean
    log-density of the samples; compare with that of a data sample: higher means modes too narrow, lower too wide):
    narrow modes show discretisation
    errors long before MMD or W2 at these sample sizes do.
    """
    rng = make_rng(rng)
    reference = np.asarray(reference)
    rows = []
    for method in methods:
        for steps in steps_list:
            x, traj = sample(model, (n,) + reference.shape[1:], schedule, method=method, steps=steps, rng=rng,
                             return_trajectory=True, **sample_kwargs)
            x = x if to_data is None else to_data(x)
            m = min(n, w2_points, len(reference))
            row = {"method": method, "steps": steps, "nfe": traj.nfe, "mmd2": mmd2(x, reference),
                   "w2": float(np.sqrt(max(w2_squared(x[:m], reference[:m]), 0.0)))}
            if mixture is not None:
                row.update(mode_statistics(x, mixture), loglik=float(np.mean(mixture.log_prob(x))))
            rows.append(row)
    return rows


def mode_statistics(x, mixture) -> dict:
    """mode_std: RMS per-axis distance of each point to its nearest mixture mean; weight_tv: TV distance of the mode
    fractions to the mixture weights."""
    k = np.argmin(((x[:, None, :] - mixture.means[None]) ** 2).sum(-1), axis=1)  # (n,) nearest mean
    frac = np.bincount(k, minlength=len(mixture.weights)) / len(x)
    return {"mode_std": float(np.sqrt(np.mean((x - mixture.means[k]) ** 2))),
            "weight_tv": float(0.5 * np.abs(frac - mixture.weights).sum())}


def format_nfe_table(rows, floor: dict | None = None) -> str:
    """A Markdown table of :func:`nfe_table` rows (and an optional noise-floor row)."""
    extra = "mode_std" in rows[0]
    lines = ["| method | steps | NFE | MMD^2 | W2 |" + (" mode std | weight TV |" if extra else ""),
             "| --- | ---: | ---: | ---: | ---: |" + (" ---: | ---: |" if extra else "")]
    fmt = lambda r: (f" {r['mode_std']:.4f} | {r['weight_tv']:.3f} |" if extra else "")  # noqa: E731
    for r in rows:
        lines.append(f"| {r['method']} | {r['steps']} | {r['nfe']} | {r['mmd2']:.2e} | {r['w2']:.4f} |" + fmt(r))
    if floor is not None:
        lines.append(f"| (data vs data) | | | {floor['mmd2']:.2e} | {floor['w2']:.4f} |" + fmt(floor))
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--schedule", default="cosine", help="schedule name (default cosine)")
    p.add_argument("--T", type=int, default=1000, help="diffusion steps of the schedule (default 1000)")
    p.add_argument("--n", type=int, default=2000, help="samples per run (default 2000; W2 uses the first 1000)")
    p.add_argument("--steps", default="5,10,20,50,100", help="comma-separated step counts")
    p.add_argument("--methods", default="ddpm,ddim,dpm++2m,euler,heun")
    p.add_argument("--spacing", default="trailing", help="timestep spacing (default trailing)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint", default=None, help="a model.npz of `python -m tinydiff train` on a Gaussian-mixture "
                   "set (8gaussians, 25gaussians) instead of the exact denoiser; its schedule replaces --schedule/--T")
    p.add_argument("--clip", type=float, default=None, help="clamp the x0 estimate to [-clip, clip] (model units)")
    a = p.parse_args(argv)
    try:
        run(a)
    except TinydiffError as err:                 # a bad checkpoint or data set: one line, exit code 2
        p.exit(2, f"error: {err}\n")


def run(a) -> None:
    from tinydiff.analytic import GaussianMixture, GaussianMixtureDenoiser
    from tinydiff.data.toy2d import gaussian_mixture_params
    from tinydiff.schedules import NoiseSchedule

    extra, to_data, data, what = {}, None, "8gaussians", "exact denoiser"
    if a.checkpoint is not None:
        from tinydiff.trained import load_trained

        trained = load_trained(a.checkpoint)
        if trained.kind != "points":
            raise TinydiffError(f"{a.checkpoint} is an image model; the NFE bench compares points with a Gaussian "
                                "mixture: give a model trained with --data 8gaussians or 25gaussians")
        model, schedule, config = trained.network, trained.schedule, trained.config
        data, to_data = config.data, trained.standardizer.inverse_transform
        extra = {"prediction_type": trained.prediction_type, "clip": a.clip}
        what = f"trained MLP {a.checkpoint} ({config.steps} steps){'' if a.clip is None else f', clip {a.clip:g}'}"
        a.schedule, a.T = config.schedule, schedule.T
    mix = GaussianMixture.from_params(gaussian_mixture_params(data))
    if a.checkpoint is None:
        schedule = NoiseSchedule.from_name(a.schedule, T=a.T)
        model = GaussianMixtureDenoiser(mix, schedule)
    reference = mix.sample(a.n, rng=a.seed + 1)
    other = mix.sample(a.n, rng=a.seed + 2)
    m = min(a.n, 1000)
    floor = {"mmd2": mmd2(other, reference), "w2": float(np.sqrt(max(w2_squared(other[:m], reference[:m]), 0.0))),
             **mode_statistics(other, mix)}
    from tinydiff.threads import blas_threads

    with blas_threads(1):  # many small matmuls: one BLAS thread is fastest
        rows = nfe_table(model, reference, schedule, a.methods.split(","), [int(s) for s in a.steps.split(",")], a.n,
                         a.seed, mixture=mix, timestep_spacing=a.spacing, to_data=to_data, **extra)
    print(f"{data}, {what}, {a.schedule} T={a.T}, {a.spacing} spacing, n={a.n}, seed {a.seed}")
    print(format_nfe_table(rows, floor))


if __name__ == "__main__":
    main()
