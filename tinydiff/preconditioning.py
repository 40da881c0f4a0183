"""Preconditioning: the score-based objectives ncsn and edm as one weighted regression (their entries in the
registry are in :mod:`tinydiff.objectives`).

Karras et al. (2022, Sec. 5 and Table 1) showed that DDPM, NCSN and their own EDM differ only in a few choices. The
network F is wrapped into a denoiser D that estimates x0 from x = x0 + sigma n (alpha = 1, sigma the noise level)::

    D(x; sigma) = c_skip(sigma) x + c_out(sigma) F(c_in(sigma) x; c_noise(sigma))                       (eq. 7)
    L = E_{sigma, x0, n} lambda(sigma) || D(x0 + sigma n; sigma) - x0 ||^2
      = E lambda(sigma) c_out(sigma)^2 || F(c_in x; c_noise) - (x0 - c_skip x) / c_out ||^2         (eq. 8)

so F is trained by a weighted MSE on the "effective target" (x0 - c_skip x) / c_out. A preconditioning is then: a
process (:mod:`tinydiff.processes`), how sigma is drawn in training, the four c's, lambda, and how the sampler reads
the wrapped network. tinydiff's (sigma_d: std of the standardised data, 1 per coordinate):

    objective  process      sigma in training               c_skip                c_out                c_in   lambda c_out^2
    ddpm       NoiseSchedule t ~ U{0..T-1} (diffusion.py)    the epsilon loss of Ho et al. 2020 (Trainer, unchanged)
    ncsn       VEProcess    ln sigma ~ U[ln s_min, ln s_max] 1                     sigma                *      1
    edm        EDMProcess   ln sigma ~ N(P_mean, P_std^2)    sd^2/(sigma^2+sd^2)   sigma sd/sqrt(..)    1/sqrt(sigma^2+sd^2)  1

    * NCSN (Song & Ermon 2019; VE column of Table 1) feeds x raw (c_in = 1); a Fourier-feature MLP cannot read
      points spread over sigma = 10, so tinydiff's ncsn uses EDM's c_in = 1/sqrt(sigma^2 + sd^2) (unit-variance input).

ncsn's F learns -n: the score is s(x, sigma) = (D - x) / sigma^2 = F / sigma, Song & Ermon (2020)'s "s(x, sigma) =
s(x) / sigma", and its loss is denoising score matching (Vincent 2011) weighted by lambda = sigma^2::

    sigma^2 || s(x, sigma) - (x0 - x) / sigma^2 ||^2 = || F + n ||^2        (:func:`dsm_loss` states it directly)

c_noise (the network's time input) is ln(sigma) / 4 in Table 1; any affine map of ln sigma is the same choice. The
MLP's sinusoidal time embedding was made for DDPM's integer steps 0..999, so tinydiff maps EDM's range
[ln 0.002, ln 80] onto them and rounds (:func:`time_input`: steps of 1% in sigma, finer than the network resolves).
"""

from __future__ import annotations

import numpy as np

from tinydiff.processes import EDMProcess, Process, VEProcess

__all__ = ["Preconditioning", "NCSN", "EDM", "PRECONDITIONINGS", "Preconditioned", "time_input", "edm_precondition",
           "dsm_loss", "sliced_score_matching_loss", "weighted_mse"]

TIME_STEPS = 1000   # the network's integer time input runs over 0..TIME_STEPS-1, like DDPM's
SIGMA_RANGE = (0.002, 80.0)   # the noise levels time_input maps onto 0..TIME_STEPS-1 (EDM's)


def time_input(sigma) -> np.ndarray:
    """c_noise as the network's integer time: round(999 (ln sigma - ln 0.002) / (ln 80 - ln 0.002)), clipped."""
    lo, hi = np.log(SIGMA_RANGE[0]), np.log(SIGMA_RANGE[1])
    u = (np.log(np.maximum(np.asarray(sigma, dtype=np.float64), 1e-30)) - lo) / (hi - lo)   # sigma = 0: step 0
    return np.clip(np.rint((TIME_STEPS - 1) * u), 0, TIME_STEPS - 1).astype(np.int64)


