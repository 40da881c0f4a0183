"""Noising processes: one picture behind DDPM, score SDEs, EDM and flow matching.

Every model in tinydiff learns to undo a Gaussian path from the data x0 to noise (Kingma et al. 2021, eq. 1;
Karras et al. 2022, eq. 4 with s(t) = alpha, sigma(t) = sigma / alpha; Albergo & Vanden-Eijnden 2023)::

    x_t = alpha(t) x0 + sigma(t) eps,        eps ~ N(0, I)

A process is the pair of functions (alpha, sigma) of time. The ones tinydiff knows:

    process                       time t              alpha(t)                 sigma(t)
    NoiseSchedule (discrete VP)   int 0..T-1          sqrt(alpha_bar_t)        sqrt(1 - alpha_bar_t)
    VPProcess (Song et al. 2021)  [eps_t, 1]          exp(-1/2 int_0^t beta)   sqrt(1 - alpha^2)
    VEProcess (Song et al. 2021)  [0, 1]              1                        s_min (s_max / s_min)^t
    EDMProcess (Karras 2022)      sigma in [s_min, s_max]  1                   t
    LinearInterpolant (flow)      [0, 1]              1 - t                    t

Only two numbers of a time step matter to a sampler (Kingma et al. 2021, Sec. 3.3): the log signal-to-noise ratio
lambda = log(alpha / sigma) and the scale alpha^2 + sigma^2. Dividing x_t by r = sqrt(alpha^2 + sigma^2) gives
the variance-preserving frame of Ho et al.::

    x_t / r = sqrt(ab) x0 + sqrt(1 - ab) eps,       ab = alpha^2 / (alpha^2 + sigma^2)    ("alpha_bar equivalent")

so every sampler of :mod:`tinydiff.samplers`, written once for the VP frame with ab, walks any process: it divides by
r before a step and multiplies by r' after it. For VP processes r = 1 and nothing is rescaled, which is why the
discrete path gives bit-identical samples to the samplers written for :class:`NoiseSchedule` alone.

What a network predicts, written once for any (alpha, sigma) (``to_x0_eps``):

    epsilon       eps                        x0 = (x - sigma eps) / alpha
    sample        x0                         eps = (x - alpha x0) / sigma
    v_prediction  v = a eps - s x0           with a = alpha / r, s = sigma / r (Salimans & Ho 2022; a^2 + s^2 = 1)
    score         grad log q(x_t) = -eps / sigma                                           (Tweedie / Vincent 2011)
    velocity      u = dx_t/dt = alpha' x0 + sigma' eps                              (flow matching, Lipman et al. 2023)

The forward SDE dx = f(t) x dt + g(t) dW with these marginals has (Kingma et al. 2021, App. A; Song et al. 2021)::

    f(t) = d log alpha / dt,        g(t)^2 = d sigma^2 / dt - 2 f(t) sigma^2
"""

from __future__ import annotations

import numpy as np

__all__ = ["Process", "VPProcess", "VEProcess", "EDMProcess", "LinearInterpolant", "PREDICTIONS", "GRIDS",
           "to_x0_eps", "from_x0_eps", "grid", "as_process"]

PREDICTIONS = ("epsilon", "sample", "v_prediction", "score", "velocity")
GRIDS = ("uniform", "lambda", "karras")


def check_prediction(prediction_type: str, allowed=PREDICTIONS) -> None:
    """The one validator of a prediction type (what a network outputs)."""
    if prediction_type not in allowed:
        raise ValueError(f"unknown prediction_type {prediction_type!r}; expected one of {list(allowed)}")


# ---- the conversions, once for any (alpha, sigma) ------------------------------------------------------------------
def to_x0_eps(x, out, prediction_type: str, alpha, sigma, d_alpha=None, d_sigma=None, r=None):
    """The (x0, eps) that a model output ``out`` of ``prediction_type`` implies at x = alpha x0 + sigma eps.

    alpha, sigma (and their time derivatives, for "velocity") are scalars or arrays broadcasting against x;
    r = sqrt(alpha^2 + sigma^2) is only needed for "v_prediction" on a non-VP process (None means 1).
    """
    check_prediction(prediction_type)
    if prediction_type == "v_prediction":
        xr = x if r is None else x / r
        a, s = (alpha, sigma) if r is None else (alpha / r, sigma / r)
        return a * xr - s * out, s * xr + a * out
    if prediction_type == "sample":
        return out, (x - alpha * out) / sigma
    if prediction_type == "velocity":
        if d_alpha is None or d_sigma is None:
            raise ValueError("a velocity prediction needs d alpha/dt and d sigma/dt: this process is discrete; "
                             "use a continuous process (e.g. LinearInterpolant) for flow-matching models")
        det = alpha * d_sigma - sigma * d_alpha                 # [x; u] = [[a, s], [a', s']] [x0; eps]
        return (d_sigma * x - sigma * out) / det, (alpha * out - d_alpha * x) / det
    eps = out if prediction_type == "epsilon" else -sigma * out
    if np.any(np.asarray(alpha) == 0.0):
        raise ValueError(f"cannot recover x0 from a {prediction_type} prediction where alpha = 0 (zero terminal SNR): "
                         "x_t is pure noise there and says nothing about x0. Use a v_prediction, sample or velocity "
                         "model for such processes.")
    return (x - sigma * eps) / alpha, eps


