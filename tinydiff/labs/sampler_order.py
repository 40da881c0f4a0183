"""Lab (chapter 9): measure the order of accuracy of a sampler with the exact denoiser of a Gaussian mixture.

A sampler of order p makes a global error that shrinks like h^p, h the step size, so with K steps err(K) ~ C K^-p and
log err = log C - p log K: the order is minus the slope of a straight line fitted to (log K, log err). The reference
is the same sampler with many steps from the same starting noise x_T, so the only error left is the discretisation
(the exact denoiser of :mod:`tinydiff.analytic` has no network error to hide it). Expect about 1 for Euler and DDIM,
nearer 2 for Heun and DPM-Solver++(2M) (Karras et al. 2022, Sec. 3; Lu et al. 2022).
"""

from __future__ import annotations

import numpy as np

from tinydiff.samplers import ODE_METHODS, sample


def measure_order(model, schedule, method: str, steps=(8, 16, 32), reference_steps: int = 500, n: int = 256,
                  rng=0, sigma_max: float | None = 20.0) -> tuple[np.ndarray, float]:
    """Errors (len(steps),) against a ``reference_steps`` run, and the fitted order p (a float).

    model: a denoiser ``model(x_t, t)`` (the exact one: GaussianMixtureDenoiser). Every run starts from the same
    x_T (n, D) drawn from ``rng``; the error of a run is the RMS distance of its samples to the reference's,
    sqrt(mean((x - x_ref)^2)). ``sigma_max`` applies to the ODE methods ("euler", "heun") only.
    """
    D = model.mixture.means.shape[1]
    kw = dict(sigma_max=sigma_max) if method in ODE_METHODS else {}
    ### BEGIN SOLUTION ex9_3: lab, the order of a sampler — run the sampler at each step count and at reference_steps from one x_T, measure the RMS errors, fit the slope of log err against log K (chapter 9, 3 points)
    # defines: errors (len(steps),) floats and order, a float (minus the slope of log errors against log steps)
    x_T = np.random.default_rng(rng).standard_normal((n, D))                       # (n, D)
    ref = sample(model, (n, D), schedule, method=method, steps=reference_steps, x_T=x_T, rng=0, **kw)
    errors = np.array([np.sqrt(np.mean((sample(model, (n, D), schedule, method=method, steps=k, x_T=x_T, rng=0, **kw)
                                        - ref) ** 2)) for k in steps])
    order = float(-np.polyfit(np.log(steps), np.log(errors), 1)[0])
    ### END SOLUTION
    return errors, order
