"""The forward chain and what a denoiser learns: q(x_t | x_0), the posterior q(x_{t-1} | x_t, x_0), targets and loss.

Notation follows Ho et al. (2020) with tinydiff's index convention (see :mod:`tinydiff.schedules`): ``t in {0..T-1}``,
``ab = alpha_bar_t = schedule.alphas_cumprod[t]``, and the clean data come "before step 0".

Every function takes ``t`` as an integer array of shape (B,), one step per sample, and broadcasts the per-step
coefficients over the trailing axes of ``x``: for images (B, C, H, W) a coefficient becomes (B, 1, 1, 1).

A denoiser can be trained to output one of three equivalent things (``prediction_type``):

- ``"epsilon"``: the noise eps that was added (Ho et al. 2020);
- ``"sample"``: the clean data x0 itself;
- ``"v_prediction"``: v = sqrt(ab) eps - sqrt(1 - ab) x0 (Salimans & Ho 2022), well behaved at both ends of the chain.

Given x_t, any one of them determines the others, and the score grad_x log q(x_t) = -eps / sqrt(1 - ab) (Tweedie).
The conversions are written once, for any process x_t = alpha x0 + sigma eps, in :mod:`tinydiff.processes`; here
alpha = sqrt(ab) and sigma = sqrt(1 - ab).
"""

from __future__ import annotations

import numpy as np

from tinydiff.processes import check_prediction, from_x0_eps, to_x0_eps
from tinydiff.schedules import NoiseSchedule

__all__ = [
    "PREDICTION_TYPES", "check_timesteps", "q_sample", "q_step", "q_chain", "q_posterior", "convert_prediction", "predict_x0_and_eps",
    "training_target", "diffusion_loss", "min_snr_weights", "sample_timesteps", "gaussian_kl", "elbo_weights",
]

PREDICTION_TYPES = ("epsilon", "sample", "v_prediction")
_CONVERTIBLE = PREDICTION_TYPES + ("score",)


# ---- checking inputs -------------------------------------------------------------------------------------------
def check_timesteps(schedule: NoiseSchedule, t, batch: int | None = None) -> np.ndarray:
    """Return ``t`` as an int64 array of shape (B,) after checking it is integer and inside {0, ..., T-1}.

    A Python int or 0-d array is broadcast to ``batch`` samples.
    """
    t_arr = np.asarray(t)
    if not (np.issubdtype(t_arr.dtype, np.integer) and t_arr.dtype != np.bool_):
        raise TypeError(
            f"time steps t must be integers in {{0, ..., T-1}}, got dtype {t_arr.dtype}. "
            "Use e.g. rng.integers(0, schedule.T, size=B) or np.full(B, t, dtype=np.int64)."
        )
    if t_arr.ndim == 0 and batch is not None:
        t_arr = np.full(batch, int(t_arr), dtype=np.int64)
    if t_arr.ndim != 1:
        raise ValueError(f"t must have shape (B,), one time step per sample; got shape {t_arr.shape}")
    if batch is not None and t_arr.shape[0] != batch:
        raise ValueError(f"t has {t_arr.shape[0]} time steps but x has batch size {batch}; expected t of shape ({batch},)")
    if t_arr.size and (t_arr.min() < 0 or t_arr.max() >= schedule.T):
        bad = t_arr[(t_arr < 0) | (t_arr >= schedule.T)][0]
        raise IndexError(
            f"time step t={int(bad)} is out of range for a schedule with T={schedule.T}: "
            f"tinydiff indexes steps 0..{schedule.T - 1} (step 0 is the first noising step)"
        )
    return t_arr.astype(np.int64, copy=False)


def _check_x(name: str, x) -> np.ndarray:
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"{name} must be a float array, got dtype {x.dtype}")
    if x.ndim < 1:
        raise ValueError(f"{name} must have a batch axis: shape (B, ...), got a scalar")
    return x