def from_x0_eps(x0, eps, prediction_type: str, alpha, sigma, d_alpha=None, d_sigma=None, r=None):
    """The output of type ``prediction_type`` that a perfect model gives for the pair (x0, eps): the training target."""
    check_prediction(prediction_type)
    if prediction_type == "epsilon":
        return eps
    if prediction_type == "sample":
        return x0
    if prediction_type == "v_prediction":
        a, s = (alpha, sigma) if r is None else (alpha / r, sigma / r)
        return a * eps - s * x0
    if prediction_type == "score":
        return -eps / sigma
    if d_alpha is None or d_sigma is None:
        raise ValueError("a velocity target needs d alpha/dt and d sigma/dt: use a continuous process")
    return d_alpha * x0 + d_sigma * eps


# ---- the processes ----------------------------------------------------------------------------------------------
class Process:
    """x_t = alpha(t) x0 + sigma(t) eps on continuous time t in [t_min, t_max] (subclasses give alpha and sigma).

    Attributes: t_min, t_max (the grid's end points: t_max is where sampling starts), variance_preserving.
    """

    discrete = False
    variance_preserving = False
    default_grid = "uniform"       # the spacing samplers use unless told otherwise (see :func:`grid`)
    t_min, t_max = 0.0, 1.0

    def alpha_sigma(self, t):
        """(alpha(t), sigma(t)) as float64 arrays shaped like t."""
        raise NotImplementedError

    def derivatives(self, t):
        """(d alpha / dt, d sigma / dt) as float64 arrays shaped like t."""
        raise NotImplementedError

    # ---- derived, for any process -------------------------------------------------------------------------------
    def alpha_bar(self, t):
        """ab = alpha^2 / (alpha^2 + sigma^2): the VP-frame noise level of t (1 at the data, 0 at pure noise)."""
        a, s = self.alpha_sigma(t)
        return a * a / (a * a + s * s)

    def scale(self, t):
        """r = sqrt(alpha^2 + sigma^2): x_t / r is in the variance-preserving frame (1 for VP processes)."""
        if self.variance_preserving:
            return np.ones_like(np.asarray(t, dtype=np.float64))
        a, s = self.alpha_sigma(t)
        return np.sqrt(a * a + s * s)

    def noise_level(self, t):
        """sigma / alpha: Karras et al.'s sigma, the noise of x_t / alpha = x0 + (sigma / alpha) eps."""
        a, s = self.alpha_sigma(t)
        with np.errstate(divide="ignore"):
            return s / a

    def log_snr(self, t):
        """log(alpha^2 / sigma^2) (chapter 2's log-SNR; DPM-Solver's lambda is half of it)."""
        a, s = self.alpha_sigma(t)
        with np.errstate(divide="ignore"):
            return 2.0 * (np.log(a) - np.log(s))

    def sde(self, t):
        """(f(t), g(t)^2) of the forward SDE dx = f x dt + g dW with the marginals of this process."""
        a, s = self.alpha_sigma(t)
        da, ds = self.derivatives(t)
        f = da / a
        return f, 2.0 * s * ds - 2.0 * f * s * s

    def q_sample(self, x0, t, noise):
        """x_t = alpha(t) x0 + sigma(t) eps, one t per sample: t (B,) float, x0 and noise (B, ...)."""
        x0, noise = np.asarray(x0), np.asarray(noise)
        a, s = (_per_sample(v, x0) for v in self.alpha_sigma(np.asarray(t, dtype=np.float64)))
        return a * x0 + s * noise

    def sample_t(self, batch: int, rng) -> np.ndarray:
        """Training times t ~ Uniform[t_min, t_max], shape (batch,)."""
        return rng.uniform(self.t_min, self.t_max, size=batch)

    def t_of_noise_level(self, level):
        """The time t whose sigma / alpha equals ``level`` (bisection on the monotone noise level; subclasses may
        give it in closed form)."""
        level = np.asarray(level, dtype=np.float64)
        lo, hi = np.full(level.shape, float(self.t_min)), np.full(level.shape, float(self.t_max))
        for _ in range(100):
            mid = 0.5 * (lo + hi)
            below = self.noise_level(mid) < level
            lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
        return 0.5 * (lo + hi)

    def params(self) -> dict:
        """The constructor's arguments (what rebuilds this process)."""
        return {k: float(v) for k, v in vars(self).items() if k not in ("t_min", "t_max")}

    def to_dict(self) -> dict:
        return {"kind": type(self).__name__, **self.params()}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v:g}' for k, v in self.params().items())})"


