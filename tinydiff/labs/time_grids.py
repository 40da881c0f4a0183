"""Lab (chapter 16): where a sampler spends its steps matters as much as how many it takes.

A deterministic sampler walks the probability-flow ODE over a grid of noise levels from sigma_max = 80 to
sigma_min = 0.002. Three grids (:func:`tinydiff.processes.grid`): "uniform" in t (here t = sigma: most steps at high
noise, where the ODE is nearly straight), "lambda" (uniform in log sigma, DPM-Solver's) and "karras" (Karras et al.
2022, eq. 5, rho = 7: dense near sigma_min, where the data's detail is decided). With the exact denoiser of a Gaussian
mixture the only error left is the solver's, so the grids can be compared at equal NFE against one converged
reference run from the same starting noise.
"""

from __future__ import annotations

import numpy as np

from tinydiff.samplers import sample


def grid_errors(model, process, method: str = "heun", spacings=("uniform", "lambda", "karras"), steps=(5, 10, 20),
                reference_steps: int = 300, n: int = 256, rng=0) -> dict[str, np.ndarray]:
    """{spacing: errors (len(steps),)}: the RMS distance of each run's samples to a reference's.

    model: the exact denoiser on ``process`` (a GaussianMixtureDenoiser with a continuous process, e.g. EDMProcess,
    prediction_type "sample"). Every run starts from the same x_T (n, D): noise of the scale of the process at
    t_max, drawn from ``rng``. The reference is ``method`` with ``reference_steps`` steps on the "karras" grid; the
    error of a run is sqrt(mean((x - x_ref)^2)).
    """
    D = model.mixture.means.shape[1]
    kw = dict(prediction_type=model.prediction_type)
    ### BEGIN SOLUTION ex16_2: lab, the time grid at equal NFE — run the sampler on each grid at each step count and once with reference_steps on the karras grid, all from one x_T, and return the RMS errors (chapter 16, 3 points)
    # defines: errors, a dict {spacing: (len(steps),) float64 array of RMS errors against the reference}
    x_T = np.random.default_rng(rng).standard_normal((n, D)) * float(process.scale(np.float64(process.t_max)))
    ref = sample(model, (n, D), process, method=method, steps=reference_steps, x_T=x_T, timestep_spacing="karras", **kw)
    errors = {sp: np.array([np.sqrt(np.mean((sample(model, (n, D), process, method=method, steps=k, x_T=x_T,
                                                    timestep_spacing=sp, **kw) - ref) ** 2)) for k in steps])
              for sp in spacings}
    ### END SOLUTION
    return errors
