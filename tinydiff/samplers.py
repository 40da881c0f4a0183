"""Sampling: run the learned reverse process from noise to data, and (for deterministic samplers) back again.

    x = sample(model, (1000, 2), schedule, method="ddim", steps=50)

``model`` is any callable ``model(x_t, t) -> prediction`` (``model(x_t, t, y)`` with labels). ``schedule`` is the
noising process the model was trained on: a :class:`NoiseSchedule` (t an int64 array (B,)) or any continuous
:class:`tinydiff.processes.Process` (t a float64 array (B,)), e.g. EDM's or flow matching's.

**One loop, many steppers.** Every method walks a descending list of times ``ts`` (:func:`timesteps` for a schedule,
:func:`tinydiff.processes.grid` for a continuous process) and then jumps to the clean data. Each step turns the model
output into the pair (x0, eps) (:func:`tinydiff.processes.to_x0_eps`), so every prediction type works with every
method, and hands it to the method's *stepper*: a small object with ``start`` and ``step`` registered in
:data:`SAMPLERS`. The steppers are written once, in the variance-preserving frame x / r = sqrt(ab) x0 + sqrt(1 - ab) eps
of :mod:`tinydiff.processes` (ab = alpha^2 / (alpha^2 + sigma^2), r = sqrt(alpha^2 + sigma^2)); the loop divides by r
before a step and multiplies by r' after it, so they walk any process. For a NoiseSchedule r = 1 and ab = alpha_bar_t.
The steppers of :class:`TimeStepper` ("euler-t", "midpoint-t", "heun-t") instead integrate dx/dt = u(x, t) on x_t
itself, in the process's own time (flow matching; they can start where sigma / alpha is infinite).

A new sampler is one class and one table entry::

    class MyEuler(Stepper):
        def step(self, x, s, x0, eps, noise):          # s: a Step (s.ab_t, s.ab_prev, s.t, s.t_prev, s.last, ...)
            return euler_step(x, eps, s.ab_t, s.ab_prev)

    SAMPLERS["my-euler"] = MyEuler

The last step jumps from the last sampled step t_last to the clean data (alpha_bar_prev = 1). Every method then
returns the model's x0 estimate E[x0 | x_{t_last}], a posterior MEAN: it is sharp only when t_last is small. With
``timestep_spacing="trailing"`` and few steps t_last = T/steps - 1 can be large, and the samples shrink towards the
modes' centres; "leading" and "linspace" end at t = 0. ``final_step="none"`` stops at x_{t_last} instead.

Classifier-free guidance (Ho & Salimans 2022): with labels ``y`` and ``guidance_scale = s``, one batched model call
gets the conditional and the unconditional (``null_label``) outputs and combines them as
``out = out_u + s (out_c - out_u)``, in the model's own prediction space. Every conversion to x0 or eps is affine in the
output with weights fixed by (x_t, t), so this is the same as combining eps (or x0, or v). s = 1 is the plain
conditional model, s = 0 the unconditional one. Ho & Salimans write eps = (1 + w) eps_c - w eps_u: w = s - 1.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from tinydiff.diffusion import PREDICTION_TYPES, predict_x0_and_eps, q_posterior
from tinydiff.processes import GRIDS, PREDICTIONS, check_prediction, grid, to_x0_eps
from tinydiff.rng import make_rng
from tinydiff.schedules import NoiseSchedule

__all__ = ["METHODS", "TIME_METHODS", "SPACINGS", "SAMPLERS", "Stepper", "Step", "timesteps", "respace", "sample", "invert",
           "Trajectory", "TimeStepper", "ddpm_step", "ddim_sigma", "ddim_step", "euler_step", "heun_step", "dpmpp_2m_step",
           "threshold_x0", "check_method", "check_spacing"]

SPACINGS = ("linspace", "leading", "trailing")
VARIANCES = ("fixed_small", "fixed_large")
FINAL_STEPS = ("denoise", "none")
ODE_SIGMA_MAX = 80.0  # where Euler and Heun start by default (Karras et al. 2022 use sigma_max = 80)


def _check_choice(name: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; expected one of {list(allowed)}")


def check_method(method: str) -> None:
    """The one validator of a sampler name (the keys of :data:`SAMPLERS`)."""
    _check_choice("method", method, tuple(SAMPLERS))


def check_spacing(spacing: str, schedule=None) -> None:
    """The one validator of a step spacing: :data:`SPACINGS` for a NoiseSchedule, also the continuous grids."""
    allowed = SPACINGS if isinstance(schedule, NoiseSchedule) else SPACINGS + GRIDS
    _check_choice("timestep_spacing", spacing, allowed)


# ---- which steps to visit ----------------------------------------------------------------------------------------
def _spaced(T: int, steps: int, spacing: str) -> np.ndarray:
    """The spacings of Lin et al. (2023), Table 2, in tinydiff's 0-based steps (their 1-based table minus 1)."""
    if spacing == "linspace":   # iDDPM: both ends included
        ts = np.round(np.linspace(0, T - 1, steps))
    elif spacing == "leading":  # DDIM: 0, T//S, 2 T//S, ...  (never reaches T-1)
        ts = np.arange(steps) * (T // steps)
    else:                       # trailing (DPM-Solver): T-1, T-1-T/S, ...  (always starts at T-1)
        ts = np.round(T - np.arange(steps) * (T / steps)) - 1
    return np.sort(ts.astype(np.int64))[::-1].copy()


def timesteps(schedule: NoiseSchedule, steps: int | None = None, spacing: str = "trailing") -> np.ndarray:
    """The descending int64 time steps a sampler visits: ``steps`` of them out of {0, ..., T-1} (all when None).

    For T = 1000, steps = 10 (Lin et al. 2023, Table 2, shifted to 0-based indices):
        linspace [999 888 777 666 555 444 333 222 111 0], leading [900 800 ... 100 0], trailing [999 899 ... 199 99].
    """
    _check_choice("timestep_spacing", spacing, SPACINGS)
    T = schedule.T if isinstance(schedule, NoiseSchedule) else int(schedule)
    steps = T if steps is None else steps
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not 1 <= steps <= T:
        raise ValueError(f"steps must be an integer in 1..{T} (the number of diffusion steps T), got {steps!r}")
    return _spaced(T, int(steps), spacing)


def respace(schedule: NoiseSchedule, ts) -> NoiseSchedule:
    """The chain that visits only ``ts`` (Nichol & Dhariwal 2021, Sec. 4): beta'_j = 1 - ab[s_j] / ab[s_{j-1}].

    ``s`` is ``ts`` ascending; step j of the new schedule is step s_j of the old one, and alpha_bar'_j = ab[s_j].
    """
    ### BEGIN SOLUTION ex8_3: debugging the respaced chain — respace has a planted bug; the tests show what it breaks (chapter 8, 1 point)
    # returns: a NoiseSchedule with len(ts) steps whose alphas_cumprod[j] = schedule.alphas_cumprod[s_j], s ascending
    #! return _chain_through(schedule.alphas_cumprod[np.asarray(ts)])
    s = np.sort(np.asarray(ts))
    return _chain_through(schedule.alphas_cumprod[s])
    ### END SOLUTION


def _chain_through(ab: np.ndarray) -> NoiseSchedule:
    """The discrete chain whose alpha_bar' is ``ab`` (ascending steps, i.e. decreasing ab)."""
    betas = 1.0 - ab / np.concatenate([[1.0], ab[:-1]])
    return NoiseSchedule(betas, zero_terminal_snr=bool(ab[-1] == 0.0))


def _sigma(ab: float) -> float:
    """Noise level of the variance-exploding frame: x_t / sqrt(ab) = x0 + sigma eps, sigma = sqrt((1 - ab) / ab)."""
    return np.inf if ab == 0.0 else float(np.sqrt((1.0 - ab) / ab))


# ---- the step of each method -------------------------------------------------------------------------------------
def ddpm_step(respaced: NoiseSchedule, j: int, x_t, x0, noise, variance: str = "fixed_small"):
    """Ancestral step x_{t'} ~ p(x_{t'} | x_t) = q(x_{t'} | x_t, x0 = x0_hat) (Ho et al. 2020, eq. 6-7 and Alg. 2).

    ``j`` indexes the respaced chain (:func:`respace`; j = t for all T steps). The variance is beta_tilde_j
    ("fixed_small", the posterior's) or beta'_j ("fixed_large"); Ho et al. found both work (Sec. 3.2). The last step
    (j = 0) adds no noise and returns x0_hat.
    """
    ### BEGIN SOLUTION ex7_1: DDPM ancestral step — the posterior at x0_hat, then add sqrt(variance) * noise, except at j = 0 (chapter 7, 2 points)
    # returns: x_{t'} (B, ...), the shape of x_t (the mean alone at j = 0)
    mean, var_small = q_posterior(respaced, x0, x_t, np.full(x_t.shape[0], j))
    if j == 0:
        return mean
    var = var_small if variance == "fixed_small" else respaced.betas[j]
    return mean + np.sqrt(var) * noise
    ### END SOLUTION


def ddim_sigma(ab_t: float, ab_prev: float, eta: float) -> float:
    """Song et al. (2021), eq. 16: sigma = eta sqrt((1 - ab_prev) / (1 - ab_t)) sqrt(1 - ab_t / ab_prev).

    eta = 1 gives the DDPM posterior variance of the same pair of steps; eta = 0 a deterministic sampler.
    """
    ### BEGIN SOLUTION ex8_1: DDIM step — sigma of eq. 16 here, and x_prev of eq. 12 in ddim_step below (chapter 8, 3 points)
    # returns: sigma, a float (0 when eta = 0)
    return eta * np.sqrt((1.0 - ab_prev) / (1.0 - ab_t) * (1.0 - ab_t / ab_prev))
    ### END SOLUTION


def ddim_step(x0, eps, ab_prev: float, sigma: float, noise):
    """Song et al. (2021), eq. 12: x_prev = sqrt(ab_prev) x0 + sqrt(1 - ab_prev - sigma^2) eps + sigma z."""
    ### BEGIN SOLUTION ex8_1
    # returns: x_prev, the shape of x0
    x_prev = np.sqrt(ab_prev) * x0 + np.sqrt(max(1.0 - ab_prev - sigma**2, 0.0)) * eps
    return x_prev + sigma * noise if sigma > 0 else x_prev
    ### END SOLUTION


def euler_step(x_t, eps, ab_t: float, ab_prev: float):
    """One Euler step of the probability-flow ODE in the variance-exploding frame z = x_t / sqrt(ab) = x0 + sigma eps.

    Karras et al. (2022), eq. 4 with sigma(t) = t:  dz/dsigma = (z - D(z; sigma)) / sigma = eps,  so
    z' = z + (sigma' - sigma) eps, and back to x_{t'} = sqrt(ab') z'. It equals DDIM with eta = 0.
    """
    ### BEGIN SOLUTION ex9_1: Euler step of the probability-flow ODE — in the frame z = x / sqrt(ab): z' = z + (sigma' - sigma) eps, then x' = sqrt(ab') z' (chapter 9, 2 points)
    # returns: x_{t'} (B, ...), the shape of x_t
    z = x_t / np.sqrt(ab_t)
    z_prev = z + (_sigma(ab_prev) - _sigma(ab_t)) * eps
    return np.sqrt(ab_prev) * z_prev
    ### END SOLUTION


def heun_step(x_t, eps, eps_next, ab_t: float, ab_prev: float):
    """Heun's correction (Karras et al. 2022, Alg. 1, lines 7-8): z' = z + (sigma' - sigma) (eps + eps') / 2,

    where eps' is the model's eps at the Euler guess (:func:`euler_step`). Not used for the last step to sigma = 0.
    """
    return euler_step(x_t, 0.5 * (eps + eps_next), ab_t, ab_prev)


def dpmpp_2m_step(x_t, x0, x0_last, ab_t: float, ab_prev: float, ab_last: float | None):
    """DPM-Solver++(2M) (Lu et al. 2022b, Alg. 2), with alpha = sqrt(ab), sigma = sqrt(1 - ab), lambda = log(alpha/sigma):

        h = lambda_prev - lambda_t,   D = x0                                            (first order: DDIM)
        D = (1 + 1/(2r)) x0 - 1/(2r) x0_last,   r = h_last / h                         (second order)
        x_prev = (sigma_prev / sigma_t) x_t - alpha_prev (e^{-h} - 1) D

    ``x0_last`` is the x0 prediction of the previous step, made at alpha_bar = ``ab_last`` (None: first order).
    e^{-h} = alpha_t sigma_prev / (sigma_t alpha_prev) is computed without logs, so ab_t = 0 and ab_prev = 1 work.
    """
    a_t, s_t, a_p, s_p = np.sqrt(ab_t), np.sqrt(1.0 - ab_t), np.sqrt(ab_prev), np.sqrt(1.0 - ab_prev)
    ### BEGIN SOLUTION ex8_2: DPM-Solver++(2M) step — D = x0 (first step) or the 2nd-order mix of x0 and x0_last, then x_prev = (sigma_prev / sigma_t) x_t + (alpha_prev - alpha_t sigma_prev / sigma_t) D (chapter 8, 3 points)
    # returns: x_prev (B, ...), the shape of x_t; a_t, s_t, a_p, s_p above are alpha_t, sigma_t, alpha_prev, sigma_prev
    D = x0
    if x0_last is not None:
        with np.errstate(divide="ignore"):
            lam = lambda ab: 0.5 * (np.log(ab) - np.log1p(-ab))  # noqa: E731  (half the log-SNR)
            h, h_last = lam(ab_prev) - lam(ab_t), lam(ab_t) - lam(ab_last)
        half_inv_r = h / (2.0 * h_last)  # 1 / (2r); 0 when the last step started from pure noise (h_last = inf)
        D = (1.0 + half_inv_r) * x0 - half_inv_r * x0_last
    return (s_p / s_t) * x_t + (a_p - a_t * s_p / s_t) * D  # -alpha_prev (e^{-h} - 1) = alpha_prev - alpha_t s_p / s_t
    ### END SOLUTION


def threshold_x0(x0, clip):
    """Clip the x0 estimate: ``clip=c`` clamps to [-c, c]; ``clip="dynamic"`` is Imagen's dynamic thresholding
    (Saharia et al. 2022, Sec. 2.3): s = max(1, 99.5th percentile of |x0| per sample), x0 = clip(x0, -s, s) / s."""
    if clip is None:
        return x0
    if clip == "dynamic":
        ### BEGIN SOLUTION ex10_2: dynamic thresholding — per sample s = max(1, 99.5th percentile of |x0|), return clip(x0, -s, s) / s (chapter 10, 2 points)
        # returns: the thresholded x0 (B, ...), the shape of x0; s is one number per sample, (B, 1, ..., 1)
        s = np.quantile(np.abs(x0).reshape(x0.shape[0], -1), 0.995, axis=1)  # (B,)
        s = np.maximum(s, 1.0).reshape((-1,) + (1,) * (x0.ndim - 1))        # (B, 1, ..., 1)
        return np.clip(x0, -s, s) / s
        ### END SOLUTION
    if isinstance(clip, str) or not clip > 0:
        raise ValueError(f"clip must be None, a positive number or 'dynamic', got {clip!r}")
    return np.clip(x0, -clip, clip)


def reverse_sde_step(x_t, eps, ab_t: float, ab_prev: float, noise):
    """One Euler-Maruyama step of the reverse-time SDE (Song et al. 2021, eq. 6), in the sigma frame z = x / sqrt(ab).

    There every process is variance exploding, z = x0 + sigma eps, with forward SDE dz = dW in the time tau = sigma^2
    (Karras et al. 2022, eq. 6 with s = 1). Its reverse, dz = -grad log p(z) dtau + dW-bar, stepped from sigma to
    sigma' < sigma::

        z' = z + (sigma^2 - sigma'^2) score + sqrt(sigma^2 - sigma'^2) xi,      score = -eps / sigma

    which is Song et al.'s "reverse diffusion" predictor for the VE SDE (their eq. 46-47). At sigma' = 0 (the last
    step) it is z' = z - sigma eps = x0, Tweedie's estimate, with no noise.
    """
    sig, sig_prev = _sigma(ab_t), _sigma(ab_prev)                 # sigma, sigma' (sigma' = 0 when ab_prev = 1)
    ### BEGIN SOLUTION ex15_1: reverse-SDE step — Euler-Maruyama in the sigma frame: z' = z + (sigma^2 - sigma'^2) score + sqrt(sigma^2 - sigma'^2) xi, score = -eps / sigma, no noise on the last step (chapter 15, 3 points)
    # returns: x at ab_prev (B, ...), the shape of x_t: sqrt(ab_prev) z' with z = x_t / sqrt(ab_t)
    dvar = sig * sig - sig_prev * sig_prev                        # sigma^2 - sigma'^2 > 0
    z = x_t / np.sqrt(ab_t) - (dvar / sig) * eps                  # z + (sigma^2 - sigma'^2) score
    if ab_prev < 1.0:
        z = z + np.sqrt(dvar) * noise
    return np.sqrt(ab_prev) * z
    ### END SOLUTION


def langevin_step(z, score, delta: float, noise):
    """One step of (unadjusted) Langevin dynamics: z' = z + delta grad log p(z) + sqrt(2 delta) xi.

    Its stationary distribution is p as delta -> 0 (Roberts & Tweedie 1996). Song & Ermon (2019), Alg. 1, write the
    same step with alpha = 2 delta: z' = z + alpha / 2 score + sqrt(alpha) xi.
    """
    ### BEGIN SOLUTION ex14_2: Langevin step — z' = z + delta score + sqrt(2 delta) xi, one step of unadjusted Langevin dynamics (chapter 14, 2 points)
    # returns: z' (B, ...), the shape of z (score and noise: like z; delta: a float > 0)
    return z + delta * score + np.sqrt(2.0 * delta) * noise
    ### END SOLUTION


def snr_step_size(score, noise, snr: float) -> float:
    """Song et al. (2021), Alg. 5: delta = 2 (r ||xi|| / ||score||)^2, so that in :func:`langevin_step` the drift
    delta ||score|| is r times the noise sqrt(2 delta) ||xi|| (r = ``snr``, the "signal-to-noise ratio").

    Norms are per sample, averaged over the batch (as in their code)."""
    ### BEGIN SOLUTION ex15_2: Langevin corrector — the step size delta = 2 (r ||xi|| / ||score||)^2 of Song et al.'s Alg. 5 here, and the corrector's Langevin steps at one noise level in PredictorCorrector.step below (chapter 15, 3 points)
    # returns: delta, a float (score, noise: (B, ...); the norms are per sample, then averaged over the batch)
    B = score.shape[0]
    g = np.mean(np.linalg.norm(score.reshape(B, -1), axis=1))
    n = np.mean(np.linalg.norm(noise.reshape(B, -1), axis=1))
    return float(2.0 * (snr * n / g) ** 2)
    ### END SOLUTION


def churn_level(sigma: float, n_steps: int, churn: float, s_tmin: float, s_tmax: float) -> float:
    """Karras et al. (2022), Alg. 2, lines 4-6: sigma_hat = sigma (1 + gamma), where
    gamma = min(S_churn / N, sqrt(2) - 1) if S_tmin <= sigma <= S_tmax, else 0."""
    gamma = min(churn / n_steps, np.sqrt(2.0) - 1.0) if s_tmin <= sigma <= s_tmax else 0.0
    return sigma * (1.0 + gamma)


# ---- the model, guided and checked -------------------------------------------------------------------------------
class _Denoiser:
    """Calls the model (once per step, guided or not), checks its output and returns (x0, eps) for x at time t.

    ``x`` is in the variance-preserving frame (see the module docstring); the model sees the process's own frame
    x * r. For a NoiseSchedule the two are the same.
    """

    def __init__(self, model, schedule, prediction_type, clip, y, guidance_scale, null_label, batch):
        check_prediction(prediction_type, PREDICTION_TYPES if isinstance(schedule, NoiseSchedule) else PREDICTIONS)
        self.model, self.schedule, self.prediction_type, self.clip = model, schedule, prediction_type, clip
        self.discrete = isinstance(schedule, NoiseSchedule)
        self.y, self.s, self.nfe = y, float(guidance_scale), 0
        if y is not None:
            self.y = np.broadcast_to(np.asarray(y, dtype=np.int64), (batch,))
            null_label = getattr(model, "null_label", None) if null_label is None else null_label
            if self.s != 1.0 and null_label is None:
                raise ValueError("classifier-free guidance needs the label meaning 'no condition': pass null_label=...")
            self.null = None if null_label is None else np.full(batch, null_label, dtype=np.int64)

    def _call(self, x, t, *y):
        out = np.asarray(self.model(x, t, *y))
        self.nfe += 1
        if out.shape != x.shape:
            raise ValueError(f"the model returned shape {out.shape} at t={t[0]}; expected {x.shape}, the shape of "
                             f"x_t (a {self.prediction_type} prediction has the shape of its input)")
        if not np.all(np.isfinite(out)):
            raise FloatingPointError(f"the model returned NaN or inf at t={t[0]}: check the model and its "
                                     "weights, or try clip=1.0 / a smaller sigma_max")
        return out

    def _output(self, x, tt):
        """The model's (guided) output at x (the process frame), times tt (B,)."""
        if self.y is None:
            return self._call(x, tt)
        if self.s == 1.0:
            return self._call(x, tt, self.y)
        # conditional and unconditional passes in one batched call: (2B, ...)
        both = self._call(np.concatenate([x, x]), np.concatenate([tt, tt]), np.concatenate([self.y, self.null]))
        cond, uncond = both[: x.shape[0]], both[x.shape[0]:]
        ### BEGIN SOLUTION ex10_1: classifier-free guidance — combine the conditional and unconditional outputs with scale self.s (chapter 10, 1 point)
        # defines: out, the shape of cond and uncond (B, ...)
        out = uncond + self.s * (cond - uncond)
        ### END SOLUTION
        return out

    def __call__(self, x, t):
        if self.discrete:
            tt = np.full(x.shape[0], t, dtype=np.int64)
            x0, eps = predict_x0_and_eps(self.schedule, x, tt, self._output(x, tt), self.prediction_type)
            ab = float(self.schedule.alphas_cumprod[t])
        else:
            tt = np.full(x.shape[0], t, dtype=np.float64)
            p = self.schedule
            alpha, sigma = (float(v) for v in p.alpha_sigma(np.float64(t)))
            r = None if p.variance_preserving else float(np.hypot(alpha, sigma))
            x_in = x if r is None else x * r                                  # the model's own frame
            d_alpha, d_sigma = (float(v) for v in p.derivatives(np.float64(t))) \
                if self.prediction_type == "velocity" else (None, None)
            x0, eps = to_x0_eps(x_in, self._output(x_in, tt), self.prediction_type, alpha, sigma, d_alpha, d_sigma, r)
            ab = float(p.alpha_bar(np.float64(t)))
        if self.clip is not None:  # clip x0, then recompute the eps it implies: eps = (x_t - sqrt(ab) x0) / sqrt(1 - ab)
            x0 = threshold_x0(x0, self.clip)
            eps = (x - np.sqrt(ab) * x0) / np.sqrt(1.0 - ab)
        return x0, eps


# ---- the steppers: one small class per method ----------------------------------------------------------------------
@dataclass
class Step:
    """One step of the loop, from time t to t_prev (None: the clean data), in the VP frame.

    i: index in the loop (0 = the first, noisiest step); n: number of steps; j = n - 1 - i, the step's index in the
    respaced chain; ab_t, ab_prev: alpha_bar of the two levels (ab_prev = 1 at the data); last: t_prev is the data.
    """
    i: int
    n: int
    t: float
    t_prev: float | None
    ab_t: float
    ab_prev: float

    @property
    def j(self) -> int:
        return self.n - 1 - self.i

    @property
    def last(self) -> bool:
        return self.t_prev is None


class Stepper:
    """A sampling method: ``start`` once with the levels it will visit, then ``step`` from each level to the next.

    ``draws_noise``: the loop draws fresh N(0, I) noise of the sample's shape before each step and passes it in.
    """

    draws_noise = False
    starts_at_finite_sigma = False   # the method works in the sigma frame and cannot start from pure noise (sigma = inf)

    def __init__(self, **options):
        if options:
            raise ValueError(f"{type(self).__name__} takes no options {sorted(options)}")

    def start(self, ab: np.ndarray, denoise) -> None:
        """``ab``: alpha_bar of every visited level, descending in noise (ab[i] belongs to ts[i]), then 1 (the data)."""
        self.denoise = denoise

    def perturb(self, x, s: Step):
        """Before the model call of step ``s``: (x, s) to evaluate at. Only EDM's churn moves them (default: as is)."""
        return x, s

    def step(self, x, s: Step, x0, eps, noise):
        raise NotImplementedError


class DDPM(Stepper):
    """Ancestral sampling (Ho et al. 2020, Alg. 2) on the chain respaced to the visited levels (:func:`ddpm_step`)."""

    draws_noise = True

    def __init__(self, variance: str = "fixed_small"):
        _check_choice("variance", variance, VARIANCES)
        self.variance = variance

    def start(self, ab, denoise):
        super().start(ab, denoise)
        self.respaced = _chain_through(ab[:-1][::-1])

    def step(self, x, s, x0, eps, noise):
        return ddpm_step(self.respaced, s.j, x, x0, noise, self.variance)


class DDIM(Stepper):
    """Song et al. (2021), eq. 12 and 16 (:func:`ddim_step`): eta = 0 deterministic, eta = 1 the DDPM posterior."""

    def __init__(self, eta: float = 0.0):
        if not 0.0 <= eta <= 1.0:
            raise ValueError(f"eta must lie in [0, 1] (0: deterministic DDIM, 1: DDPM's variance), got {eta!r}")
        self.eta = float(eta)
        self.draws_noise = self.eta > 0

    def step(self, x, s, x0, eps, noise):
        return ddim_step(x0, eps, s.ab_prev, ddim_sigma(s.ab_t, s.ab_prev, self.eta), noise)


class DPMSolverPP2M(Stepper):
    """DPM-Solver++(2M) (:func:`dpmpp_2m_step`); the final step is first order (Lu et al. 2022b, "lower order final")."""

    def start(self, ab, denoise):
        super().start(ab, denoise)
        self.x0_last = self.ab_last = None

    def step(self, x, s, x0, eps, noise):
        x = dpmpp_2m_step(x, x0, None if s.last else self.x0_last, s.ab_t, s.ab_prev, self.ab_last)
        self.x0_last, self.ab_last = x0, s.ab_t
        return x


class Euler(Stepper):
    """Euler on the probability-flow ODE in the sigma frame (:func:`euler_step`): DDIM with eta = 0.

    From pure noise (ab_t = 0, sigma = inf: a continuous process such as flow matching's at t = 1) the sigma frame
    is undefined; the step is then written as DDIM's, sqrt(ab') x0 + sqrt(1 - ab') eps, the same update.
    """

    def step(self, x, s, x0, eps, noise):
        if s.ab_t == 0.0:
            return ddim_step(x0, eps, s.ab_prev, 0.0, noise)
        return euler_step(x, eps, s.ab_t, s.ab_prev)


class Heun(Stepper):
    """Heun's method (Karras et al. 2022, Alg. 1): an Euler guess, then the average slope; the last step is Euler."""

    starts_at_finite_sigma = True

    def step(self, x, s, x0, eps, noise):
        ### BEGIN SOLUTION ex9_2: Heun step — an Euler guess, the model's eps at the guess (self.denoise(x, t)[1]), then the step with the average eps; Euler alone on the last step (chapter 9, 2 points)
        # returns: x at s.t_prev (B, ...); self.denoise(x_next, s.t_prev) returns (x0, eps), each (B, ...)
        x_next = euler_step(x, eps, s.ab_t, s.ab_prev)
        if s.last:
            return x_next
        return heun_step(x, eps, self.denoise(x_next, s.t_prev)[1], s.ab_t, s.ab_prev)
        ### END SOLUTION


class EDM(Heun):
    """Karras et al. (2022), Alg. 2: Heun's method with "churn". Before step i it adds noise, raising the level from
    sigma to sigma_hat = sigma (1 + gamma) (:func:`churn_level`), z_hat = z + sqrt(sigma_hat^2 - sigma^2) S_noise xi,
    then takes the Heun step from sigma_hat to sigma'. churn = 0 is their deterministic Alg. 1 (= :class:`Heun`).
    NFE = 2 steps - 1. Churn needs a continuous process (sigma_hat lies between the grid's levels).
    """

    def __init__(self, churn: float = 0.0, s_tmin: float = 0.0, s_tmax: float = float("inf"), s_noise: float = 1.0):
        if churn < 0 or s_noise < 0 or s_tmin > s_tmax:
            raise ValueError(f"need churn >= 0, s_noise >= 0 and s_tmin <= s_tmax; got churn={churn}, "
                             f"s_noise={s_noise}, s_tmin={s_tmin}, s_tmax={s_tmax}")
        self.churn, self.s_tmin, self.s_tmax, self.s_noise = float(churn), float(s_tmin), float(s_tmax), float(s_noise)

    def start(self, ab, denoise):
        super().start(ab, denoise)
        if self.churn > 0 and denoise.discrete:
            raise ValueError("edm with churn > 0 needs a continuous process (it evaluates the model between the "
                             "schedule's integer steps); use churn=0 on a NoiseSchedule")

    def perturb(self, x, s):
        sig = _sigma(s.ab_t)
        sig_hat = churn_level(sig, s.n, self.churn, self.s_tmin, self.s_tmax)
        if sig_hat == sig:
            return x, s
        p = self.denoise.schedule
        t_hat = float(p.t_of_noise_level(sig_hat))
        ab_hat = float(p.alpha_bar(np.float64(t_hat)))
        z = x / np.sqrt(s.ab_t)
        z = z + np.sqrt(sig_hat ** 2 - sig ** 2) * self.s_noise * self.rng.standard_normal(x.shape)
        return np.sqrt(ab_hat) * z, replace(s, t=t_hat, ab_t=ab_hat)


class ReverseSDE(Stepper):
    """Euler-Maruyama on the reverse-time SDE (:func:`reverse_sde_step`); the last step is Tweedie's x0."""

    draws_noise = True
    starts_at_finite_sigma = True

    def step(self, x, s, x0, eps, noise):
        return reverse_sde_step(x, eps, s.ab_t, s.ab_prev, noise)


class PredictorCorrector(Stepper):
    """Song et al. (2021), Alg. 2 and 5 (the order of their code): at each level, ``corrector_steps`` Langevin steps
    with the snr rule (:func:`snr_step_size`), then the reverse-diffusion predictor (:func:`reverse_sde_step`) to the
    next level. NFE = steps (1 + corrector_steps). snr = 0.16 is their choice for VE models."""

    draws_noise = True
    starts_at_finite_sigma = True

    def __init__(self, snr: float = 0.16, corrector_steps: int = 1):
        if snr <= 0 or int(corrector_steps) != corrector_steps or corrector_steps < 0:
            raise ValueError(f"need snr > 0 and an integer corrector_steps >= 0; got {snr}, {corrector_steps}")
        self.snr, self.corrector_steps = float(snr), int(corrector_steps)

    def step(self, x, s, x0, eps, noise):
        sig, sqrt_ab = _sigma(s.ab_t), np.sqrt(s.ab_t)                     # sigma and sqrt(ab) of the level s.t
        ### BEGIN SOLUTION ex15_2
        # defines: x, eps (B, ...): x after the Langevin steps (z = x / sqrt(ab)), eps = self.denoise(x, s.t)[1] there
        for m in range(self.corrector_steps):
            if m > 0:
                eps = self.denoise(x, s.t)[1]
            score = -eps / sig                                               # grad log p(z) in the sigma frame
            xi = self.rng.standard_normal(x.shape)
            x = sqrt_ab * langevin_step(x / sqrt_ab, score, snr_step_size(score, xi, self.snr), xi)
        if self.corrector_steps:
            eps = self.denoise(x, s.t)[1]
        ### END SOLUTION
        return reverse_sde_step(x, eps, s.ab_t, s.ab_prev, noise)


class AnnealedLangevin(Stepper):
    """Song & Ermon (2019), Alg. 1: ``n_steps`` Langevin steps at each noise level sigma_i of the grid, with step
    size alpha_i = eps sigma_i^2 / sigma_L^2 (sigma_L the last, smallest level), i.e. delta = alpha_i / 2 in
    :func:`langevin_step`. The levels only anneal; nothing moves x between them. ``denoise_last``: end with
    Tweedie's E[x0 | x] at sigma_L (one more model call; Jolicoeur-Martineau et al. 2021), else return x as it is.
    NFE = steps n_steps (+ 1).

    The rule keeps alpha_i / sigma_i^2 = eps / sigma_L^2 the same at every level: the step is a fixed fraction of
    the width of the noisy distribution. ``eps`` None means eps = 0.5 sigma_L^2 (Song & Ermon's 2e-5 with
    sigma_L = 0.01 is 0.2 sigma_L^2).
    """

    starts_at_finite_sigma = True

    def __init__(self, n_steps: int = 10, eps: float | None = None, denoise_last: bool = True):
        if int(n_steps) != n_steps or n_steps < 1 or (eps is not None and eps <= 0):
            raise ValueError(f"need an integer n_steps >= 1 and eps > 0 (or None); got {n_steps}, {eps}")
        self.n_steps, self.eps, self.denoise_last = int(n_steps), eps, bool(denoise_last)

    def start(self, ab, denoise):
        super().start(ab, denoise)
        self.sigma_L = _sigma(float(ab[-2]))
        self.eps_used = 0.5 * self.sigma_L ** 2 if self.eps is None else float(self.eps)

    def step(self, x, s, x0, eps, noise):
        sig, sqrt_ab = _sigma(s.ab_t), np.sqrt(s.ab_t)
        delta = 0.5 * self.eps_used * sig ** 2 / self.sigma_L ** 2           # alpha_i / 2
        z = x / sqrt_ab
        for k in range(self.n_steps):
            if k > 0:
                eps = self.denoise(sqrt_ab * z, s.t)[1]
            z = langevin_step(z, -eps / sig, delta, self.rng.standard_normal(x.shape))
        if s.last and self.denoise_last:
            return self.denoise(sqrt_ab * z, s.t)[0]
        return np.sqrt(s.ab_prev) * z


# ---- steppers in the process's own time t (flow matching's ODE dx/dt = u(x, t)) ------------------------------------
class TimeStepper(Stepper):
    """Integrates dx/dt = u(x, t) in the process's own frame and time, with u = alpha'(t) x0 + sigma'(t) eps the
    velocity the model's (x0, eps) imply (Lipman et al. 2023, eq. 1; any prediction type converts to it).

    The loop hands over x in the VP frame; ``step`` multiplies by r = sqrt(alpha^2 + sigma^2) (``Process.scale``),
    takes the step on x_t itself and divides by r' again. Unlike the sigma-frame steppers above it can start at
    t = 1 of the linear interpolant (alpha = 0, sigma / alpha = inf). The last step integrates to t_min when the
    process reaches the data there (sigma(t_min) = 0, the linear interpolant) and jumps to x0 otherwise.
    """

    def start(self, ab, denoise):
        super().start(ab, denoise)
        if isinstance(denoise.schedule, NoiseSchedule):
            raise ValueError(f"{type(self).__name__} integrates in continuous time t: it needs a continuous process "
                             "(tinydiff.processes), not a NoiseSchedule; use 'euler' or 'heun' there")
        self.p = denoise.schedule
        self.reaches_data = float(self.p.alpha_sigma(np.float64(self.p.t_min))[1]) == 0.0

    def velocity(self, x, t: float, x0=None, eps=None):
        """u(x, t) for x in the PROCESS frame (a model call unless (x0, eps) at (x, t) are given)."""
        if x0 is None:
            x0, eps = self.denoise(x / float(self.p.scale(np.float64(t))), t)
        d_alpha, d_sigma = (float(v) for v in self.p.derivatives(np.float64(t)))
        return d_alpha * x0 + d_sigma * eps

    def step(self, x, s, x0, eps, noise):
        if s.last and not self.reaches_data:
            return x0
        t_prev = float(self.p.t_min) if s.last else float(s.t_prev)
        r_t, r_prev = (float(self.p.scale(np.float64(v))) for v in (s.t, t_prev))
        x_prev = self.ode_step(x * r_t, float(s.t), t_prev, self.velocity(x * r_t, s.t, x0, eps))
        return x_prev / r_prev

    def ode_step(self, x, t: float, t_prev: float, u):
        """x_{t_prev} from x_t (process frame) and u = u(x_t, t); h = t_prev - t < 0."""
        raise NotImplementedError


class EulerT(TimeStepper):
    """Euler in t: x' = x + h u(x, t). On the linear interpolant this is DDIM (eta = 0), the same update
    (Gao et al. 2024): x + h (eps - x0) = (1 - t') x0 + t' eps."""

    def ode_step(self, x, t, t_prev, u):
        ### BEGIN SOLUTION ex19_1: Euler and midpoint steps in t — x' = x + h u(x, t) here, and the midpoint rule x' = x + h u(x + (h/2) u, t + h/2) in MidpointT below, h = t_prev - t < 0 (chapter 19, 2 points)
        # returns: x at t_prev (B, ...), the shape of x (u: u(x, t), like x; t, t_prev: floats)
        return x + (t_prev - t) * u
        ### END SOLUTION


class MidpointT(TimeStepper):
    """The explicit midpoint rule (Runge-Kutta 2): x' = x + h u(x + (h/2) u(x, t), t + h/2). Two calls a step."""

    def ode_step(self, x, t, t_prev, u):
        ### BEGIN SOLUTION ex19_1
        # returns: x at t_prev (B, ...); self.velocity(x_mid, t_mid) is u(x_mid, t_mid), one model call
        h = t_prev - t
        return x + h * self.velocity(x + 0.5 * h * u, t + 0.5 * h)
        ### END SOLUTION


class HeunT(TimeStepper):
    """Heun's method (the trapezoid rule with an Euler predictor): x_e = x + h u, x' = x + (h/2)(u + u(x_e, t')).
    Two calls a step, including the last one when it lands on the data (t' = 0 of the linear interpolant)."""

    def ode_step(self, x, t, t_prev, u):
        h = t_prev - t
        return x + 0.5 * h * (u + self.velocity(x + h * u, t_prev))


# name -> stepper class: the one table of sampling methods. ``sample(method=name)`` looks here. The "-t" methods
# integrate in the process's own time t (flow matching); the others in the VP / sigma frame.
SAMPLERS: dict[str, type[Stepper]] = {"ddpm": DDPM, "ddim": DDIM, "dpm++2m": DPMSolverPP2M, "euler": Euler,
                                      "heun": Heun, "edm": EDM, "sde": ReverseSDE, "pc": PredictorCorrector,
                                      "langevin": AnnealedLangevin,
                                      "euler-t": EulerT, "midpoint-t": MidpointT, "heun-t": HeunT}
TIME_METHODS = ("euler-t", "midpoint-t", "heun-t")   # continuous processes only (integrate in t)
METHODS = tuple(m for m in SAMPLERS if m not in TIME_METHODS)   # the methods that step in the VP / sigma frame
ODE_METHODS = ("euler", "heun")   # start at sigma_max = 80 on a NoiseSchedule by default
SIGMA_FRAME_METHODS = ODE_METHODS + ("edm", "sde", "pc", "langevin")   # so do these (they step in sigma)


def _make_stepper(method: str, eta: float, variance: str, sampler_options: dict | None = None) -> Stepper:
    """The stepper of ``method``, given only the options it understands (a meaningless option is an error).
    ``sampler_options`` go to the stepper's constructor (e.g. {"churn": 40} for "edm", {"snr": 0.16} for "pc")."""
    check_method(method)
    options = dict(sampler_options or {})
    if method == "ddim":
        options["eta"] = eta
    elif eta:
        raise ValueError(f"eta={eta!r} applies to method='ddim' only (for '{method}' it would be ignored)")
    if method == "ddpm":
        options["variance"] = variance
    else:
        _check_choice("variance", variance, VARIANCES)
        if variance != "fixed_small":
            raise ValueError(f"variance={variance!r} applies to method='ddpm' only")
    try:
        return SAMPLERS[method](**options)
    except TypeError as err:                          # an option this method does not take
        import inspect
        takes = [k for k in inspect.signature(SAMPLERS[method].__init__).parameters if k not in ("self", "options")]
        raise ValueError(f"method={method!r} takes the options {takes}, got {sorted(options)} ({err})") from None


@dataclass
class Trajectory:
    """What ``return_trajectory=True`` gives besides the samples.

    t: (S+1,) the step of each state (-1 = clean data).  x: (S+1, B, ...) the states x_t, in the process's frame
    (the variance-preserving frame for a NoiseSchedule), x[0] the start noise and x[-1] the samples.
    x0: (S, B, ...) the x0 estimate made at each step.  nfe: number of model calls (a guided call with batch 2B
    counts once).
    """
    t: np.ndarray
    x: np.ndarray
    x0: np.ndarray
    nfe: int


# ---- the levels of a run -----------------------------------------------------------------------------------------
def _sampling_steps(schedule, method, steps, spacing, sigma_max) -> np.ndarray:
    """The descending times to visit. A NoiseSchedule: :func:`timesteps`, restricted for Euler/Heun (and for any
    method given sigma_max) to sigma_t <= sigma_max. A continuous process: :func:`tinydiff.processes.grid`."""
    if not isinstance(schedule, NoiseSchedule):
        if steps is None:
            raise ValueError("steps is required when sampling a continuous process (e.g. steps=50)")
        spacing = getattr(schedule, "default_grid", "uniform") if spacing in SPACINGS else spacing
        return grid(schedule, steps, spacing, sigma_max=sigma_max)
    if sigma_max is None:
        sigma_max = ODE_SIGMA_MAX if method in SIGMA_FRAME_METHODS else np.inf
    T_eff = int(np.searchsorted(schedule.sigmas, sigma_max, side="right"))  # steps 0..T_eff-1 have sigma <= sigma_max
    if T_eff < schedule.T:
        if T_eff == 0:
            raise ValueError(f"sigma_max={sigma_max} is below the first step's sigma {schedule.sigmas[0]:.3g}")
        if steps is not None and steps > T_eff:
            raise ValueError(f"steps must be an integer in 1..{T_eff}: only {T_eff} steps of the schedule have "
                             f"sigma <= sigma_max={sigma_max}; got {steps!r}")
    return timesteps(T_eff, steps, spacing)


def _levels(schedule, ts):
    """(ab, r) of every visited time and, last, of the clean data (ab = 1, r = 1)."""
    if isinstance(schedule, NoiseSchedule):
        ab = schedule.alphas_cumprod[ts]
        r = None
    else:
        ab = schedule.alpha_bar(ts)
        r = None if schedule.variance_preserving else np.append(schedule.scale(ts), 1.0)
    return np.append(ab, 1.0), r


def _start_noise(x_T, shape, rng, r0):
    """x_T ~ N(0, I) in the VP frame (default), or the given x_T (in the process's frame)."""
    if x_T is None:
        return rng.standard_normal(shape)
    x = np.asarray(x_T)
    if x.shape != shape:
        raise ValueError(f"x_T has shape {x.shape} but shape={shape}: pass noise of the shape you want to sample")
    return x if r0 is None else x / r0


# ---- the shared loop ---------------------------------------------------------------------------------------------
def sample(model, shape, schedule: NoiseSchedule, *, method="ddpm", steps=None, eta=0.0, prediction_type="epsilon",
           timestep_spacing="trailing", clip=None, rng=None, return_trajectory=False, variance="fixed_small",
           y=None, guidance_scale=1.0, null_label=None, x_T=None, sigma_max=None, final_step="denoise",
           progress=False, sampler_options=None):
    """Draw samples of shape ``shape`` = (B, ...) by running ``method`` over ``steps`` steps from noise.

    Args:
        schedule: a :class:`NoiseSchedule`, or a continuous :class:`tinydiff.processes.Process` (then ``steps`` is
            required and the spacing is one of :data:`tinydiff.processes.GRIDS`, "trailing" meaning the process's
            default grid).
        method: a key of :data:`SAMPLERS`: "ddpm" (ancestral; with fewer steps the respaced chain of
            :func:`respace`), "ddim" (any ``eta`` in [0, 1]), "dpm++2m", "euler" or "heun" (probability-flow ODE
            in the sigma frame); score-based, starting at a finite sigma: "edm" (Karras et al. 2022, Alg. 2; Heun
            when churn = 0), "sde" (reverse-time Euler-Maruyama), "pc" (predictor-corrector), "langevin" (annealed);
            on a continuous process also "euler-t", "midpoint-t", "heun-t" (dx/dt = u in the process's own
            time t: flow matching's ODE, from t = 1 of the linear interpolant).
        steps: how many steps (None: all T).  timestep_spacing: "linspace", "leading" or "trailing" (:func:`timesteps`).
        prediction_type: what ``model`` outputs.  clip: None, c, or "dynamic" (:func:`threshold_x0`).
        variance: "fixed_small" or "fixed_large" (ddpm only).  eta: DDIM noise, 0 = deterministic, 1 = DDPM (ddim only).
        y, guidance_scale, null_label: classifier-free guidance (see the module docstring); ``null_label`` defaults
            to ``model.null_label``.
        x_T: start noise (default N(0, I) in the VP frame), the state at the first sampled step.
        sigma_max: start at the largest step with sigma_t <= sigma_max; default 80 for euler/heun (a cosine schedule
            ends at sigma ~ 2e4, zero terminal SNR at infinity) and no limit for the others.
        final_step: "denoise" (jump to the clean data, returning E[x0 | x_{t_last}]) or "none" (stop at x_{t_last}).
        progress: True shows a tqdm progress bar (stderr); a tqdm bar (anything with ``update``) is advanced by one
            per step instead, so a caller can show one bar over many calls.
        sampler_options: options of the method's stepper, e.g. {"churn": 40, "s_noise": 1.0} for "edm",
            {"snr": 0.16, "corrector_steps": 1} for "pc", {"n_steps": 10, "eps": 0.1} for "langevin".
    Returns:
        samples (B, ...), and a :class:`Trajectory` if ``return_trajectory``.
    """
    _check_choice("final_step", final_step, FINAL_STEPS)
    stepper = _make_stepper(method, eta, variance, sampler_options)
    check_spacing(timestep_spacing, schedule)
    shape = tuple(int(n) for n in shape)
    if not shape or shape[0] < 1:
        raise ValueError(f"shape must be (B, ...) with a batch size B >= 1, got {shape}")
    ts = _sampling_steps(schedule, method, steps, timestep_spacing, sigma_max)
    ab, r = _levels(schedule, ts)
    if ab[0] == 0.0 and (stepper.starts_at_finite_sigma or
                         (isinstance(schedule, NoiseSchedule) and method in ODE_METHODS)):
        raise ValueError(f"{method} cannot start at sigma = inf (zero terminal SNR): pass a finite sigma_max")
    rng = make_rng(rng)
    x = _start_noise(x_T, shape, rng, None if r is None else r[0])
    denoise = _Denoiser(model, schedule, prediction_type, clip, y, guidance_scale, null_label, shape[0])
    stepper.rng = rng                                   # for steppers that draw more noise inside a step
    stepper.start(ab, denoise)
    frame = (lambda v, k: v) if r is None else (lambda v, k: v * r[k])      # VP frame -> the process's frame
    xs, x0s, t_list = [frame(x, 0)], [], [ts[0]]
    loop = range(len(ts))
    advance = getattr(progress, "update", None)   # a caller's bar (e.g. over several batches): one tick per step
    if progress and advance is None:
        from tqdm.auto import tqdm
        loop = tqdm(loop, desc=f"sampling ({method}, {len(ts)} steps)", leave=False)
    for i in loop:
        if advance is not None:
            advance(1)
        last = i + 1 == len(ts)
        if last and final_step == "none":
            break
        s = Step(i, len(ts), ts[i], None if last else ts[i + 1], float(ab[i]), float(ab[i + 1]))
        x, s = stepper.perturb(x, s)
        x0, eps = denoise(x, s.t)
        noise = rng.standard_normal(shape) if stepper.draws_noise else None
        x = stepper.step(x, s, x0, eps, noise)
        xs.append(frame(x, i + 1)), x0s.append(x0), t_list.append(-1 if last else s.t_prev)
    x_out = xs[-1]
    if not return_trajectory:
        return x_out
    x0_arr = np.stack(x0s) if x0s else np.empty((0,) + shape)
    return x_out, Trajectory(t=np.array(t_list), x=np.stack(xs), x0=x0_arr, nfe=denoise.nfe)


def invert(model, x0, schedule: NoiseSchedule, *, method="ddim", steps=None, prediction_type="epsilon",
           timestep_spacing="trailing", y=None, guidance_scale=1.0, null_label=None, sigma_max=None,
           fixed_point_iters=0, return_trajectory=False):
    """DDIM inversion / ODE encoding: run the deterministic sampler backwards, from data x0 to noise x_{t_first}.

    Sampling step t -> t' is z' = z + (sigma' - sigma) eps(x_t, t) in the sigma frame (:func:`euler_step`), so the
    exact inverse is z = z' - (sigma' - sigma) eps(x_t, t): implicit in x_t. The usual approximation evaluates eps at
    the known point x_{t'} (at step t); ``fixed_point_iters`` more passes re-evaluate eps at the new x_t, which
    converges to the exact inverse of :func:`sample` with method "ddim", eta = 0 (and "euler") for small steps.

    Returns the noise x at the first sampling step (shape of x0, in the process's frame), and a :class:`Trajectory`
    (ascending t) if asked.
    """
    _check_choice("method (invertible: 'ddim' with eta=0, 'euler')", method, ("ddim", "euler"))
    check_spacing(timestep_spacing, schedule)
    x = np.asarray(x0)
    ts = _sampling_steps(schedule, method, steps, timestep_spacing, sigma_max)[::-1]  # ascending
    ab, r = _levels(schedule, ts)                      # ab[k] belongs to ts[k]; ab[-1] = 1 (the data)
    denoise = _Denoiser(model, schedule, prediction_type, None, y, guidance_scale, null_label, x.shape[0])
    xs, x0s, t_list, ab_from = [x], [], [-1], 1.0
    for k, t in enumerate(ts):
        x0_hat, eps = denoise(x, t)
        x_new = euler_step(x, eps, ab_from, float(ab[k]))      # the same step with sigma increasing
        for _ in range(int(fixed_point_iters)):
            x0_hat, eps = denoise(x_new, t)
            x_new = euler_step(x, eps, ab_from, float(ab[k]))
        x, ab_from = x_new, float(ab[k])
        xs.append(x if r is None else x * r[k]), x0s.append(x0_hat), t_list.append(t)
    if not return_trajectory:
        return xs[-1]
    return xs[-1], Trajectory(t=np.array(t_list), x=np.stack(xs), x0=np.stack(x0s), nfe=denoise.nfe)