class VPProcess(Process):
    """The VP SDE of Song et al. (2021), eq. 11 (the continuous limit of DDPM's linear schedule)::

        beta(t) = beta_min + t (beta_max - beta_min),  alpha = exp(-1/2 int_0^t beta) = exp(-t beta_min/2 - t^2 (beta_max - beta_min)/4)
        sigma = sqrt(1 - alpha^2),  t in [t_eps, 1]  (t_eps = 1e-3 as in their code: sigma(0) = 0 would divide by 0)
    """

    variance_preserving = True

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0, t_eps: float = 1e-3):
        if not 0 < beta_min < beta_max or not 0 < t_eps < 1:
            raise ValueError(f"need 0 < beta_min < beta_max and 0 < t_eps < 1; got {beta_min}, {beta_max}, {t_eps}")
        self.beta_min, self.beta_max, self.t_eps = float(beta_min), float(beta_max), float(t_eps)
        self.t_min = self.t_eps

    def _log_alpha(self, t):
        return -0.5 * t * self.beta_min - 0.25 * t * t * (self.beta_max - self.beta_min)

    def alpha_sigma(self, t):
        t = np.asarray(t, dtype=np.float64)
        log_a = self._log_alpha(t)
        return np.exp(log_a), np.sqrt(-np.expm1(2.0 * log_a))

    def derivatives(self, t):
        t = np.asarray(t, dtype=np.float64)
        a, s = self.alpha_sigma(t)
        da = -0.5 * (self.beta_min + t * (self.beta_max - self.beta_min)) * a    # d alpha/dt = -beta(t)/2 alpha
        with np.errstate(divide="ignore", invalid="ignore"):
            return da, -a * da / s                                               # sigma' = -alpha alpha' / sigma


class VEProcess(Process):
    """The VE SDE of Song et al. (2021), eq. 9 (NCSN's geometric noise levels, Song & Ermon 2019)::

        alpha = 1,   sigma(t) = sigma_min (sigma_max / sigma_min)^t,   t in [0, 1]
    """

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 50.0):
        if not 0 < sigma_min < sigma_max:
            raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
        self.sigma_min, self.sigma_max = float(sigma_min), float(sigma_max)

    def alpha_sigma(self, t):
        t = np.asarray(t, dtype=np.float64)
        return np.ones_like(t), self.sigma_min * (self.sigma_max / self.sigma_min) ** t

    def derivatives(self, t):
        a, s = self.alpha_sigma(t)
        return np.zeros_like(a), s * np.log(self.sigma_max / self.sigma_min)

    def t_of_noise_level(self, level):
        return np.log(np.asarray(level, dtype=np.float64) / self.sigma_min) / np.log(self.sigma_max / self.sigma_min)


class EDMProcess(Process):
    """Karras et al. (2022), Table 1 ("ours"): alpha = 1, sigma(t) = t, so time IS the noise level, t in
    [sigma_min, sigma_max] = [0.002, 80]. Samplers use Karras's rho = 7 grid by default."""

    default_grid = "karras"

    def __init__(self, sigma_min: float = 0.002, sigma_max: float = 80.0):
        if not 0 < sigma_min < sigma_max:
            raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
        self.sigma_min, self.sigma_max = float(sigma_min), float(sigma_max)
        self.t_min, self.t_max = self.sigma_min, self.sigma_max

    def alpha_sigma(self, t):
        t = np.asarray(t, dtype=np.float64)
        return np.ones_like(t), t.copy()

    def derivatives(self, t):
        t = np.asarray(t, dtype=np.float64)
        return np.zeros_like(t), np.ones_like(t)

    def t_of_noise_level(self, level):
        return np.asarray(level, dtype=np.float64)


