"""The exact denoiser of a Gaussian mixture: ground truth for the samplers, the likelihood and the chapters.

If the data are a Gaussian mixture, p(x0) = sum_k pi_k N(x0; mu_k, S_k), then every noisy marginal is one too. With
x_t = sqrt(ab) x0 + sqrt(1 - ab) eps (Ho et al. 2020, eq. 4)::

    q(x_t) = sum_k pi_k N(x_t; sqrt(ab) mu_k, C_k),      C_k = ab S_k + (1 - ab) I

and the best possible denoiser (the minimiser of the diffusion loss) has a closed form. Inside component k, x0 and x_t
are jointly Gaussian, so with the residual d_k = C_k^{-1} (x_t - sqrt(ab) mu_k)::

    E[x0  | x_t, k] = mu_k + sqrt(ab) S_k d_k             (Gaussian conditioning)
    E[eps | x_t, k] = sqrt(1 - ab) d_k                     (no division by sqrt(1 - ab): stable near ab = 1)
    grad log N_k(x_t) = -d_k

and the mixture weights them by the posterior responsibilities r_k(x_t) = P(k | x_t) = softmax_k(log pi_k + log N_k(x_t)),
computed with logsumexp. Each S_k is diagonalised once (S_k = U_k diag(l_k) U_k^T), so that C_k = U_k diag(ab l_k + 1 - ab)
U_k^T is inverted by a division, for any time and any dimension D.
"""

from __future__ import annotations

import numpy as np

from tinydiff.diffusion import PREDICTION_TYPES, check_timesteps
from tinydiff.processes import PREDICTIONS, check_prediction, from_x0_eps
from tinydiff.rng import make_rng
from tinydiff.schedules import NoiseSchedule

__all__ = ["GaussianMixture", "GaussianMixtureDenoiser"]

_LOG_2PI = np.log(2.0 * np.pi)


