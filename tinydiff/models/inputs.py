"""The checks every denoiser runs on its conditioning inputs: time steps t and class labels y (one helper, all models).

A denoiser eps_theta(x_t, t[, y]) takes, for a batch of B samples:

    t: (B,) integers in {0, ..., T-1}     (or one integer for the whole batch)   the step index (schedules.py: the
                                           index convention); T is the model's ``num_timesteps`` when it knows it;
       or (B,) floats >= 0                 for a model of a continuous process (flow matching's 1000 t)
    y: (B,) integers in {0, ..., K-1}     (or one integer, or None)               the class, K = ``num_classes``;
       or the null label K                                                        None and K both mean "no label"

The x checks differ by model (points or images) and stay with each model; these are the same for all of them.
"""

from __future__ import annotations

import numpy as np


def check_timesteps(model: str, t, batch: int, num_timesteps: int | None = None) -> np.ndarray:
    """t as an int64 array (B,): integers, one per sample (a scalar is broadcast), in 0..num_timesteps-1.

    ``model`` names the caller in the messages. With ``num_timesteps=None`` only t >= 0 is checked.
    """
    t = np.asarray(t)
    if t.dtype.kind not in "iu":
        raise ValueError(f"{model}: expected integer time steps t in 0..T-1, got dtype {t.dtype}. "
                         "Use np.full(B, t, dtype=np.int64) or rng.integers(0, T, size=B).")
    if t.ndim == 0:
        t = np.full(batch, int(t), dtype=np.int64)
    if t.shape != (batch,):
        raise ValueError(f"{model}: expected integer time steps t of shape ({batch},), one per sample, got {t.shape}")
    if t.size and t.min() < 0:
        raise ValueError(f"{model}: time steps must be >= 0, got {t.min()} (steps are indexed 0..T-1)")
    if num_timesteps is not None and t.size and t.max() >= num_timesteps:
        raise ValueError(f"{model}: time step {t.max()} is out of range for T = {num_timesteps}: steps are "
                         f"0..{num_timesteps - 1} (step 0 is the first noising step)")
    return t.astype(np.int64, copy=False)


def check_model_time(model: str, t, batch: int, num_timesteps: int | None = None, dtype=np.float64) -> np.ndarray:
    """The time input of a denoiser: integer steps (:func:`check_timesteps`), or, for a model not tied to a discrete
    schedule (``num_timesteps`` None), float times of a continuous process (flow matching feeds 1000 t): (B,),
    finite and >= 0, cast to the model's ``dtype`` (models cast at their boundary: nn.module's dtype rule)."""
    t = np.asarray(t)
    if t.dtype.kind != "f":
        return check_timesteps(model, t, batch, num_timesteps)
    if num_timesteps is not None:
        raise ValueError(f"{model}: got float times t but this model was trained on the integer steps "
                         f"0..{num_timesteps - 1} of a schedule; pass integer steps (continuous times are for "
                         "flow-matching models)")
    if t.ndim == 0:
        t = np.full(batch, float(t))
    if t.shape != (batch,):
        raise ValueError(f"{model}: expected times t of shape ({batch},), one per sample, got {t.shape}")
    if not np.all(np.isfinite(t)) or (t.size and t.min() < 0):
        raise ValueError(f"{model}: times must be finite and >= 0, got min {t.min()}")
    return t.astype(dtype, copy=False)


def check_labels(model: str, y, batch: int, num_classes: int, null_label: int) -> np.ndarray | None:
    """y as an int64 array (B,) of labels in 0..num_classes-1 or ``null_label`` (None and a scalar are broadcast);
    None for an unconditional model (``num_classes`` = 0), which refuses labels."""
    if not num_classes:
        if y is not None:
            raise ValueError(f"{model}: got labels y but the model is unconditional; build it with num_classes=K "
                             "(and train it with labels) to condition on a class")
        return None
    y = np.full(batch, null_label, dtype=np.int64) if y is None else np.asarray(y)
    if y.dtype.kind not in "iu":
        raise ValueError(f"{model}: expected integer labels y, got dtype {y.dtype}")
    if y.ndim == 0:
        y = np.full(batch, int(y), dtype=np.int64)
    if y.shape != (batch,):
        raise ValueError(f"{model}: expected labels y of shape ({batch},), got {y.shape}")
    bad = (y < 0) | ((y >= num_classes) & (y != null_label))
    if bad.any():
        raise ValueError(f"{model}: labels must be in 0..{num_classes - 1} (or the null label {null_label}, "
                         f"meaning 'no label'); got {y[bad][0]}")
    return y.astype(np.int64, copy=False)