class LinearInterpolant(Process):
    """Flow matching's straight path (Lipman et al. 2023; Liu et al. 2023): x_t = (1 - t) x0 + t eps, t in [0, 1].

    t = 0 is the data, t = 1 pure noise (alpha = 0: zero terminal SNR), and the velocity is u = eps - x0.
    """

    def alpha_sigma(self, t):
        t = np.asarray(t, dtype=np.float64)
        return 1.0 - t, t.copy()

    def derivatives(self, t):
        t = np.asarray(t, dtype=np.float64)
        return -np.ones_like(t), np.ones_like(t)

    def t_of_noise_level(self, level):
        level = np.asarray(level, dtype=np.float64)
        return level / (1.0 + level)                       # sigma / alpha = t / (1 - t)


PROCESSES = {cls.__name__: cls for cls in (VPProcess, VEProcess, EDMProcess, LinearInterpolant)}


def as_process(d: dict) -> Process:
    """Rebuild a process from :meth:`Process.to_dict` (what a checkpoint stores)."""
    d = dict(d)
    kind = d.pop("kind", None)
    if kind not in PROCESSES:
        raise ValueError(f"unknown process {kind!r}; expected one of {sorted(PROCESSES)}")
    cls = PROCESSES[kind]
    return cls(**d)


# ---- where a sampler evaluates the model ----------------------------------------------------------------------------
def grid(process: Process, steps: int, spacing: str = "uniform", *, sigma_max: float | None = None,
         sigma_min: float | None = None, rho: float = 7.0) -> np.ndarray:
    """``steps`` descending times at which a sampler calls the model; the sampler then jumps to the clean data.

    "uniform": equal steps in t.  "lambda": equal steps in lambda = log(alpha / sigma) (DPM-Solver, Lu et al. 2022).
    "karras": Karras et al. (2022), eq. 5:  sigma_i = (s_max^(1/rho) + i/(N-1) (s_min^(1/rho) - s_max^(1/rho)))^rho
    in the noise level sigma / alpha, rho = 7. ``sigma_max`` / ``sigma_min`` bound the noise level (defaults: the
    process's end points; sigma_max is needed where the end is infinite, e.g. the linear interpolant at t = 1; where
    the process reaches the data, "lambda" and "karras" stop at sigma_min = 0.002, EDM's, then jump to the data).

    The grid includes t_min when the data are not reached there (sigma(t_min) > 0: EDM, VE, VP) and stops one step
    short of it when they are (the linear interpolant's t = 0): the final jump then lands on the data exactly.
    """
    if spacing not in GRIDS:
        raise ValueError(f"unknown grid spacing {spacing!r}; expected one of {list(GRIDS)}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    t_lo, t_hi = float(process.t_min), float(process.t_max)
    if sigma_max is not None:
        t_hi = min(t_hi, float(process.t_of_noise_level(sigma_max)))
    if sigma_min is not None:
        t_lo = max(t_lo, float(process.t_of_noise_level(sigma_min)))
    reaches_data = float(process.alpha_sigma(np.array(t_lo))[1]) == 0.0
    n = steps + 1 if reaches_data else steps
    u = np.linspace(0.0, 1.0, n) if n > 1 else np.zeros(1)
    if spacing == "uniform":
        ts = t_hi + u * (t_lo - t_hi)
    else:
        lv_hi, lv_lo = (float(process.noise_level(np.array(t))) for t in (t_hi, t_lo))
        if lv_lo == 0.0:                                  # the data end: stop at EDM's sigma_min, then jump
            lv_lo, t_lo, reaches_data = 0.002, float(process.t_of_noise_level(0.002)), False
            n = steps
            u = np.linspace(0.0, 1.0, n) if n > 1 else np.zeros(1)
        if not np.isfinite(lv_hi):
            raise ValueError(f"a {spacing!r} grid needs a finite, positive noise-level range; this process spans "
                             f"[{lv_lo:g}, {lv_hi:g}]: pass sigma_max= (and sigma_min=)")
        if spacing == "lambda":
            levels = np.exp(np.log(lv_hi) + u * (np.log(lv_lo) - np.log(lv_hi)))   # uniform in -lambda = log level
        else:
            levels = (lv_hi ** (1 / rho) + u * (lv_lo ** (1 / rho) - lv_hi ** (1 / rho))) ** rho
        ts = process.t_of_noise_level(levels)
    ts[0], ts[-1] = t_hi, (t_lo if n > 1 else t_hi)
    return (ts[:-1] if reaches_data else ts).astype(np.float64)


def _per_sample(v, like):
    """A (B,) coefficient reshaped to (B, 1, ..., 1) (a scalar stays a scalar)."""
    v = np.asarray(v, dtype=np.float64)
    return v if v.ndim == 0 else v.reshape((-1,) + (1,) * (np.ndim(like) - 1))
