"""Order of accuracy of the ODE samplers, measured with the exact denoiser of a Gaussian mixture.

A deterministic sampler solves the probability-flow ODE from x(t_max) to x(t_min). With the exact denoiser
(:class:`tinydiff.analytic.GaussianMixtureDenoiser`) the only error left is the solver's, so it can be measured: run
the sampler with N steps from a fixed x(t_max), stop at t_min (``final_step="none"``: the same end points for every
grid), and compare with a converged reference, Heun on the rho = 7 grid with many more steps::

    err(N) = sqrt( mean_b || x_N[b] - x_ref[b] ||^2 ),      err ~ C NFE^(-p)  =>  log err = log C - p log NFE

p is the order: 1 for Euler (= DDIM with eta = 0), 2 for Heun (Karras et al. 2022, Alg. 1) and DPM-Solver++(2M)
(Lu et al. 2022b). The fit is least squares on (log NFE, log err) over the NFE range where the error is asymptotic
(few steps are not: the first steps from sigma = 157 are huge, and the error saturates).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinydiff.analytic import GaussianMixtureDenoiser
from tinydiff.processes import Process
from tinydiff.samplers import sample

__all__ = ["OrderResult", "nfe_of", "solve_to_t_min", "reference_solution", "order_of_accuracy", "fitted_slope"]


@dataclass
class OrderResult:
    """One sampler on one grid: nfe (S,), err (S,) against the reference, and the fitted order -slope."""
    method: str
    spacing: str
    steps: np.ndarray
    nfe: np.ndarray
    err: np.ndarray

    def order(self, nfe_min: float = 0, nfe_max: float = np.inf) -> float:
        """-(slope of log err against log NFE) over nfe_min <= NFE <= nfe_max."""
        keep = (self.nfe >= nfe_min) & (self.nfe <= nfe_max)
        return -fitted_slope(self.nfe[keep], self.err[keep])


def fitted_slope(nfe, err) -> float:
    """Least-squares slope of log err against log NFE."""
    return float(np.polyfit(np.log(nfe), np.log(err), 1)[0])


def nfe_of(method: str, steps: int) -> int:
    """Model calls of ``method`` with ``steps`` grid points, stopping at the last one (final_step="none"): N - 1 steps,
    Heun-type methods (heun, edm) evaluate twice per step."""
    return 2 * (steps - 1) if method in ("heun", "edm") else steps - 1


def solve_to_t_min(mixture, process: Process, x_T, method: str, steps: int, spacing: str) -> np.ndarray:
    """The sampler's state at t_min (the grid's last point), from x_T at t_max, with the exact denoiser."""
    den = GaussianMixtureDenoiser(mixture, process, "epsilon")
    return sample(den, x_T.shape, process, method=method, steps=steps, timestep_spacing=spacing, x_T=x_T,
                  final_step="none")


def reference_solution(mixture, process: Process, x_T, steps: int = 2048) -> np.ndarray:
    """The converged solution: Heun on the rho = 7 grid with ``steps`` points (error ~ steps^-2, far below the
    samplers' errors measured against it)."""
    return solve_to_t_min(mixture, process, x_T, "heun", steps, "karras")


def order_of_accuracy(mixture, process: Process, method: str, spacing: str, steps_list, x_T, x_ref) -> OrderResult:
    """err(N) of ``method`` on grid ``spacing`` for each N in ``steps_list`` against ``x_ref``."""
    steps = np.asarray(steps_list, dtype=np.int64)
    err = np.array([np.sqrt(np.mean(np.sum((solve_to_t_min(mixture, process, x_T, method, int(n), spacing)
                                            - x_ref) ** 2, axis=1))) for n in steps])
    return OrderResult(method, spacing, steps, np.array([nfe_of(method, int(n)) for n in steps]), err)
