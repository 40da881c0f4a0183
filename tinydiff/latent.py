"""Latent diffusion helpers: why the latent must be near unit variance, and a sampling chain seen through the decoder.

The forward process x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps was designed for data of variance ~1 (pixels
in [-1, 1]). For data of standard deviation sigma_data the signal-to-noise ratio at step t is

    SNR(t) = alpha_bar_t sigma_data^2 / (1 - alpha_bar_t)                (Kingma et al. 2021, eq. 2, per entry)

so latents with sigma_data = 0.1 are drowned 100x earlier in SNR than unit-variance ones: most of the schedule's steps
are spent on pure noise. Rombach et al. (2022, appendix G) rescale the latents by s = 1 / std(z) for this reason
(``VAE.fit_scale_factor``): s z has sigma_data = 1 and every schedule tuned for pixels fits it unchanged.
"""

from __future__ import annotations

import numpy as np


def data_snr(alpha_bar, data_std: float) -> np.ndarray:
    """SNR(t) = alpha_bar_t sigma_data^2 / (1 - alpha_bar_t) for each alpha_bar_t (any shape)."""
    alpha_bar = np.asarray(alpha_bar, dtype=np.float64)
    return alpha_bar * data_std ** 2 / (1.0 - alpha_bar)


def half_signal_step(alpha_bar, data_std: float) -> int:
    """The first step t at which SNR(t) <= 1 (signal and noise of equal power): where the forward process has
    destroyed half of what it can destroy. Scaling the data by 1 / sigma_data moves this step."""
    below = np.nonzero(data_snr(alpha_bar, data_std) <= 1.0)[0]
    return int(below[0]) if len(below) else len(np.asarray(alpha_bar))


def decode_chain(trained, trajectory, every: int = 1) -> np.ndarray:
    """Images (K, B, 1, 28, 28) in [0, 1]: the decoder applied to the x0 estimates of a latent sampling run
    (``trajectory.x0``, standardised latents) at every ``every``-th step; what the chain "means" as it goes."""
    x0 = np.asarray(trajectory.x0)[::every]                                  # (K, B, Z, 7, 7)
    return np.stack([trained.to_data(z) for z in x0])
