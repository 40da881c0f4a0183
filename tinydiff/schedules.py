"""Noise schedules: the betas of the forward chain and everything derived from them.

The forward (noising) chain adds a little Gaussian noise at each of T steps (Ho et al. 2020, eq. 2)::

    q(x_t | x_{t-1}) = N(x_t; sqrt(1 - beta_t) x_{t-1}, beta_t I)

and composes into a closed form for any step (Ho et al. 2020, eq. 4)::

    q(x_t | x_0) = N(x_t; sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I),   alpha_t = 1 - beta_t,   alpha_bar_t = prod_{s<=t} alpha_s

**Index convention** (used everywhere in tinydiff): time steps are ``t in {0, ..., T-1}`` and the arrays are indexed by
``t`` directly, so ``alphas_cumprod[t] = prod_{i<=t} (1 - betas[i])``. Step ``t = 0`` is the *first* noising step (Ho et
al.'s t = 1); the clean data are "before step 0", which is why ``alphas_cumprod_prev[0] = 1``.

The signal-to-noise ratio of step t is ``snr[t] = alpha_bar_t / (1 - alpha_bar_t)``. A good schedule ends with a
terminal SNR near 0, so that x_{T-1} is (almost) pure noise and sampling can start from N(0, I).
"""

from __future__ import annotations

import math
import warnings

import numpy as np

__all__ = ["NoiseSchedule"]

# A schedule whose last alpha_bar is above this does not end in noise: sampling from N(0, I) then starts from the
# wrong distribution. The constructors of linear-type schedules warn about it.
TERMINAL_ALPHA_BAR_WARNING = 0.01


