"""Forward SDEs, simulated: the processes of :mod:`tinydiff.processes` as stochastic differential equations.

Song et al. (2021) write the noising as an Ito SDE, dx = f(t) x dt + g(t) dW, whose marginals are those of
x_t = alpha(t) x0 + sigma(t) eps when (Kingma et al. 2021, App. A; :meth:`Process.sde`)::

    f(t) = d log alpha / dt,        g(t)^2 = d sigma^2 / dt - 2 f(t) sigma^2

VP (Song et al. eq. 11): f = -beta(t)/2, g^2 = beta(t).  VE (eq. 9): f = 0, g^2 = d sigma^2 / dt.

Euler-Maruyama (Kloeden & Platen 1992) steps it: x_{k+1} = x_k + f(t_k) x_k dt + g(t_k) sqrt(dt) z_k. Its paths'
marginals converge to the closed form as dt -> 0 (weak order 1), which tests/test_sde.py checks. Sampling runs the
reverse-time SDE (Song et al. eq. 6), dx = [f x - g^2 grad log p_t(x)] dt + g dW-bar: :func:`tinydiff.samplers.reverse_sde_step`.
"""

from __future__ import annotations

import numpy as np

from tinydiff.processes import Process
from tinydiff.rng import make_rng

__all__ = ["euler_maruyama_forward"]


def euler_maruyama_forward(process: Process, x_start, t_start: float, t_end: float, steps: int, rng=None,
                           return_path: bool = False):
    """Simulate dx = f(t) x dt + g(t) dW from x(t_start) = x_start to t_end in ``steps`` equal steps.

    x_start: (B, D). Returns x(t_end) (B, D), and with ``return_path`` also the times (steps + 1,) and the path
    (steps + 1, B, D)."""
    rng = make_rng(rng)
    ts = np.linspace(float(t_start), float(t_end), int(steps) + 1)
    dt = ts[1] - ts[0]
    x = np.array(x_start, dtype=np.float64)
    path = [x.copy()] if return_path else None
    for t in ts[:-1]:
        f, g2 = (float(v) for v in process.sde(np.float64(t)))
        x = x + f * x * dt + np.sqrt(g2 * dt) * rng.standard_normal(x.shape)      # Euler-Maruyama
        if return_path:
            path.append(x.copy())
    return (x, ts, np.stack(path)) if return_path else x