# ---- the losses ----------------------------------------------------------------------------------------------------
def weighted_mse(out, target, weight=None):
    """L = mean_b w_b mean_d (out - target)^2 and dL/dout (out, target: (B, ...), weight: (B,) or None)."""
    out = np.asarray(out)
    diff = out - np.asarray(target, dtype=out.dtype)                          # (B, ...)
    per_sample = np.mean(diff.reshape(len(diff), -1) ** 2, axis=1)            # (B,)
    w = np.ones(len(diff)) if weight is None else np.asarray(weight, dtype=np.float64)
    loss = float(np.mean(w * per_sample))
    scale = (2.0 * w / diff[0].size / len(diff)).reshape((-1,) + (1,) * (diff.ndim - 1))
    return loss, (scale * diff).astype(out.dtype), per_sample


def dsm_loss(score, x0, x, sigma):
    """Denoising score matching (Vincent 2011, eq. 14) with Song & Ermon's weight lambda(sigma) = sigma^2 (2019, eq. 6):

        L = mean_b sigma_b^2 || s(x_b) - grad log q(x_b | x0_b) ||^2 / 2,   grad log q(x | x0) = -(x - x0) / sigma^2

    score, x0, x: (B, D); sigma: (B,). Returns the loss (a float). Its minimiser is the score of the noisy data."""
    sigma = np.asarray(sigma, dtype=np.float64).reshape(-1, 1)                # (B, 1)
    ### BEGIN SOLUTION ex14_1: denoising score matching loss — L = mean_b sigma_b^2 || s(x_b) + (x_b - x0_b) / sigma_b^2 ||^2 / 2, the target being the score of q(x | x0) = N(x0, sigma^2 I) (chapter 14, 2 points)
    # returns: the loss, a float (score, x0, x: (B, D); sigma: (B, 1) here)
    target = -(x - x0) / sigma ** 2                                          # (B, D)
    return float(np.mean(0.5 * sigma[:, 0] ** 2 * np.sum((score - target) ** 2, axis=1)))
    ### END SOLUTION


def sliced_score_matching_loss(score, jacobian_vector, v):
    """Sliced score matching (Song et al. 2019, eq. 7), for a score model s(x) on clean data:

        L = E_v [ v^T (ds/dx) v + (v^T s)^2 / 2 ]     with v ~ N(0, I)

    score: (B, D) s(x); jacobian_vector: (B, D) the product (ds/dx) v; v: (B, D). It needs no noise, but a Jacobian
    product per projection: the extra backward pass that denoising score matching avoids."""
    return float(np.mean(np.sum(v * jacobian_vector, axis=1) + 0.5 * np.sum(v * score, axis=1) ** 2))


def edm_precondition(sigma, sigma_data: float):
    """Karras et al. (2022), Table 1, "ours" (derived in their App. B.6 from unit-variance input and target):

        c_in = 1 / sqrt(sigma^2 + sd^2)                  (the network's input has unit variance)
        c_skip = sd^2 / (sigma^2 + sd^2)                 (minimises the target's variance, eq. 131)
        c_out = sigma sd / sqrt(sigma^2 + sd^2)          (the effective target has unit variance, eq. 138)
        lambda = 1 / c_out^2 = (sigma^2 + sd^2) / (sigma sd)^2   (the loss weight makes lambda c_out^2 = 1, eq. 144)

    Returns (c_skip, c_out, c_in, lambda), each shaped like sigma."""
    sigma = np.asarray(sigma, dtype=np.float64)
    ### BEGIN SOLUTION ex16_1: EDM preconditioning — c_skip, c_out, c_in and the loss weight lambda of Karras et al. (2022), Table 1 (chapter 16, 3 points)
    # returns: (c_skip, c_out, c_in, lam), four float64 arrays shaped like sigma (lam = inf where sigma = 0)
    sd2, s2 = sigma_data ** 2, sigma * sigma
    with np.errstate(divide="ignore"):                                       # lambda = inf at sigma = 0
        lam = (s2 + sd2) / (s2 * sd2)
    return sd2 / (s2 + sd2), sigma * sigma_data / np.sqrt(s2 + sd2), 1.0 / np.sqrt(s2 + sd2), lam
    ### END SOLUTION


