"""Losses, returning (loss, dL/dpred) so a training step reads ``loss, dy = mse_loss(...); model.backward(dy)``.

Mean squared error with optional per-sample weights w_b (B = pred.shape[0], n = elements per sample):

    L = (1/B) sum_b w_b * (1/n) sum_i (pred_bi - target_bi)^2          (w_b = 1 gives the plain mean)
    dL/dpred_bi = 2 w_b (pred_bi - target_bi) / (B n)
"""

from __future__ import annotations

import numpy as np


def mse_loss(pred, target, weights=None):
    """Weighted mean squared error. pred, target: (B, ...); weights: (B,) or None. Returns (loss: float, grad: like pred).

    The gradient has pred's dtype (float32 stays float32); the loss is a Python float.
    """
    pred = np.asarray(pred)
    target = np.asarray(target)
    if pred.shape != target.shape:
        raise ValueError(f"mse_loss: pred has shape {pred.shape} but target has {target.shape}; they must match "
                         "(broadcasting is refused here because it usually hides a bug)")
    if pred.ndim == 0:
        raise ValueError("mse_loss: expected a batch of shape (B, ...), got a scalar")
    B = pred.shape[0]
    n = pred.size // max(B, 1)
    dtype = pred.dtype if pred.dtype.kind == "f" else np.dtype(np.float64)
    diff = (pred - target).astype(dtype, copy=False)                    # (B, ...)
    per_sample = (diff * diff).reshape(B, -1).mean(axis=1)               # (B,)
    if weights is None:
        w = np.ones(B, dtype=dtype)
    else:
        w = np.asarray(weights, dtype=dtype)
        if w.shape != (B,):
            raise ValueError(f"mse_loss: weights must have shape (B,) = ({B},), one per sample; got {w.shape}")
    loss = float(np.mean(w.astype(np.float64) * per_sample))
    scale = (2.0 / (B * n)) * w.reshape((B,) + (1,) * (pred.ndim - 1))  # (B, 1, ..., 1)
    return loss, (scale * diff).astype(dtype, copy=False)
