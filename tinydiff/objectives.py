"""Objectives: what a network learns along which noising process, and how its samples are drawn.

An objective fixes five things (Kingma et al. 2021 and Karras et al. 2022 write all of them in one notation):

    objective  process (tinydiff.processes)   t ~                 network's time input   target (weight)     sampler, steps
    ddpm       NoiseSchedule (discrete VP)    Uniform{0..T-1}     t                      eps | x0 | v   (1)  ddpm, all T
    flow       LinearInterpolant              Uniform[0, 1]       1000 t                 u = eps - x0   (1)  midpoint-t, 10

The flow network sees 1000 t so that its sinusoidal time features span the same range of frequencies as a DDPM
network's integer steps 0..999 (the models embed float time directly). ``samplers`` lists the methods that apply;
``resolve_sampler`` maps the plain names the command line offers (euler, midpoint, heun) to the steppers that integrate
in the process's own time t where an objective needs them (the VP-frame Heun cannot start at t = 1, where sigma / alpha
is infinite). A new objective is one entry in :data:`OBJECTIVES`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

__all__ = ["Objective", "OBJECTIVES", "COUPLINGS", "get_objective"]

COUPLINGS = ("independent", "ot")   # flow matching's pairings of data and noise (tinydiff.flow.ot_pairing)


@dataclass(frozen=True)
class Objective:
    name: str
    process: Callable            # config -> the process (a NoiseSchedule or a tinydiff.processes.Process)
    time_input: Callable         # t (B,) in the process's time -> what the network's time embedding sees
    prediction_type: Callable    # config -> what the network outputs (a name of tinydiff.processes.PREDICTIONS)
    sampler: str                 # default sampling method (a key of tinydiff.samplers.SAMPLERS)
    steps: int | None            # default number of steps (None: all T)
    samplers: tuple[str, ...]    # the methods that apply
    frame: str = "vp"            # "t": plain method names resolve to the steppers that work in the process's time

    def resolve_sampler(self, name: str) -> str:
        """The SAMPLERS key for a method name: "heun" is "heun-t" for a flow model, unchanged otherwise."""
        if self.frame == "t" and f"{name}-t" in self.samplers:             # euler, midpoint, heun -> in t
            return f"{name}-t"
        if name not in self.samplers:
            raise ValueError(f"sampler {name!r} does not apply to a {self.name} model; expected one of "
                             f"{list(self.samplers)}")
        return name


def _ddpm_process(config):
    return config.make_schedule()


def _flow_process(config):
    from tinydiff.processes import LinearInterpolant

    return LinearInterpolant()


OBJECTIVES: dict[str, Objective] = {
    "ddpm": Objective("ddpm", _ddpm_process, lambda t: t, lambda c: c.prediction_type, "ddpm", None,
                      ("ddpm", "ddim", "dpm++2m", "euler", "heun")),
    "flow": Objective("flow", _flow_process, lambda t: 1000.0 * np.asarray(t, dtype=np.float64),
                      lambda c: "velocity", "midpoint-t", 10,
                      ("euler-t", "midpoint-t", "heun-t", "euler", "ddim", "dpm++2m"), frame="t"),
}


def get_objective(name: str) -> Objective:
    """The one validator of an objective name."""
    if name not in OBJECTIVES:
        raise ValueError(f"unknown objective {name!r}; expected one of {list(OBJECTIVES)}")
    return OBJECTIVES[name]