# ---- the objectives -----------------------------------------------------------------------------------------------
class Preconditioning:
    """The c's, sigma distribution and process of one objective (see the module docstring). Subclasses set them.

    name: the objective's key in :data:`tinydiff.objectives.OBJECTIVES` (``TrainConfig.objective``).
    prediction_type: what :class:`Preconditioned` returns to the samplers ("sample" = D, or "score").
    """

    name = ""
    prediction_type = "sample"

    def __init__(self, sigma_min: float, sigma_max: float, sigma_data: float = 1.0):
        if not 0 < sigma_min < sigma_max or sigma_data <= 0:
            raise ValueError(f"{self.name}: need 0 < sigma_min < sigma_max and sigma_data > 0; got sigma_min="
                             f"{sigma_min}, sigma_max={sigma_max}, sigma_data={sigma_data}")
        self.sigma_min, self.sigma_max, self.sigma_data = float(sigma_min), float(sigma_max), float(sigma_data)

    @classmethod
    def from_config(cls, config) -> "Preconditioning":
        """The objective of a TrainConfig (its sigma_min / sigma_max / sigma_data, None meaning the default)."""
        kw = {k: getattr(config, k, None) for k in ("sigma_min", "sigma_max", "sigma_data")}
        return cls(**{k: v for k, v in {**cls.DEFAULTS, **{k: v for k, v in kw.items() if v is not None}}.items()})

    DEFAULTS: dict = {}

    def process(self) -> Process:
        raise NotImplementedError

    def draw_sigma(self, batch: int, rng) -> np.ndarray:
        """Training noise levels, (batch,)."""
        raise NotImplementedError

    def coefficients(self, sigma):
        """(c_skip, c_out, c_in, lambda c_out^2) for noise levels sigma (B,)."""
        raise NotImplementedError

    def training_batch(self, x0, rng):
        """One batch of the regression F(x_in, t_in) ~ target with per-sample weights (eq. 8).

        x0: (B, D) standardised data. Returns x_in (B, D), t_in (B,) int, target (B, D), weight (B,), sigma (B,)."""
        sigma = self.draw_sigma(len(x0), rng)                                   # (B,)
        n = rng.standard_normal(x0.shape).astype(x0.dtype)                      # (B, D)
        s = sigma.reshape((-1,) + (1,) * (x0.ndim - 1))
        x = x0 + s * n                                                          # x = x0 + sigma n (alpha = 1)
        c_skip, c_out, c_in, weight = (np.reshape(c, s.shape) if np.ndim(c) else c for c in self.coefficients(sigma))
        target = (x0 - c_skip * x) / c_out                                      # the effective target
        return (c_in * x).astype(x0.dtype), time_input(sigma), target.astype(x0.dtype), \
            np.reshape(weight, -1) * np.ones(len(x0)), sigma

    def denoise(self, network, x, sigma, y=None):
        """D(x; sigma) = c_skip x + c_out F(c_in x; c_noise): the x0 estimate, x (B, D), sigma (B,)."""
        s = np.asarray(sigma, dtype=np.float64).reshape((-1,) + (1,) * (np.ndim(x) - 1))
        c_skip, c_out, c_in, _ = self.coefficients(s)
        args = (np.asarray(c_in * x, dtype=np.float32), time_input(s.reshape(-1)))
        out = network(*args) if y is None else network(*args, y)
        return c_skip * x + c_out * np.asarray(out, dtype=np.float64)

    def to_dict(self) -> dict:
        return {"objective": self.name, "sigma_min": self.sigma_min, "sigma_max": self.sigma_max,
                "sigma_data": self.sigma_data}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(sigma_min={self.sigma_min:g}, sigma_max={self.sigma_max:g}, " \
               f"sigma_data={self.sigma_data:g})"


