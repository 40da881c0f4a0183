"""Objectives: what a network learns along which noising process, and how its samples are drawn.

An objective fixes five things (Kingma et al. 2021 and Karras et al. 2022 write all of them in one notation):

    objective  process (tinydiff.processes)   t ~                 network's time input   target (weight)     sampler, steps
    ddpm       NoiseSchedule (discrete VP)    Uniform{0..T-1}     t                      eps | x0 | v   (1)  ddpm, all T
    flow       LinearInterpolant              Uniform[0, 1]       1000 t                 u = eps - x0   (1)  midpoint-t, 10
    ncsn       VEProcess (sigma 0.01..10)     ln sigma ~ U        c_noise(sigma)         -n          (1)     pc, 100
    edm        EDMProcess (sigma = t)         ln sigma ~ N(-1.2, 1.2^2)  c_noise(sigma)  (x0 - c_skip x)/c_out (1)  edm, 18 (35 NFE)

ncsn (Song & Ermon 2019, denoising score matching) and edm (Karras et al. 2022) train F inside the denoiser
D = c_skip x + c_out F(c_in x; c_noise): their ``precondition`` (config -> :class:`tinydiff.preconditioning.Preconditioning`)
gives the c's, the sigma distribution and the regression; their time input is a function of the noise level sigma
(:func:`tinydiff.preconditioning.time_input`). ``sampler_options`` are the default sampler's options.

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

__all__ = ["Objective", "OBJECTIVES", "COUPLINGS", "get_objective", "sampling_plan"]

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
    precondition: Callable | None = None   # ncsn, edm: config -> tinydiff.preconditioning.Preconditioning
    sampler_options: tuple = ()  # the default sampler's options, as (name, value) pairs

    def resolve_sampler(self, name: str) -> str:
        """The SAMPLERS key for a method name: "heun" is "heun-t" for a flow model, unchanged otherwise."""
        if self.frame == "t" and f"{name}-t" in self.samplers:
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


def _precondition(name):
    def make(config):
        from tinydiff.preconditioning import preconditioning

        return preconditioning(config if config is not None else name)
    return make


def _sigma_input(sigma):
    from tinydiff.preconditioning import time_input

    return time_input(sigma)


# the samplers that walk a continuous process whose model is read as D or the score (any step in sigma)
_SCORE_SAMPLERS = ("edm", "heun", "euler", "ddim", "dpm++2m", "ddpm", "sde", "pc", "langevin")
OBJECTIVES["ncsn"] = Objective("ncsn", lambda c: _precondition("ncsn")(c).process(), _sigma_input,
                               lambda c: "score", "pc", 100, ("pc", "langevin", "sde") + _SCORE_SAMPLERS[:6],
                               precondition=_precondition("ncsn"))
OBJECTIVES["edm"] = Objective("edm", lambda c: _precondition("edm")(c).process(), _sigma_input,
                              lambda c: "sample", "edm", 18, _SCORE_SAMPLERS, precondition=_precondition("edm"))


def get_objective(name: str) -> Objective:
    """The one validator of an objective name."""
    if name not in OBJECTIVES:
        raise ValueError(f"unknown objective {name!r}; expected one of {list(OBJECTIVES)}")
    return OBJECTIVES[name]


def sampling_plan(name: str, sampler: str | None = None, steps: int | None = None, churn: float | None = None):
    """(sampler, steps, sampler_options) for a model of objective ``name``: the objective's defaults where None.

    Raises ValueError naming the samplers that apply when ``sampler`` does not, and when ``churn`` is given to a
    sampler other than "edm" (Karras et al.'s S_churn belongs to their Alg. 2)."""
    obj = get_objective(name)
    chosen = obj.resolve_sampler(sampler or obj.sampler)
    options = dict(obj.sampler_options) if chosen == obj.sampler else {}
    if churn is not None:
        if chosen != "edm":
            raise ValueError(f"churn applies to the 'edm' sampler (Karras et al. 2022, Alg. 2), not {chosen!r}")
        options["churn"] = float(churn)
    return chosen, (obj.steps if steps is None else steps), options