class NoiseSchedule:
    """The betas of a T-step forward chain and the quantities derived from them (all float64 arrays of shape (T,)).

    Args:
        betas: (T,) variances of the forward steps, each in (0, 1). A final beta equal to 1 (alpha_bar_{T-1} = 0,
            zero terminal SNR) is allowed only with ``zero_terminal_snr=True``, which
            :meth:`rescale_zero_terminal_snr` sets for you.

    Attributes:
        T: number of steps.
        betas: beta_t.
        alphas: alpha_t = 1 - beta_t.
        alphas_cumprod: alpha_bar_t = prod_{i<=t} alpha_i.
        alphas_cumprod_prev: alpha_bar_{t-1}, with alpha_bar_{-1} = 1 (the clean data).
        snr: alpha_bar_t / (1 - alpha_bar_t).
        log_snr: log(snr) (``-inf`` where alpha_bar_t = 0).
        posterior_variance: beta_tilde_t = beta_t (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t)   (Ho et al. eq. 7).
    """

    # As a noising process (tinydiff.processes): x_t = alpha(t) x0 + sigma(t) eps with alpha = sqrt(alpha_bar_t) and
    # sigma = sqrt(1 - alpha_bar_t), on integer time. (Kingma's alpha(t) is sqrt(alphas_cumprod[t]), not alphas[t];
    # the `sigmas` property below is Karras's noise level sigma / alpha.)
    discrete = True
    variance_preserving = True

    def __init__(self, betas, *, zero_terminal_snr: bool = False):
        betas = np.asarray(betas)
        if betas.ndim != 1 or betas.size == 0:
            raise ValueError(f"betas must be a non-empty 1-D array of shape (T,), got shape {betas.shape}")
        if not np.issubdtype(betas.dtype, np.floating) and not np.issubdtype(betas.dtype, np.integer):
            raise TypeError(f"betas must be a float array, got dtype {betas.dtype}")
        betas = betas.astype(np.float64)
        if not np.all(np.isfinite(betas)):
            raise ValueError("betas contain NaN or inf; every beta_t must be a finite number in (0, 1)")
        bad = np.flatnonzero((betas <= 0) | (betas >= 1))
        if zero_terminal_snr:
            bad = bad[~((bad == betas.size - 1) & (betas[bad] == 1.0))]
        if bad.size:
            i = int(bad[0])
            hint = (
                " A final beta of 1 means zero terminal SNR: build it with .rescale_zero_terminal_snr() "
                "or pass zero_terminal_snr=True."
                if i == betas.size - 1 and betas[i] == 1.0
                else " Each step must add some noise (beta > 0) and keep some signal (beta < 1)."
            )
            raise ValueError(f"betas must lie in (0, 1); betas[{i}] = {float(betas[i])!r}.{hint}")

        self.T = int(betas.size)
        self.betas = betas
        self.alphas = 1.0 - betas
        self.alphas_cumprod = np.cumprod(self.alphas)
        if zero_terminal_snr:
            self.alphas_cumprod[-1] = 0.0  # exactly, not a rounding residue
        self.alphas_cumprod_prev = np.concatenate([[1.0], self.alphas_cumprod[:-1]])
        with np.errstate(divide="ignore"):
            self.snr = self.alphas_cumprod / (1.0 - self.alphas_cumprod)
            self.log_snr = np.log(self.snr)
        # the variance of q(x_{t-1} | x_t, x_0) (Ho et al. 2020, eq. 7); its mean is diffusion.q_posterior's
        self.posterior_variance = self.betas * (1.0 - self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        for name in ("betas", "alphas", "alphas_cumprod", "alphas_cumprod_prev", "snr", "log_snr",
                     "posterior_variance"):
            getattr(self, name).setflags(write=False)  # a schedule is a value: nobody edits it in place

    # ---- derived views ---------------------------------------------------------------------------------------
    @property
    def zero_terminal_snr(self) -> bool:
        """True when alpha_bar_{T-1} == 0: x_{T-1} is pure noise and epsilon cannot be turned into x0 there."""
        return bool(self.alphas_cumprod[-1] == 0.0)

    @property
    def terminal_snr(self) -> float:
        """SNR of the last step, alpha_bar_{T-1} / (1 - alpha_bar_{T-1}). Near 0 is good; 0 is exact noise."""
        return float(self.snr[-1])

    @property
    def sigmas(self) -> np.ndarray:
        """Noise level in the variance-exploding frame, sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t) = 1/sqrt(snr).

        x_t / sqrt(alpha_bar_t) = x_0 + sigma_t * eps: the frame of Karras et al. (2022) and of Euler/Heun samplers.
        """
        with np.errstate(divide="ignore"):
            return np.sqrt((1.0 - self.alphas_cumprod) / self.alphas_cumprod)

    def alpha_sigma(self, t):
        """(alpha, sigma) = (sqrt(alpha_bar_t), sqrt(1 - alpha_bar_t)) at integer steps t: the process view."""
        ab = self.alphas_cumprod[np.asarray(t)]
        return np.sqrt(ab), np.sqrt(1.0 - ab)

    def alpha_bar(self, t):
        """alpha_bar_t at integer steps t (the process view's alpha^2 / (alpha^2 + sigma^2))."""
        return self.alphas_cumprod[np.asarray(t)]

    def scale(self, t):
        """sqrt(alpha^2 + sigma^2) = 1: a NoiseSchedule is variance preserving."""
        return np.ones(np.shape(t))

    def __len__(self) -> int:
        return self.T

    def __repr__(self) -> str:
        return (f"NoiseSchedule(T={self.T}, beta=[{self.betas[0]:.3g} .. {self.betas[-1]:.3g}], "
                f"alpha_bar[T-1]={self.alphas_cumprod[-1]:.3g}, terminal SNR={self.terminal_snr:.3g})")

    # ---- the schedules ---------------------------------------------------------------------------------------
    @classmethod
    def linear(cls, T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02, *,
               scale_to_T: bool = True) -> "NoiseSchedule":
        """Ho et al. (2020): betas evenly spaced from ``beta_start`` to ``beta_end``.

        The defaults were chosen for T = 1000, where alpha_bar_{T-1} ~ 4e-5. With fewer steps the same range never
        reaches noise (T = 50 ends at alpha_bar ~ 0.6). So, as in the improved-DDPM code (Nichol & Dhariwal 2021),
        ``scale_to_T=True`` (the default) multiplies both ends by 1000 / T, which keeps the sum of the betas, and so
        the terminal SNR, roughly the same for every T; betas are capped at 0.999. With ``scale_to_T=False`` the
        values are used as given, and a warning says when the chain does not end near noise (alpha_bar_{T-1} > 0.01).
        ``beta_start`` and ``beta_end`` themselves must lie in (0, 1).
        """
        _check_T(T)
        _check_open_unit("linear", beta_start=beta_start, beta_end=beta_end)
        scale = 1000.0 / T if scale_to_T else 1.0
        betas = np.linspace(beta_start * scale, beta_end * scale, T, dtype=np.float64)
        return _warn_if_not_noise(cls(np.minimum(betas, 0.999)), "linear")

    @classmethod
    def scaled_linear(cls, T: int = 1000, beta_start: float = 0.00085, beta_end: float = 0.012, *,
                      scale_to_T: bool = True) -> "NoiseSchedule":
        """Stable Diffusion's schedule: linear in sqrt(beta), beta_t = (linspace(sqrt(b0), sqrt(b1), T))^2.

        ``scale_to_T`` works as in :meth:`linear`. Its terminal alpha_bar is ~0.0047, not 0: the reason Lin et al.
        (2023) proposed :meth:`rescale_zero_terminal_snr`.
        """
        _check_T(T)
        _check_open_unit("scaled_linear", beta_start=beta_start, beta_end=beta_end)
        scale = 1000.0 / T if scale_to_T else 1.0
        betas = np.linspace(math.sqrt(beta_start * scale), math.sqrt(beta_end * scale), T, dtype=np.float64) ** 2
        return _warn_if_not_noise(cls(np.minimum(betas, 0.999)), "scaled_linear")

    @classmethod
    def cosine(cls, T: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> "NoiseSchedule":
        """Nichol & Dhariwal (2021), eq. 17: alpha_bar follows a squared cosine in time.

            f(u) = cos^2( (u + s) / (1 + s) * pi/2 ),   alpha_bar(u) = f(u) / f(0),   u = t/T in [0, 1]
            beta_t = min(1 - alpha_bar((t+1)/T) / alpha_bar(t/T), max_beta)        for t = 0, ..., T-1

        The offset ``s`` >= 0 keeps beta_0 from being tiny; ``max_beta`` in (0, 1) stops the last step from being a
        division by ~0.
        """
        _check_T(T)
        if not (np.isfinite(s) and s >= 0):
            raise ValueError(f"cosine: the offset s must be a finite number >= 0 (Nichol & Dhariwal use 0.008), got {s!r}")
        _check_open_unit("cosine", max_beta=max_beta)
        ### BEGIN SOLUTION ex2_1: cosine schedule — return the schedule whose alpha_bar(u) = f(u) / f(0) (Nichol & Dhariwal eq. 17), using _betas_from_alpha_bar (chapter 2, 2 points)
        # returns: a NoiseSchedule with T betas, shape (T,)
        f = lambda u: np.cos((u + s) / (1.0 + s) * np.pi / 2) ** 2  # noqa: E731
        return cls(_betas_from_alpha_bar(lambda u: f(u) / f(0.0), T, max_beta))
        ### END SOLUTION

    @classmethod
    def sigmoid(cls, T: int = 1000, start: float = -3.0, end: float = 3.0, tau: float = 1.0,
                max_beta: float = 0.999) -> "NoiseSchedule":
        """Chen (2023), "On the importance of noise scheduling", Algorithm 1 (sigmoid schedule):

            v(z) = sigmoid(z / tau),   alpha_bar(u) = (v(end) - v(u (end - start) + start)) / (v(end) - v(start))

        then betas from consecutive ratios as in :meth:`cosine`. A larger ``tau`` makes it closer to linear in u.
        Needs start < end and tau > 0.
        """
        _check_T(T)
        if not (np.isfinite(start) and np.isfinite(end) and start < end and np.isfinite(tau) and tau > 0):
            raise ValueError(f"sigmoid: need finite start < end and tau > 0 (Chen 2023 uses start=-3, end=3, tau=1), "
                             f"got start={start!r}, end={end!r}, tau={tau!r}")
        _check_open_unit("sigmoid", max_beta=max_beta)
        v = lambda z: 1.0 / (1.0 + np.exp(-z / tau))  # noqa: E731
        alpha_bar = lambda u: (v(end) - v(u * (end - start) + start)) / (v(end) - v(start))  # noqa: E731
        return cls(_betas_from_alpha_bar(alpha_bar, T, max_beta))

    def rescale_zero_terminal_snr(self) -> "NoiseSchedule":
        """Lin et al. (2023), Algorithm 1: shift and scale sqrt(alpha_bar) so the last step is pure noise.

            sqrt(ab)' = (sqrt(ab) - sqrt(ab_{T-1})) * sqrt(ab_0) / (sqrt(ab_0) - sqrt(ab_{T-1}))

        keeps alpha_bar_0 and makes alpha_bar_{T-1} = 0 exactly (beta_{T-1} = 1). Pair it with v-prediction: at
        t = T-1 an epsilon-prediction model says nothing about x0.
        """
        ### BEGIN SOLUTION ex2_2: zero terminal SNR — compute the new betas (shape (T,), betas[-1] = 1) from the shifted and scaled sqrt(alpha_bar) (chapter 2, 2 points)
        # defines: betas (T,) float64, with betas[-1] = 1
        sab = np.sqrt(self.alphas_cumprod)
        sab0, sabT = sab[0], sab[-1]
        sab = (sab - sabT) * sab0 / (sab0 - sabT)
        alphas_cumprod = sab**2
        alphas = np.concatenate([alphas_cumprod[:1], alphas_cumprod[1:] / alphas_cumprod[:-1]])
        betas = 1.0 - alphas
        betas[-1] = 1.0
        ### END SOLUTION
        return NoiseSchedule(betas, zero_terminal_snr=True)

    @classmethod
    def from_name(cls, name: str, T: int = 1000, **kwargs) -> "NoiseSchedule":
        """``"linear"``, ``"cosine"``, ``"sigmoid"`` or ``"scaled_linear"``; append ``"+ztsnr"`` for zero terminal SNR."""
        base, _, suffix = name.partition("+")
        makers = {"linear": cls.linear, "cosine": cls.cosine, "sigmoid": cls.sigmoid, "scaled_linear": cls.scaled_linear}
        if base not in makers or suffix not in ("", "ztsnr"):
            raise ValueError(f"unknown schedule {name!r}; expected one of {sorted(makers)}, optionally with '+ztsnr'")
        schedule = makers[base](T, **kwargs)
        return schedule.rescale_zero_terminal_snr() if suffix else schedule

    def to_dict(self) -> dict:
        """The betas (all a schedule is), for storing in a checkpoint; rebuild with :meth:`from_dict`."""
        return {"betas": self.betas.copy(), "zero_terminal_snr": np.array(self.zero_terminal_snr)}

    @classmethod
    def from_dict(cls, d: dict) -> "NoiseSchedule":
        return cls(np.asarray(d["betas"]), zero_terminal_snr=bool(d.get("zero_terminal_snr", False)))


# ---- helpers -------------------------------------------------------------------------------------------------
def _check_T(T) -> None:
    if not isinstance(T, (int, np.integer)) or isinstance(T, bool) or T < 1:
        raise ValueError(f"T (the number of diffusion steps) must be a positive integer, got {T!r}")


def _check_open_unit(schedule: str, **values) -> None:
    """Each value must be a number in (0, 1): a beta is a variance that adds some noise and keeps some signal."""
    for name, v in values.items():
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not 0.0 < v < 1.0:
            raise ValueError(f"{schedule}: {name} must be a number in (0, 1), got {v!r}. A beta is the variance one "
                             "step adds: above 0 to add noise, below 1 to keep some signal.")


def _betas_from_alpha_bar(alpha_bar, T: int, max_beta: float) -> np.ndarray:
    """beta_t = min(1 - alpha_bar((t+1)/T) / alpha_bar(t/T), max_beta) for a continuous-time alpha_bar(u), u in [0, 1]."""
    u = np.arange(T + 1, dtype=np.float64) / T
    ab = alpha_bar(u)
    return np.minimum(1.0 - ab[1:] / ab[:-1], max_beta)


def _warn_if_not_noise(schedule: NoiseSchedule, name: str) -> NoiseSchedule:
    ab_end = schedule.alphas_cumprod[-1]
    if ab_end > TERMINAL_ALPHA_BAR_WARNING:
        warnings.warn(
            f"{name} schedule with T={schedule.T} ends at alpha_bar = {ab_end:.3g} (terminal SNR "
            f"{schedule.terminal_snr:.3g}): x_(T-1) is far from pure noise, so sampling from N(0, I) starts from the "
            "wrong distribution. Use more steps, larger betas, scale_to_T=True, or .rescale_zero_terminal_snr().",
            stacklevel=3,
        )
    return schedule