def _check_same_shape(name_a: str, a: np.ndarray, name_b: str, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{name_b} must have the same shape as {name_a}: {name_a} is {a.shape}, {name_b} is {b.shape}")


def _check_prediction_type(prediction_type: str, allowed=PREDICTION_TYPES) -> None:
    check_prediction(prediction_type, allowed)  # the one validator, in tinydiff.processes


def _coef(values: np.ndarray, t: np.ndarray, like: np.ndarray) -> np.ndarray:
    """values[t] reshaped to (B, 1, ..., 1) so it broadcasts over ``like``'s trailing axes, in ``like``'s dtype."""
    return values[t].reshape((-1,) + (1,) * (like.ndim - 1)).astype(like.dtype, copy=False)


# ---- the forward chain -----------------------------------------------------------------------------------------
def q_sample(schedule: NoiseSchedule, x0, t, noise) -> np.ndarray:
    """Sample x_t ~ q(x_t | x_0) in one jump (Ho et al. 2020, eq. 4)::

        x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps,   eps ~ N(0, I)

    Args:
        x0: (B, ...) clean data.  t: (B,) integer steps.  noise: eps, same shape as x0.
    Returns:
        x_t: (B, ...) in x0's dtype.
    """
    x0 = _check_x("x0", x0)
    noise = _check_x("noise", noise)
    _check_same_shape("x0", x0, "noise", noise)
    t = check_timesteps(schedule, t, x0.shape[0])
    ### BEGIN SOLUTION ex1_1: q_sample — return x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps, one t per sample (chapter 1, 2 points)
    # returns: x_t (B, ...), the shape and dtype of x0
    sqrt_ab = _coef(np.sqrt(schedule.alphas_cumprod), t, x0)           # (B, 1, ..., 1)
    sqrt_1m_ab = _coef(np.sqrt(1.0 - schedule.alphas_cumprod), t, x0)  # (B, 1, ..., 1)
    return sqrt_ab * x0 + sqrt_1m_ab * noise
    ### END SOLUTION


def q_step(schedule: NoiseSchedule, x_prev, t, noise) -> np.ndarray:
    """One step of the Markov chain, x_t ~ q(x_t | x_{t-1}) (Ho et al. 2020, eq. 2)::

        x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) eps

    For t = 0, ``x_prev`` is the clean data.
    """
    x_prev = _check_x("x_prev", x_prev)
    noise = _check_x("noise", noise)
    _check_same_shape("x_prev", x_prev, "noise", noise)
    t = check_timesteps(schedule, t, x_prev.shape[0])
    ### BEGIN SOLUTION ex1_2: debugging one step of the chain — q_step has a planted bug; the tests show what it breaks (chapter 1, 1 point)
    # returns: x_t (B, ...), the shape of x_prev
    #! return _coef(np.sqrt(schedule.alphas), t, x_prev) * x_prev + _coef(schedule.betas, t, x_prev) * noise
    return _coef(np.sqrt(schedule.alphas), t, x_prev) * x_prev + _coef(np.sqrt(schedule.betas), t, x_prev) * noise
    ### END SOLUTION


def q_chain(schedule: NoiseSchedule, x0, rng: np.random.Generator, t_end: int | None = None) -> np.ndarray:
    """Run the Markov chain step by step from the data through step ``t_end`` (default T-1).

    Returns:
        trajectory: (t_end + 2, B, ...): ``trajectory[0]`` is x0 and ``trajectory[k + 1]`` is x_k.
    """
    x0 = _check_x("x0", x0)
    t_end = schedule.T - 1 if t_end is None else int(check_timesteps(schedule, t_end, 1)[0])
    trajectory = np.empty((t_end + 2,) + x0.shape, dtype=x0.dtype)
    trajectory[0] = x0
    for t in range(t_end + 1):
        noise = rng.standard_normal(x0.shape).astype(x0.dtype, copy=False)
        trajectory[t + 1] = q_step(schedule, trajectory[t], np.full(x0.shape[0], t), noise)
    return trajectory


def q_posterior(schedule: NoiseSchedule, x0, x_t, t) -> tuple[np.ndarray, np.ndarray]:
    """The forward process run backwards when x0 is known: q(x_{t-1} | x_t, x_0) (Ho et al. 2020, eq. 6-7)::

        mean     = sqrt(ab_{t-1}) beta_t / (1 - ab_t) * x_0  +  sqrt(alpha_t) (1 - ab_{t-1}) / (1 - ab_t) * x_t
        variance = beta_t (1 - ab_{t-1}) / (1 - ab_t)                    ( <= beta_t, since ab_{t-1} >= ab_t )

    At t = 0 (ab_{-1} = 1) the mean is x0 and the variance 0: the step before step 0 is the data itself.

    Returns:
        mean: (B, ...) in x_t's dtype.  variance: (B, 1, ..., 1), broadcastable to mean.
    """
    x0 = _check_x("x0", x0)
    x_t = _check_x("x_t", x_t)
    _check_same_shape("x0", x0, "x_t", x_t)
    t = check_timesteps(schedule, t, x0.shape[0])
    ab, ab_prev, beta = schedule.alphas_cumprod[t], schedule.alphas_cumprod_prev[t], schedule.betas[t]  # (B,) float64
    ### BEGIN SOLUTION ex3_1: posterior mean and variance — the coefficients of x0 and x_t in the mean, and the variance, of q(x_{t-1} | x_t, x0) (chapter 3, 3 points)
    # defines: coef_x0, coef_xt, variance, each (B,) float64 (one value per t)
    coef_x0 = np.sqrt(ab_prev) * beta / (1.0 - ab)                   # (B,)
    coef_xt = np.sqrt(1.0 - beta) * (1.0 - ab_prev) / (1.0 - ab)     # (B,)   alpha_t = 1 - beta_t
    variance = beta * (1.0 - ab_prev) / (1.0 - ab)                   # (B,)
    ### END SOLUTION
    shape = (-1,) + (1,) * (x_t.ndim - 1)                            # (B, 1, ..., 1)
    mean = coef_x0.reshape(shape).astype(x_t.dtype) * x0 + coef_xt.reshape(shape).astype(x_t.dtype) * x_t
    return mean, variance.reshape(shape).astype(x_t.dtype)


# ---- what the network predicts ---------------------------------------------------------------------------------
def predict_x0_and_eps(schedule: NoiseSchedule, x_t, t, prediction, prediction_type: str):
    """Turn a model output of any type into the pair (x0, eps) that it implies, given x_t = sqrt(ab) x0 + sqrt(1-ab) eps.

        epsilon:       x0 = (x_t - sqrt(1 - ab) eps) / sqrt(ab)
        sample:        eps = (x_t - sqrt(ab) x0) / sqrt(1 - ab)
        v_prediction:  x0 = sqrt(ab) x_t - sqrt(1 - ab) v,    eps = sqrt(1 - ab) x_t + sqrt(ab) v
        score:         eps = -sqrt(1 - ab) * score, then as epsilon

    (The v formulas divide by nothing, which is why v-prediction suits zero-terminal-SNR schedules.)
    """
    _check_prediction_type(prediction_type, _CONVERTIBLE)
    x_t = _check_x("x_t", x_t)
    prediction = _check_x("prediction", prediction)
    _check_same_shape("x_t", x_t, "prediction", prediction)
    t = check_timesteps(schedule, t, x_t.shape[0])
    if prediction_type in ("epsilon", "score") and np.any(schedule.alphas_cumprod[t] == 0.0):
        raise ValueError(
            f"cannot recover x0 from a {prediction_type} prediction at a step where alpha_bar = 0 (zero terminal SNR, "
            f"t = {schedule.T - 1}): x_t is pure noise there and says nothing about x0. "
            "Train with prediction_type='v_prediction' (or 'sample') for zero-terminal-SNR schedules."
        )
    sqrt_ab = _coef(np.sqrt(schedule.alphas_cumprod), t, x_t)             # alpha of tinydiff.processes
    sqrt_1m_ab = _coef(np.sqrt(1.0 - schedule.alphas_cumprod), t, x_t)    # sigma
    return to_x0_eps(x_t, prediction, prediction_type, sqrt_ab, sqrt_1m_ab)


def convert_prediction(schedule: NoiseSchedule, x_t, t, prediction, from_type: str, to_type: str) -> np.ndarray:
    """Convert a model output between ``"epsilon"``, ``"sample"``, ``"v_prediction"`` and ``"score"``.

        v     = sqrt(ab) eps - sqrt(1 - ab) x0        (Salimans & Ho 2022)
        score = -eps / sqrt(1 - ab)                    (Tweedie: E[x0 | x_t] = (x_t + (1 - ab) score) / sqrt(ab))
    """
    _check_prediction_type(to_type, _CONVERTIBLE)
    if from_type == to_type:
        _check_prediction_type(from_type, _CONVERTIBLE)
        return np.asarray(prediction)
    if from_type in ("epsilon", "score") and to_type in ("epsilon", "score"):  # no x0 needed: works at ab = 0 too
        x_t = _check_x("x_t", x_t)
        t = check_timesteps(schedule, t, x_t.shape[0])
        sqrt_1m_ab = _coef(np.sqrt(1.0 - schedule.alphas_cumprod), t, x_t)
        return -prediction / sqrt_1m_ab if to_type == "score" else -sqrt_1m_ab * prediction
    x0, eps = predict_x0_and_eps(schedule, x_t, t, prediction, from_type)
    t = check_timesteps(schedule, t, x0.shape[0])
    sqrt_ab = _coef(np.sqrt(schedule.alphas_cumprod), t, x0)
    sqrt_1m_ab = _coef(np.sqrt(1.0 - schedule.alphas_cumprod), t, x0)
    return from_x0_eps(x0, eps, to_type, sqrt_ab, sqrt_1m_ab)


# ---- training ----------------------------------------------------------------------------------------------------
def sample_timesteps(schedule: NoiseSchedule, batch: int, rng: np.random.Generator) -> np.ndarray:
    """t ~ Uniform{0, ..., T-1}, shape (batch,), int64: the time steps of one training batch."""
    return rng.integers(0, schedule.T, size=batch, dtype=np.int64)


def training_target(schedule: NoiseSchedule, x0, t, noise, prediction_type: str = "epsilon") -> np.ndarray:
    """What the network should output for x_t = q_sample(schedule, x0, t, noise):

        epsilon: eps        sample: x0        v_prediction: sqrt(ab) eps - sqrt(1 - ab) x0
    """
    _check_prediction_type(prediction_type)
    x0 = _check_x("x0", x0)
    noise = _check_x("noise", noise)
    _check_same_shape("x0", x0, "noise", noise)
    t = check_timesteps(schedule, t, x0.shape[0])
    ### BEGIN SOLUTION ex3_2: training targets — return the target of each prediction type: eps, x0, or v = sqrt(ab) eps - sqrt(1 - ab) x0 (chapter 3, 2 points)
    # returns: the target (B, ...), the shape of x0
    if prediction_type == "epsilon":
        return noise
    if prediction_type == "sample":
        return x0
    return _coef(np.sqrt(schedule.alphas_cumprod), t, x0) * noise - _coef(np.sqrt(1 - schedule.alphas_cumprod), t, x0) * x0
    ### END SOLUTION


def min_snr_weights(schedule: NoiseSchedule, t, gamma: float, prediction_type: str = "epsilon") -> np.ndarray:
    """Min-SNR-gamma loss weights (Hang et al. 2023, eq. 7), shape (B,), float64.

    The weight that turns each prediction type's MSE into the x0-MSE clipped at SNR = gamma:

        sample: min(snr, gamma)      epsilon: min(snr, gamma) / snr      v_prediction: min(snr, gamma) / (snr + 1)

    (For epsilon at snr = 0 the limit, 1, is used.)
    """
    _check_prediction_type(prediction_type)
    if not gamma > 0:
        raise ValueError(f"min_snr_gamma must be positive (5 is the paper's choice), got {gamma!r}")
    t = check_timesteps(schedule, t)
    snr = schedule.snr[t]
    clipped = np.minimum(snr, gamma)
    if prediction_type == "sample":
        return clipped
    if prediction_type == "v_prediction":
        return clipped / (snr + 1.0)
    return np.where(snr <= gamma, 1.0, gamma / np.maximum(snr, gamma))


def diffusion_loss(schedule: NoiseSchedule, model_output, x0, t, noise, prediction_type: str = "epsilon",
                   min_snr_gamma: float | None = None) -> tuple[float, np.ndarray]:
    """The simple loss of Ho et al. (2020, eq. 14), for any prediction type, optionally min-SNR weighted::

        L = 1/B sum_b w_b * mean_i (model_output[b, i] - target[b, i])^2,    w_b = 1 without weighting

    Returns:
        loss: float.  grad: dL/d model_output, same shape and dtype as model_output (feed it to model.backward).
    """
    model_output = _check_x("model_output", model_output)
    target = training_target(schedule, x0, t, noise, prediction_type)
    _check_same_shape("target (x0)", target, "model_output", model_output)
    if not np.all(np.isfinite(model_output)):
        raise FloatingPointError(
            "the model output contains NaN or inf: training has diverged. "
            "Lower the learning rate, enable gradient clipping, or check the input scaling."
        )
    B = model_output.shape[0]
    per_sample = int(np.prod(model_output.shape[1:], dtype=np.int64))
    w = np.ones(B) if min_snr_gamma is None else min_snr_weights(schedule, t, min_snr_gamma, prediction_type)
    ### BEGIN SOLUTION ex6_2: the training loss and its gradient — L = 1/B sum_b w_b mean_i (out - target)^2 and dL/d out, in the dtype of the output (chapter 6, 2 points)
    # defines: loss (a Python float) and grad (B, ...), the shape and dtype of model_output
    diff = model_output - target                                                    # (B, ...)
    sq = np.square(diff, dtype=np.float64).reshape(B, -1).mean(axis=1)             # (B,) per-sample MSE
    loss = float(np.mean(w * sq))
    scale = (2.0 * w / (B * per_sample)).reshape((B,) + (1,) * (diff.ndim - 1))    # (B, 1, ..., 1)
    grad = diff * scale.astype(diff.dtype)                                          # dL/d output
    ### END SOLUTION
    return loss, grad


# ---- the ELBO ---------------------------------------------------------------------------------------------------
def gaussian_kl(mean1, var1, mean2, var2) -> np.ndarray:
    """KL( N(mean1, var1 I) || N(mean2, var2 I) ) per sample, summed over the trailing axes. Returns (B,).

        KL = 1/2 sum_i [ log(var2 / var1) + (var1 + (mean1_i - mean2_i)^2) / var2 - 1 ]
    """
    mean1, mean2 = np.asarray(mean1, dtype=np.float64), np.asarray(mean2, dtype=np.float64)
    var1 = np.broadcast_to(np.asarray(var1, dtype=np.float64), mean1.shape)
    var2 = np.broadcast_to(np.asarray(var2, dtype=np.float64), mean1.shape)
    kl = 0.5 * (np.log(var2 / var1) + (var1 + (mean1 - mean2) ** 2) / var2 - 1.0)
    return kl.reshape(kl.shape[0], -1).sum(axis=1)


def elbo_weights(schedule: NoiseSchedule, variance: str = "fixed_large") -> np.ndarray:
    """lambda_t, shape (T,): the ELBO's weight on the noise-prediction error (Ho et al. 2020, eq. 12)::

        KL( q(x_{t-1} | x_t, x0) || p(x_{t-1} | x_t) ) = const + lambda_t ||eps - eps_theta(x_t, t)||^2
        lambda_t = beta_t^2 / (2 sigma_t^2 alpha_t (1 - alpha_bar_t))

    where p has the mean of the posterior with x0 replaced by the model's estimate and the fixed variance sigma_t^2:
    beta_t (``"fixed_large"``) or the posterior variance beta_tilde_t (``"fixed_small"``). The "simple" loss replaces
    lambda_t by 1. At t = 0 the posterior variance is 0, so sigma_0^2 = beta_0 is used for both choices (Ho et al.'s
    decoder term L_0, with a Gaussian decoder).
    """
    if variance not in ("fixed_large", "fixed_small"):
        raise ValueError(f"unknown variance {variance!r}; expected 'fixed_large' or 'fixed_small'")
    sigma2 = schedule.betas.copy() if variance == "fixed_large" else schedule.posterior_variance.copy()
    sigma2[0] = schedule.betas[0]
    return schedule.betas**2 / (2.0 * sigma2 * schedule.alphas * (1.0 - schedule.alphas_cumprod))