class NCSN(Preconditioning):
    """Noise-conditional score network (Song & Ermon 2019) on the VE process (Song et al. 2021, eq. 9).

    Training draws ln sigma uniformly between the geometric end points (the continuous limit of their L levels);
    the default sampler is predictor-corrector (Song et al. 2021, Alg. 2), annealed Langevin is Song & Ermon's own.
    sigma_max = 10: Song & Ermon (2020)'s technique 1 asks for the largest distance between two training points
    (about 5-7 for standardised 2D toy sets)."""

    name = "ncsn"
    prediction_type = "score"
    DEFAULTS = {"sigma_min": 0.01, "sigma_max": 10.0, "sigma_data": 1.0}

    def process(self) -> VEProcess:
        return VEProcess(self.sigma_min, self.sigma_max)

    def draw_sigma(self, batch, rng):
        return np.exp(rng.uniform(np.log(self.sigma_min), np.log(self.sigma_max), size=batch))

    def coefficients(self, sigma):
        # D = x + sigma F, so F's target is (x0 - x) / sigma = -n; c_in as EDM's (module docstring); lambda c_out^2 = 1
        sigma = np.asarray(sigma, dtype=np.float64)
        return 1.0, sigma, 1.0 / np.sqrt(sigma ** 2 + self.sigma_data ** 2), 1.0

    def score(self, network, x, sigma, y=None):
        """s(x, sigma) = (D(x; sigma) - x) / sigma^2 = F / sigma: the learned grad log p_sigma(x)."""
        s = np.asarray(sigma, dtype=np.float64).reshape((-1,) + (1,) * (np.ndim(x) - 1))
        return (self.denoise(network, x, sigma, y) - x) / s ** 2


class EDM(Preconditioning):
    """Karras et al. (2022): preconditioning of Table 1, log-normal sigma (P_mean = -1.2, P_std = 1.2), lambda = 1 /
    c_out^2, sampled by their Alg. 1/2 on the rho = 7 grid. 18 steps = 35 NFE (their CIFAR-10 setting)."""

    name = "edm"
    prediction_type = "sample"
    DEFAULTS = {"sigma_min": 0.002, "sigma_max": 80.0, "sigma_data": 1.0}
    P_mean, P_std = -1.2, 1.2

    def process(self) -> EDMProcess:
        return EDMProcess(self.sigma_min, self.sigma_max)

    def draw_sigma(self, batch, rng):
        return np.exp(self.P_mean + self.P_std * rng.standard_normal(batch))     # ln sigma ~ N(P_mean, P_std^2)

    def coefficients(self, sigma):
        c_skip, c_out, c_in, _ = edm_precondition(sigma, self.sigma_data)
        return c_skip, c_out, c_in, 1.0                                       # lambda c_out^2 = 1


class Preconditioned:
    """A trained F seen through its objective, as the samplers want it: ``model(x_t, t[, y])`` on the objective's
    process (t = sigma), returning ``objective.prediction_type`` (D for edm, the score for ncsn)."""

    def __init__(self, network, objective: Preconditioning):
        self.network, self.objective = network, objective
        self.num_classes = getattr(network, "num_classes", 0)
        self.null_label = getattr(network, "null_label", None)
        self.dim = getattr(network, "dim", None)

    @property
    def prediction_type(self) -> str:
        return self.objective.prediction_type

    def __call__(self, x_t, t, y=None):
        sigma = self.objective.process().noise_level(np.asarray(t, dtype=np.float64))   # t -> sigma (alpha = 1)
        if self.objective.prediction_type == "score":
            return self.objective.score(self.network, x_t, sigma, y)
        return self.objective.denoise(self.network, x_t, sigma, y)


PRECONDITIONINGS: dict[str, type[Preconditioning]] = {"ncsn": NCSN, "edm": EDM}


def preconditioning(config_or_name, **sigmas) -> Preconditioning:
    """The Preconditioning of a TrainConfig (its sigma_min / sigma_max / sigma_data, None meaning the default) or of
    an objective name (with sigma_* keyword overrides)."""
    name = config_or_name if isinstance(config_or_name, str) else config_or_name.objective
    if name not in PRECONDITIONINGS:
        raise ValueError(f"objective {name!r} has no preconditioning; expected one of {list(PRECONDITIONINGS)}")
    cls = PRECONDITIONINGS[name]
    if isinstance(config_or_name, str):
        return cls(**{**cls.DEFAULTS, **{k: v for k, v in sigmas.items() if v is not None}})
    return cls.from_config(config_or_name)
