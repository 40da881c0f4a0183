"""Digits at equal cost: MNIST models compared at the same number of network evaluations (NFE), by the judge of
``evaluate`` (class accuracy, FD and KID of the classifier's features, against their floor at the same n).

    python -m tinydiff evaluate --checkpoint data/checkpoints/mnist_conditional.npz \\
        --compare data/checkpoints/mnist_flow.npz --nfe 1,2,4,8,16,32 --n 500 --markdown table.md

For each model and each NFE the candidate samplers that can spend exactly that many evaluations (Euler-type: 1 per
step; midpoint and Heun in t: 2 per step; the sigma-frame Heun: 2 per step but 1 for its last) are tried on a small
pilot (``pilot_n`` samples, another seed), and the one with the lowest FD is run at full n. Counting: one NFE is one
evaluation of the *guided* model, u~ = u(x, t, none) + s (u(x, t, y) - u(x, t, none)); with guidance s != 1 it is one
network call on the conditional and unconditional copies together (2B images), so it costs two unguided
evaluations (the library's ``Trajectory.nfe`` counts it the same way).
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# Samplers tried per objective when none are named. diffusion: DDIM (Song et al. 2021) and DPM-Solver++(2M) (Lu et
# al. 2022), the best of chapter 8 at few steps. flow: Euler, midpoint and Heun in t (chapter 17), and DPM-Solver++(2M),
# which applies to any Gaussian path through the sigma frame (chapter 17: same path, same family).
CANDIDATES = {"ddpm": ("ddim", "dpm++2m"), "flow": ("euler-t", "midpoint-t", "heun-t", "dpm++2m")}

# The MNIST quality bar (README, MNIST): accuracy >= 97 % and FD within 10x its floor at the same n.
BAR_ACCURACY, BAR_FD_RATIO = 0.97, 10.0


@dataclass
class Cell:
    """One (model, NFE) entry: the chosen sampler and steps, its scores, and what the pilot measured."""
    model: str
    nfe: int
    sampler: str | None = None          # None: no candidate spends exactly nfe evaluations
    steps: int | None = None
    accuracy: float = float("nan")
    fd: float = float("nan")
    kid: tuple = (float("nan"), float("nan"))
    seconds: float = 0.0                 # wall time of the full-n sampling
    cpu_seconds: float = 0.0             # its CPU time (this process)
    pilot: dict = field(default_factory=dict)   # sampler -> pilot FD

    def meets_bar(self, floor_fd: float) -> bool:
        return bool(self.accuracy >= BAR_ACCURACY and self.fd <= BAR_FD_RATIO * floor_fd)


def _zero_model(x, t, y=None):
    return np.zeros_like(x)


def steps_for_nfe(trained, sampler: str, nfe: int) -> int | None:
    """The step count at which ``sampler`` makes exactly ``nfe`` model evaluations on ``trained``'s process, or None.
    Counted, not assumed: a stand-in model of zeros is sampled once per candidate step count (microseconds)."""
    from tinydiff.samplers import sample

    for steps in range(1, nfe + 1):
        _, traj = sample(_zero_model, (1, 1), trained.process, method=sampler, steps=steps, return_trajectory=True,
                         prediction_type=trained.prediction_type)
        if traj.nfe == nfe:
            return steps
        if traj.nfe > nfe:
            return None
    return None


def candidates_for(trained, names=None) -> list[str]:
    """The samplers to try for ``trained``: ``names`` (plain names resolved as ``sample --sampler`` does: "heun" is
    "heun-t" for a flow model), keeping those that apply; default :data:`CANDIDATES` of its objective."""
    from tinydiff.objectives import get_objective

    objective = get_objective(trained.objective)
    if names is None:
        return list(CANDIDATES.get(objective.name, (objective.sampler,)))
    chosen = []
    for name in names:
        try:
            resolved = objective.resolve_sampler(name)
        except ValueError:
            continue
        if resolved not in chosen:
            chosen.append(resolved)
    if not chosen:
        raise ValueError(f"none of the samplers {list(names)} applies to a {objective.name} model; expected some of "
                         f"{list(objective.samplers)}")
    return chosen


def draw(trained, sampler: str, steps: int, n: int, guidance: float, seed: int, batch_size: int):
    """n digits for labels 0..9 in turn (as ``evaluate`` draws them): (images (n, 1, 28, 28), labels (n,))."""
    labels = np.arange(n) % trained.num_classes if trained.num_classes else None
    images = trained.sample(n, label=labels, sampler=sampler, steps=steps, guidance=guidance, rng=seed,
                            batch_size=min(batch_size, n))
    return images, labels


def compare_at_equal_nfe(models: dict, judge, nfes=(1, 2, 4, 8, 16, 32), n: int = 500, guidance: float = 2.0,
                         samplers=None, pilot_n: int = 100, seed: int = 0, batch_size: int = 50,
                         log=print) -> list[Cell]:
    """One :class:`Cell` per model (name -> TrainedDenoiser) and NFE: the best of its candidate samplers on a pilot
    of ``pilot_n`` samples (seed + 1; by FD, the lowest wins; no pilot when one candidate fits or pilot_n = 0),
    then that sampler at full ``n`` (seed). ``samplers``: candidate names for every model, or {name: names} (None:
    :data:`CANDIDATES` of each objective). ``judge``: a :class:`tinydiff.metrics.judge.DigitJudge` (or any
    callable (images, labels) -> {"accuracy", "fd", "kid"})."""
    cells = []
    for name, trained in models.items():
        names = candidates_for(trained, samplers.get(name) if isinstance(samplers, dict) else samplers)
        for nfe in nfes:
            cell = Cell(name, nfe)
            options = [(s, k) for s in names if (k := steps_for_nfe(trained, s, nfe)) is not None]
            if not options:
                log(f"{name}, NFE {nfe}: no candidate sampler makes exactly {nfe} evaluations")
                cells.append(cell)
                continue
            if len(options) > 1 and pilot_n:
                for s, k in options:
                    cell.pilot[s] = judge(*draw(trained, s, k, pilot_n, guidance, seed + 1, batch_size))["fd"]
                log(f"{name}, NFE {nfe}: pilot FD (n={pilot_n}) " +
                    ", ".join(f"{s} {fd:.2f}" for s, fd in cell.pilot.items()))
            cell.sampler, cell.steps = min(options, key=lambda o: cell.pilot.get(o[0], 0.0))
            wall, cpu = time.perf_counter(), time.process_time()
            images, labels = draw(trained, cell.sampler, cell.steps, n, guidance, seed, batch_size)
            cell.seconds, cell.cpu_seconds = time.perf_counter() - wall, time.process_time() - cpu
            score = judge(images, labels)
            cell.fd, cell.kid, cell.accuracy = score["fd"], score["kid"], score.get("accuracy", float("nan"))
            log(f"{name}, NFE {nfe}: {cell.sampler} x {cell.steps}: accuracy {cell.accuracy:.3f}, FD {cell.fd:.2f}, "
                f"KID {cell.kid[0]:.3f} ({cell.seconds:.0f} s wall, {cell.cpu_seconds:.0f} s CPU)")
            cells.append(cell)
    return cells


def describe_checkpoint(trained) -> str:
    """'path (objective, step S, sha256 abcdef012345)': which file a table was made from."""
    digest = hashlib.sha256(Path(trained.path).read_bytes()).hexdigest()[:12] if trained.path else "?"
    return f"`{trained.path}` ({trained.objective}, step {trained.step}, sha256 {digest})"


def format_table(cells: list[Cell], floor: dict, n: int, guidance: float, models: dict, pilot_n: int,
                 seed: int = 0, command: str | None = None, cpu_seconds: float | None = None,
                 load: tuple | None = None) -> str:
    """The markdown report: what was compared and how, then one row per (NFE, model)."""
    lines = [f"MNIST digits at equal NFE, judged as `evaluate` judges them: n = {n} per cell (labels 0-9 in turn, "
             f"seed {seed}), guidance s = {guidance:g}; floor ({n} training images vs the 10,000 test images): FD "
             f"{floor['fd']:.2f}, KID {floor['kid'][0]:.3f}. Bar: accuracy >= {BAR_ACCURACY:.0%} and FD <= "
             f"{BAR_FD_RATIO:g}x floor.", ""]
    lines += [f"- {name}: {describe_checkpoint(m)}" for name, m in models.items()]
    lines += ["", "NFE = evaluations of the guided model (each one network call on the conditional and unconditional "
              "halves together, 2 images of work per sample). Sampler per cell: the lowest FD on a pilot of "
              f"{pilot_n} samples (seed {seed + 1}) among those that spend exactly that NFE.", ""]
    if command:
        lines += [f"Command: `{command}`" + (f" ({cpu_seconds / 60:.1f} CPU-minutes" if cpu_seconds else "")
                  + (f", load average {load[0]:.1f} at the start and {load[1]:.1f} at the end)" if load else
                     (")" if cpu_seconds else "")), ""]
    lines += ["| NFE | model | sampler x steps | accuracy | FD | FD / floor | KID | meets bar | pilot FD |",
              "| ---: | --- | --- | ---: | ---: | ---: | ---: | --- | --- |"]
    for c in sorted(cells, key=lambda c: (c.nfe, list(models).index(c.model))):
        if c.sampler is None:
            lines.append(f"| {c.nfe} | {c.model} | (none makes {c.nfe}) | | | | | | |")
            continue
        pilot = ", ".join(f"{s} {fd:.1f}" for s, fd in c.pilot.items())
        lines.append(f"| {c.nfe} | {c.model} | {c.sampler} x {c.steps} | {100 * c.accuracy:.1f} % | {c.fd:.2f} | "
                     f"{c.fd / floor['fd']:.1f}x | {c.kid[0]:.3f} | {'yes' if c.meets_bar(floor['fd']) else 'no'} | "
                     f"{pilot} |")
    return "\n".join(lines) + "\n"


def load_average() -> float | None:
    """The 1-minute load average (None where the system does not report it)."""
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None