def logsumexp(a: np.ndarray, axis: int) -> np.ndarray:
    """log sum_k exp(a_k) = m + log sum_k exp(a_k - m), m = max_k a_k: no exp overflows (what scipy.special does)."""
    m = np.max(a, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    return np.squeeze(m, axis) + np.log(np.sum(np.exp(a - m), axis=axis))


def softmax(a: np.ndarray, axis: int) -> np.ndarray:
    """exp(a_k - m) / sum_j exp(a_j - m), m = max_k a_k: probabilities without overflow (a_k = -inf gives 0)."""
    e = np.exp(a - np.max(a, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


class GaussianMixture:
    """p(x) = sum_k weights[k] N(x; means[k], covs[k]): the data of the toy mixtures (``data.toy2d``) and of the tests.

    Args:
        weights: (K,) positive, summing to 1.  means: (K, D).  covs: (K, D, D) symmetric positive semi-definite
            (positive definite if you want ``log_prob`` of the clean data).
    """

    def __init__(self, weights, means, covs):
        self.weights = np.asarray(weights, dtype=np.float64)
        self.means = np.asarray(means, dtype=np.float64)
        self.covs = np.asarray(covs, dtype=np.float64)
        K = self.weights.shape[0] if self.weights.ndim == 1 else -1
        if K < 1 or self.means.ndim != 2 or self.means.shape[0] != K:
            raise ValueError(f"expected weights (K,) and means (K, D); got weights {self.weights.shape}, "
                             f"means {self.means.shape}")
        D = self.means.shape[1]
        if self.covs.shape != (K, D, D):
            raise ValueError(f"covs must have shape (K, D, D) = {(K, D, D)}, got {self.covs.shape}")
        if np.any(self.weights <= 0) or not np.isclose(self.weights.sum(), 1.0):
            raise ValueError(f"weights must be positive and sum to 1, got {self.weights} (sum {self.weights.sum():.6g})")
        if not np.allclose(self.covs, np.swapaxes(self.covs, 1, 2)):
            raise ValueError("covs must be symmetric matrices")
        self.eigvals, self.eigvecs = np.linalg.eigh(self.covs)  # S_k = U_k diag(l_k) U_k^T: (K, D), (K, D, D)
        if np.any(self.eigvals < -1e-12 * max(1.0, float(np.abs(self.eigvals).max()))):
            raise ValueError(f"covs must be positive semi-definite; smallest eigenvalue {self.eigvals.min():.3g}")
        self.eigvals = np.maximum(self.eigvals, 0.0)
        self.K, self.D = K, D

    @classmethod
    def from_params(cls, params) -> "GaussianMixture":
        """From any object with ``weights``, ``means`` and ``covs`` (e.g. ``toy2d.gaussian_mixture_params("8gaussians")``)."""
        return params if isinstance(params, cls) else cls(params.weights, params.means, params.covs)

    def marginal(self, alpha_bar: float) -> "GaussianMixture":
        """q(x_t) for x_t = sqrt(ab) x0 + sqrt(1 - ab) eps: means sqrt(ab) mu_k, covariances ab S_k + (1 - ab) I."""
        ab = float(alpha_bar)
        return GaussianMixture(self.weights, np.sqrt(ab) * self.means, ab * self.covs + (1.0 - ab) * np.eye(self.D))

    def sample(self, n: int, rng=None, return_labels: bool = False):
        """n points: k ~ Categorical(weights), x = mu_k + U_k diag(sqrt(l_k)) z.  Returns (n, D) [and labels (n,)]."""
        rng = make_rng(rng)
        k = rng.choice(self.K, size=int(n), p=self.weights).astype(np.int64)  # (n,)
        z = rng.standard_normal((int(n), self.D)) * np.sqrt(self.eigvals[k])  # (n, D)
        x = self.means[k] + np.einsum("nij,nj->ni", self.eigvecs[k], z)       # (n, D)
        return (x, k) if return_labels else x

    def log_prob(self, x) -> np.ndarray:
        """log p(x), shape (N,), for x of shape (N, D)."""
        x = self._flat(x)
        return logsumexp(_component_terms(self, x, np.ones(x.shape[0]))[0], axis=1)  # log sum_k pi_k N_k(x)

    def _flat(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim < 2 or int(np.prod(x.shape[1:])) != self.D:
            raise ValueError(f"expected points of shape (B, {self.D}) (or (B, ...) with {self.D} values per sample), "
                             f"got {x.shape}")
        return x.reshape(x.shape[0], self.D)  # (B, D)


def _component_terms(mix: GaussianMixture, x: np.ndarray, ab: np.ndarray):
    """For x: (B, D) at noise levels ab: (B,), the per-component quantities of q(x_t) = sum_k pi_k N(sqrt(ab) mu_k, C_k).

    Arrays are laid out component-first, (K, B, D), so that each rotation by U_k is one batched matmul.

    Returns:
        log_joint: (B, K) log pi_k + log N(x; sqrt(ab) mu_k, C_k).
        d: (K, B, D) C_k^{-1} (x - sqrt(ab) mu_k).
        c: (K, B, D) eigenvalues of C_k, ab l_k + 1 - ab.
        d_eig: (K, B, D) d in the eigenbasis of S_k, U_k^T d.
    """
    ab_ = ab[None, :, None]                                                # (1, B, 1)
    c = ab_ * mix.eigvals[:, None, :] + (1.0 - ab_)                        # (K, B, D)
    r = x[None] - np.sqrt(ab_) * mix.means[:, None, :]                     # (K, B, D)  x - sqrt(ab) mu_k
    r_eig = np.matmul(r, mix.eigvecs)                                      # U_k^T r, row-wise: (K, B, D)
    d_eig = r_eig / c                                                      # C_k^{-1} r in the eigenbasis
    log_joint = (np.log(mix.weights)[:, None] - 0.5 * np.sum(r_eig * d_eig, axis=2)
                 - 0.5 * np.sum(np.log(c), axis=2) - 0.5 * mix.D * _LOG_2PI)  # (K, B)
    d = np.matmul(d_eig, np.swapaxes(mix.eigvecs, 1, 2))                   # U_k d_eig: (K, B, D)
    return log_joint.T, d, c, d_eig


def _weighted(resp: np.ndarray, v: np.ndarray) -> np.ndarray:
    """sum_k resp[b, k] v[k, b, :] -> (B, D)."""
    return np.sum(resp.T[:, :, None] * v, axis=0)


class GaussianMixtureDenoiser:
    """The exact minimiser of the diffusion loss for Gaussian-mixture data, usable as ``model(x_t, t[, y])``.

    Args:
        mixture: a :class:`GaussianMixture` (or any object with weights, means, covs).
        schedule: the :class:`NoiseSchedule` that gives alpha_bar_t for integer t, or any continuous process of
            :mod:`tinydiff.processes` (EDM, VE, VP, the flow-matching interpolant) for float t.
        prediction_type: what ``__call__`` returns: "epsilon", "sample" (E[x0 | x_t]) or "v_prediction"; for a
            continuous process also "score" (grad log q(x_t)) and "velocity" (the exact flow-matching field).
        null_label: the label meaning "no condition" for classifier-free guidance (default K, one past the last
            component). With ``y`` given, ``y[b] = k`` conditions sample b on component k.

    ``calls`` counts the model evaluations (number of ``__call__``), which the benchmarks report as NFE.
    """

    def __init__(self, mixture, schedule: NoiseSchedule, prediction_type: str = "epsilon", null_label: int | None = None):
        discrete = isinstance(schedule, NoiseSchedule)
        check_prediction(prediction_type, PREDICTION_TYPES if discrete else PREDICTIONS)
        self.mixture = GaussianMixture.from_params(mixture)
        self.schedule = schedule
        self.prediction_type = prediction_type
        self.null_label = self.mixture.K if null_label is None else int(null_label)
        self.calls = 0

    def __call__(self, x_t, t, y=None) -> np.ndarray:
        """The optimal prediction of type ``prediction_type`` at times t: (B,), for x_t: (B, ...).

        t are integer steps of a NoiseSchedule, or float times of a continuous process (tinydiff.processes): there
        x_t = alpha x0 + sigma eps is divided by r = sqrt(alpha^2 + sigma^2) to reach the VP frame at
        ab = alpha^2 / r^2, where the posterior below is computed, and the output converted back.
        """
        x_t = np.asarray(x_t)
        self.calls += 1
        if isinstance(self.schedule, NoiseSchedule):
            t = check_timesteps(self.schedule, t, x_t.shape[0])
            return self.predict_at(x_t, self.schedule.alphas_cumprod[t], y)
        p = self.schedule
        t = np.broadcast_to(np.asarray(t, dtype=np.float64), (x_t.shape[0],))
        shape = (-1,) + (1,) * (x_t.ndim - 1)
        alpha, sigma = (v.reshape(shape) for v in p.alpha_sigma(t))
        r = np.hypot(alpha, sigma)
        post = self.posterior(x_t / r, p.alpha_bar(t), y)
        d_alpha, d_sigma = (v.reshape(shape) for v in p.derivatives(t)) if self.prediction_type == "velocity" \
            else (None, None)
        return from_x0_eps(post["x0"], post["eps"], self.prediction_type, alpha, sigma, d_alpha, d_sigma,
                           None if p.variance_preserving else r)

    # ---- continuous-time queries (any alpha_bar in [0, 1]) ----------------------------------------------------
    def posterior(self, x_t, alpha_bar, y=None) -> dict:
        """E[x0 | x_t], E[eps | x_t], the score and the responsibilities at noise level(s) alpha_bar (scalar or (B,)).

        Returns a dict of arrays: "x0", "eps", "score" shaped like x_t, "responsibilities" (B, K).
        """
        x_t = np.asarray(x_t)
        x = self.mixture._flat(x_t)                                           # (B, D)
        ab = np.broadcast_to(np.asarray(alpha_bar, dtype=np.float64), (x.shape[0],))
        log_joint, d, c, d_eig = _component_terms(self.mixture, x, ab)
        if y is not None:  # condition on the component: keep only k = y (the null label keeps all)
            y = np.asarray(y, dtype=np.int64).reshape(-1)
            keep = (y[:, None] == np.arange(self.mixture.K)[None]) | (y[:, None] == self.null_label)  # (B, K)
            if not np.all(keep.any(axis=1)):
                raise ValueError(f"labels must be in 0..{self.mixture.K - 1} or the null label {self.null_label}; got {y}")
            log_joint = np.where(keep, log_joint, -np.inf)
        resp = softmax(log_joint, axis=1)                                     # r_k(x_t): (B, K)
        m = self.mixture
        S_d = np.matmul(m.eigvals[:, None, :] * d_eig, np.swapaxes(m.eigvecs, 1, 2))  # S_k d_k: (K, B, D)
        x0 = _weighted(resp, m.means[:, None, :] + np.sqrt(ab)[None, :, None] * S_d)  # sum_k r_k (mu_k + sqrt(ab) S_k d_k)
        dbar = _weighted(resp, d)                                              # sum_k r_k d_k: (B, D)
        eps = np.sqrt(1.0 - ab)[:, None] * dbar
        out = {"x0": x0, "eps": eps, "score": -dbar}
        out = {k: v.reshape(x_t.shape).astype(x_t.dtype, copy=False) for k, v in out.items()}
        out["responsibilities"] = resp
        return out

    def predict_at(self, x_t, alpha_bar, y=None) -> np.ndarray:
        """The ``prediction_type`` output at continuous noise level(s) alpha_bar (scalar or (B,))."""
        p = self.posterior(x_t, alpha_bar, y)
        if self.prediction_type == "epsilon":
            return p["eps"]
        if self.prediction_type == "sample":
            return p["x0"]
        ab = np.broadcast_to(np.asarray(alpha_bar, dtype=np.float64), (len(p["x0"]),))
        ab = ab.reshape((-1,) + (1,) * (p["x0"].ndim - 1))
        return np.sqrt(ab) * p["eps"] - np.sqrt(1.0 - ab) * p["x0"]  # v = sqrt(ab) eps - sqrt(1 - ab) x0

    def eps_at(self, x_t, alpha_bar, y=None) -> np.ndarray:
        """E[eps | x_t] at continuous noise level(s) alpha_bar: what :mod:`tinydiff.likelihood` integrates."""
        return self.posterior(x_t, alpha_bar, y)["eps"]

    def score(self, x_t, t) -> np.ndarray:
        """grad_x log q(x_t) at integer steps t: (B,)."""
        x_t = np.asarray(x_t)
        t = check_timesteps(self.schedule, t, x_t.shape[0])
        return self.posterior(x_t, self.schedule.alphas_cumprod[t])["score"]

    def eps_divergence_at(self, x_t, alpha_bar) -> np.ndarray:
        """Exact divergence of E[eps | x_t] with respect to x_t, shape (B,) (unconditional).

        With eps = sqrt(1 - ab) sum_k r_k d_k, grad r_k = r_k (dbar - d_k) and grad d_k = C_k^{-1}::

            div eps = sqrt(1 - ab) [ sum_k r_k tr C_k^{-1} - ( sum_k r_k |d_k|^2 - |dbar|^2 ) ]
        """
        x = self.mixture._flat(x_t)
        ab = np.broadcast_to(np.asarray(alpha_bar, dtype=np.float64), (x.shape[0],))
        log_joint, d, c, _ = _component_terms(self.mixture, x, ab)
        resp = softmax(log_joint, axis=1)                                     # (B, K)
        dbar = _weighted(resp, d)                                              # (B, D)
        trace_p = np.sum(resp * np.sum(1.0 / c, axis=2).T, axis=1)             # sum_k r_k tr C_k^{-1}: (B,)
        spread = np.sum(resp * np.sum(d * d, axis=2).T, axis=1) - np.sum(dbar * dbar, axis=1)
        return np.sqrt(1.0 - ab) * (trace_p - spread)
