"""Progressive distillation (Salimans & Ho 2022) of a flow-matching model: halve the number of sampling steps per round.

A teacher sampled with N Euler steps in t (step h = 1/N) is distilled into a student that takes N/2 steps of 2h and
lands where two teacher steps land. For a velocity model one Euler step is x' = x - 2h v, so the student's regression
target is the average velocity over the two teacher steps (Salimans & Ho's Alg. 2, written for velocities)::

    x_mid = x_t - h v_T(x_t, t),   x_{t-2h} = x_mid - h v_T(x_mid, t - h),   target = (x_t - x_{t-2h}) / (2h)

The student starts from the teacher's weights and is trained at the points x_t = (1 - t) x0 + t eps on its own grid
t in {2h, 4h, ..., 1}; then it becomes the teacher of the next round. log2(N) rounds reach one step.
"""

from __future__ import annotations

import copy
import math

import numpy as np

from tinydiff.flow import FlowNetwork, flow_matching_loss
from tinydiff.nn.optim import AdamW, clip_grad_norm, warmup_cosine_lr
from tinydiff.rng import make_rng

__all__ = ["distillation_target", "distill_round", "progressive_distillation"]


def distillation_target(teacher, x, t, step, y=None) -> np.ndarray:
    """(x_t - x_{t - step}) / step, x_{t - step} = two Euler steps of ``teacher`` (a model(x, t[, y]) in process
    time) of size step / 2. x: (B, D), t: (B,) float, step: the student's step (scalar or (B,))."""
    h = np.broadcast_to(np.asarray(step, dtype=np.float64) / 2, t.shape)                  # (B,)
    hh = h.reshape((-1,) + (1,) * (np.ndim(x) - 1))
    call = (lambda z, s: teacher(z, s)) if y is None else (lambda z, s: teacher(z, s, y))  # noqa: E731
    mid = x - hh * call(x, t)                                                               # first teacher step
    two = mid - hh * call(mid, t - h)                                                       # second teacher step
    return (x - two) / (2 * hh)


def distill_round(teacher, student_net, x_data, student_steps: int, iters: int = 1000, batch: int = 256,
                  lr: float = 1e-3, rng=None, objective: str = "flow"):
    """One round: ``student_net`` (a raw network, e.g. an MLPDenoiser, trained in place) learns to take
    ``student_steps`` Euler steps where ``teacher`` (any model(x, t) in process time: a FlowNetwork, or an exact
    field) takes twice as many. x_data: (N, D) standardised data. Returns the per-iteration losses."""
    rng = make_rng(rng)
    student_net.train()
    opt = AdamW(student_net.parameters(), student_net.gradients(), lr=lr)
    time_input = FlowNetwork(student_net, objective).objective.time_input
    losses = []
    for k in range(iters):
        x0 = x_data[rng.integers(0, len(x_data), size=batch)]
        eps = rng.standard_normal(x0.shape)
        t = rng.integers(1, student_steps + 1, size=batch) / student_steps           # the student's grid points
        x_t = (1 - t)[:, None] * x0 + t[:, None] * eps
        target = distillation_target(teacher, x_t, t, 1.0 / student_steps)
        out = student_net.forward(x_t.astype(np.float32), time_input(t))
        loss, grad, _ = flow_matching_loss(out, target)
        if not math.isfinite(loss):
            raise FloatingPointError(f"distillation diverged at iteration {k}: try a smaller lr (now {lr:g})")
        student_net.backward(grad, input_grad=False)
        clip_grad_norm(student_net.gradients(), 1.0)
        opt.lr = warmup_cosine_lr(k, lr, min(50, iters // 10), iters, lr / 100)
        opt.step()
        losses.append(loss)
    student_net.eval()
    return np.array(losses)


def progressive_distillation(teacher, student_net, x_data, teacher_steps: int = 16, until: int = 1,
                             iters: int = 1000, batch: int = 256, lr: float = 1e-3, rng=None, progress=print) -> dict:
    """Rounds teacher_steps -> teacher_steps/2 -> ... -> ``until`` Euler steps. ``teacher``: any model(x, t) in
    process time (a FlowNetwork, or an exact field); ``student_net``: the raw network the first student starts from
    (copied; e.g. the teacher's own network). Each student is the next round's teacher. Returns {steps: FlowNetwork}
    of the students: sample each with method="euler-t" and its number of steps."""
    if teacher_steps & (teacher_steps - 1) or until < 1:
        raise ValueError(f"teacher_steps must be a power of 2 and until >= 1, got {teacher_steps}, {until}")
    rng = make_rng(rng)
    students, n, net = {}, teacher_steps, student_net
    while n > until:
        n //= 2
        net = copy.deepcopy(net)
        losses = distill_round(teacher, net, x_data, n, iters, batch, lr, rng)
        students[n] = teacher = FlowNetwork(net)
        if progress:
            progress(f"distilled to {n} step(s): final loss {losses[-50:].mean():.4f}")
    return students
