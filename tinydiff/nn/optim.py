"""Optimisers (SGD with momentum, Adam, AdamW), gradient clipping, a warm-up + cosine learning rate, and an EMA.

Every optimiser is built from the two live dicts a model exposes and updates the parameters in place::

    opt = AdamW(model.parameters(), model.gradients(), lr=1e-3)
    loss, dy = mse_loss(model.forward(x), y); model.backward(dy)
    clip_grad_norm(model.gradients(), 1.0)
    opt.lr = warmup_cosine_lr(opt.step_count, 1e-3, warmup_steps=100, total_steps=5000)
    opt.step()

``state_dict()`` is a flat name -> array dict (save it with ``np.savez``): the step count and one entry per state
buffer, named ``"<buffer>.<parameter name>"`` (``"m.blocks.0.weight"``). Loading it into an optimiser built for the same
model continues the run identically.
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import numpy as np

from tinydiff.nn.kernels.optim import adam_update_numba
from tinydiff.nn.module import Module, check_finite_state


class Optimizer:
    """Holds the live parameter and gradient dicts, per-parameter state buffers and the step count."""

    buffers: tuple[str, ...] = ()

    def __init__(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray], lr: float):
        if set(params) != set(grads):
            raise KeyError("optimiser: params and grads must have the same keys; pass model.parameters() and "
                           "model.gradients() of the same model")
        for k in params:
            if params[k].shape != grads[k].shape:
                raise ValueError(f"optimiser: '{k}' has shape {params[k].shape} but its gradient {grads[k].shape}")
        self.params, self.grads, self.lr = params, grads, lr
        self.step_count = 0
        self.state = {b: {k: np.zeros_like(p) for k, p in params.items()} for b in self.buffers}

    def step(self) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, np.ndarray]:
        out = {"step": np.array(self.step_count, dtype=np.int64)}
        for b, bufs in self.state.items():
            out.update({f"{b}.{k}": v.copy() for k, v in bufs.items()})
        return out

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        expected = {"step"} | {f"{b}.{k}" for b in self.state for k in self.params}
        if set(state) != expected:
            missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
            raise KeyError(f"{type(self).__name__}.load_state_dict: keys do not match (missing {missing[:4]}, "
                           f"unexpected {unexpected[:4]}): was it saved from another optimiser or model?")
        check_finite_state(f"{type(self).__name__}.load_state_dict", state)
        self.step_count = int(state["step"])
        for b, bufs in self.state.items():
            for k, v in bufs.items():
                v[...] = state[f"{b}.{k}"]


class SGD(Optimizer):
    """SGD with momentum (PyTorch's form) and optional L2 weight decay:

        g <- g + weight_decay * p;   u <- momentum * u + g;   p <- p - lr * u        (momentum = 0: plain SGD)
    """

    buffers = ("momentum",)

    def __init__(self, params, grads, lr: float = 0.01, momentum: float = 0.0, weight_decay: float = 0.0):
        super().__init__(params, grads, lr)
        self.momentum, self.weight_decay = momentum, weight_decay

    def step(self) -> None:
        self.step_count += 1
        for k, p in self.params.items():
            g = self.grads[k] + self.weight_decay * p if self.weight_decay else self.grads[k]
            u = self.state["momentum"][k]
            u *= self.momentum
            u += g
            p -= self.lr * u


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015). ``weight_decay`` here is the classic L2 penalty added to the gradient; for decay that
    does not pass through the adaptive scaling use AdamW. The update is the fused kernel ``adam_update_numba``
    (formulas in ``tinydiff.nn.kernels.optim``)."""

    buffers = ("m", "v")
    decoupled = False

    def __init__(self, params, grads, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0):
        super().__init__(params, grads, lr)
        self.beta1, self.beta2 = betas
        self.eps, self.weight_decay = eps, weight_decay

    def step(self) -> None:
        self.step_count += 1
        l2, wd = (0.0, self.weight_decay) if self.decoupled else (self.weight_decay, 0.0)
        for k, p in self.params.items():
            adam_update_numba(p, self.grads[k], self.state["m"][k], self.state["v"][k],
                              self.lr, self.beta1, self.beta2, self.eps, l2, wd, self.step_count)


class AdamW(Adam):
    """AdamW (Loshchilov & Hutter 2019): Adam plus decoupled weight decay p <- p - lr * weight_decay * p, applied
    outside the adaptive scaling (so every weight decays at the same rate)."""

    decoupled = True

    def __init__(self, params, grads, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.01):
        super().__init__(params, grads, lr, betas, eps, weight_decay)


# ---- clipping and schedules ------------------------------------------------------------------------------------------
def clip_grad_norm(grads, max_norm: float) -> float:
    """Scale all gradients in place so that their global L2 norm is at most ``max_norm``; return the norm before.

        total = sqrt(sum_k ||g_k||^2);   if total > max_norm:  g_k <- g_k * max_norm / total
    """
    arrays = list(grads.values()) if isinstance(grads, dict) else list(grads)
    ### BEGIN SOLUTION ex6_3: debugging gradient clipping — this clip_grad_norm has a planted bug; the tests show what it breaks (chapter 6, 2 points)
    # returns: the global norm before clipping (a float); the arrays of grads are scaled in place
    #! total = math.sqrt(sum(float(np.dot(g.reshape(-1), g.reshape(-1))) for g in arrays))
    #! if total > max_norm:
    #!     scale = max_norm / (total + 1e-12)
    #!     for g in arrays:
    #!         g = g * g.dtype.type(scale)
    #! return total
    total = math.sqrt(sum(float(np.dot(g.reshape(-1), g.reshape(-1))) for g in arrays))
    if total > max_norm:
        scale = max_norm / (total + 1e-12)
        for g in arrays:
            g *= g.dtype.type(scale)
    return total
    ### END SOLUTION


def warmup_cosine_lr(step: int, base_lr: float, warmup_steps: int, total_steps: int, min_lr: float = 0.0) -> float:
    """Learning rate at ``step`` (0-based): linear warm-up, then cosine decay to ``min_lr`` at ``total_steps``.

        step < W:        lr = base_lr * (step + 1) / W
        W <= step < T:   lr = min_lr + (base_lr - min_lr) * (1 + cos(pi * (step - W) / (T - W))) / 2
        step >= T:       lr = min_lr
    """
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    if step >= total_steps:
        return min_lr
    progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
    return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


# ---- exponential moving average of the weights -------------------------------------------------------------------
class EMA:
    """Shadow copies of a model's parameters, averaged over training (Polyak averaging; used by DDPM with 0.9999):

        shadow <- decay * shadow + (1 - decay) * p          after every optimiser step (``update()``)

    Evaluate with the averaged weights inside ``with ema.average_weights(): ...`` (or call ``swap()`` twice).
    """

    def __init__(self, model: Module, decay: float = 0.999):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA: decay must be in [0, 1), got {decay}")
        self.model, self.decay = model, decay
        self.params = model.parameters()
        self.shadow = {k: p.copy() for k, p in self.params.items()}
        self.num_updates = 0

    def update(self) -> None:
        self.num_updates += 1
        for k, p in self.params.items():
            s = self.shadow[k]
            s *= self.decay
            s += (1.0 - self.decay) * p

    def swap(self) -> None:
        """Exchange the model's weights and the shadow weights (in place; call again to swap back)."""
        for k, p in self.params.items():
            tmp = p.copy()
            p[...] = self.shadow[k]
            self.shadow[k][...] = tmp

    @contextmanager
    def average_weights(self):
        """Put the averaged weights into the model for the ``with`` block, then restore the training weights."""
        self.swap()
        try:
            yield self.model
        finally:
            self.swap()

    def state_dict(self) -> dict[str, np.ndarray]:
        out = {f"shadow.{k}": v.copy() for k, v in self.shadow.items()}
        out["num_updates"] = np.array(self.num_updates, dtype=np.int64)
        out["decay"] = np.array(self.decay)
        return out

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        for k in self.shadow:
            if f"shadow.{k}" not in state:
                raise KeyError(f"EMA.load_state_dict: no 'shadow.{k}' in the state: was it saved for another model?")
        check_finite_state("EMA.load_state_dict", state)
        for k, v in self.shadow.items():
            v[...] = state[f"shadow.{k}"]
        self.num_updates = int(state["num_updates"])
        self.decay = float(state.get("decay", self.decay))
