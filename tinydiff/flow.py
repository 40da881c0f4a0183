"""Flow matching: learn the velocity field that carries noise to data along a chosen path of distributions.

A path x_t = alpha(t) x0 + sigma(t) eps (t = 0 data, t = 1 noise; :mod:`tinydiff.processes`) moves each pair
(x0, eps) with the *conditional velocity* (Lipman et al. 2023, eq. 15; Liu et al. 2023; Albergo & Vanden-Eijnden 2023)::

    u(x0, eps, t) = d x_t / dt = alpha'(t) x0 + sigma'(t) eps          linear interpolant (1 - t, t):  u = eps - x0

Averaging it over the pairs that pass through x gives the *marginal velocity* v(x, t) = E[u | x_t = x], whose ODE
dx/dt = v(x, t) carries the noise N(0, I) at t = 1 to the data at t = 0 with exactly the marginals of the path
(it satisfies the continuity equation d_t p_t + div(p_t v) = 0). v is unknown, but the conditional loss

    L_CFM = E_{t ~ U[0,1], x0, eps} || v_theta(x_t, t) - u(x0, eps, t) ||^2

has the same gradient as || v_theta - v ||^2 (Lipman et al. 2023, Thm. 2): E[u | x_t] is its minimiser, exactly as
E[eps | x_t] minimises DDPM's loss. With the same (alpha, sigma), v and the score are one object
(tinydiff.processes, f = alpha'/alpha, g^2 = d sigma^2/dt - 2 f sigma^2)::

    v(x, t) = f(t) x - g(t)^2 / 2 * grad log p_t(x)                    (the probability-flow ODE, Song et al. 2021)

so flow matching with a Gaussian path and diffusion on the same path learn the same field (Kingma & Gao 2023).

Couplings: the pairs (x0, eps) need not be independent. *Minibatch OT* (Tong et al. 2023; Pooladian et al. 2023)
re-pairs each batch by the assignment that minimises sum_i ||x0_i - eps_pi(i)||^2, which makes the learned paths
straighter. *Rectified flow* (Liu et al. 2023) pairs each noise z with the sample x = ODE(z) of a trained flow and
trains again on (x, z) ("reflow"); its *straightness* S = int_0^1 E ||(x_1 - x_0) - dx_t/dt||^2 dt is 0 exactly when
every path is a straight line at constant speed, and then one Euler step is exact.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from tinydiff import checkpoint as ckpt
from tinydiff.nn.optim import EMA, clip_grad_norm, warmup_cosine_lr
from tinydiff.objectives import COUPLINGS, get_objective
from tinydiff.rng import make_rng
from tinydiff.samplers import sample
from tinydiff.train import TrainConfig, Trainer

OT_BLOCK = 256   # minibatch OT pairs within blocks of this many points (ot_pairing: O(B^3))

__all__ = ["velocity_target", "flow_matching_loss", "ot_pairing", "straightness", "FlowNetwork", "FlowTrainer",
           "load_flow", "generate_pairs", "reflow", "measure_straightness", "COUPLINGS"]


# ---- the loss -----------------------------------------------------------------------------------------------------
def velocity_target(process, x0, eps, t) -> np.ndarray:
    """u = alpha'(t) x0 + sigma'(t) eps, the conditional velocity of each pair: x0, eps (B, ...), t (B,) float."""
    x0, eps = np.asarray(x0), np.asarray(eps)
    dtype = np.result_type(x0, eps)                                    # float32 batches stay float32
    ### BEGIN SOLUTION ex17_1: flow-matching target and loss — the conditional velocity u = alpha'(t) x0 + sigma'(t) eps of any process here, and the loss, its gradient and the per-sample losses in flow_matching_loss below (chapter 17, 3 points)
    # returns: u (B, ...) like x0, in dtype; process.derivatives(t) gives (d alpha/dt, d sigma/dt), each (B,) float64
    d_alpha, d_sigma = process.derivatives(np.asarray(t, dtype=np.float64))
    shape = (-1,) + (1,) * (x0.ndim - 1)
    return d_alpha.reshape(shape).astype(dtype) * x0 + d_sigma.reshape(shape).astype(dtype) * eps
    ### END SOLUTION


def flow_matching_loss(out, target):
    """L = 1/B sum_b mean_i (out - u)^2 and dL/d out = 2 (out - u) / (B * n_i); also the per-sample losses (B,).

    Returns (loss: float, grad: like out, per_sample: (B,) float64)."""
    out = np.asarray(out)
    ### BEGIN SOLUTION ex17_1
    # returns: (loss: float, grad: shape and dtype of out, per_sample: (B,) float64)
    diff = out - np.asarray(target, dtype=out.dtype)                                  # (B, ...)
    per_sample = np.square(diff, dtype=np.float64).reshape(len(out), -1).mean(axis=1)  # (B,)
    return float(per_sample.mean()), (2.0 / diff.size) * diff, per_sample
    ### END SOLUTION


def ot_pairing(x0, eps, block: int | None = None) -> np.ndarray:
    """The permutation pi minimising sum_i ||x0_i - eps_pi(i)||^2 (exact minibatch OT, Tong et al. 2023, Alg. 3):
    ``eps[pi]`` is the noise paired with ``x0``. x0, eps: (B, ...).

    The Hungarian algorithm (scipy's linear_sum_assignment) costs O(B^3): 5 ms at B = 256 but 0.5 s at 1024. With
    ``block`` = m, each run of m consecutive rows is paired within itself (OT on minibatches of m; the training loop
    uses 256, the minibatch size of Tong et al.'s 2D experiments)."""
    from scipy.optimize import linear_sum_assignment

    a = np.asarray(x0, dtype=np.float64).reshape(len(x0), -1)
    b = np.asarray(eps, dtype=np.float64).reshape(len(eps), -1)
    m = len(a) if block is None else int(block)
    pi = np.empty(len(a), dtype=np.int64)
    ### BEGIN SOLUTION ex18_2: minibatch OT pairing — in each block of m rows, the cost matrix of squared distances and the optimal assignment (scipy's linear_sum_assignment), written into pi (chapter 18, 2 points)
    # fills: pi (B,) int64, so that eps[pi[i]] is the noise paired with x0[i]; a, b: (B, D) float64, m: the block size
    for s in range(0, len(a), m):
        aa, bb = a[s:s + m], b[s:s + m]
        cost = np.sum(aa * aa, 1)[:, None] + np.sum(bb * bb, 1)[None, :] - 2.0 * aa @ bb.T   # squared distances
        rows, cols = linear_sum_assignment(cost)
        pi[s + rows] = s + cols
    ### END SOLUTION
    return pi


def straightness(ts, xs) -> float:
    """Liu et al. (2023), Def. 2.2: S = int_0^1 E ||(x_1 - x_0) - dx_t/dt||^2 dt, on a discretised trajectory.

    ts: (S+1,) descending times from 1 (noise) to 0 (data); xs: (S+1, B, ...) the states there (e.g. a
    ``Trajectory`` of an ODE sampler with many steps). dx/dt on each segment is (x_k - x_{k+1}) / (t_k - t_{k+1});
    x_1 - x_0 is the whole displacement per unit time. 0 for straight constant-speed paths.
    """
    ts, xs = np.asarray(ts, dtype=np.float64), np.asarray(xs, dtype=np.float64)
    xs = xs.reshape(len(xs), xs.shape[1], -1)                                     # (S+1, B, D)
    ### BEGIN SOLUTION ex18_1: debugging straightness — straightness has a planted bug; the tests show what it breaks (chapter 18, 2 points)
    # returns: S, a float >= 0 (xs: (S+1, B, D) here; 0 exactly when every path is a straight line at constant speed)
    #! total = (xs[0] - xs[-1]) / (ts[0] - ts[-1])                                   # (B, D)
    #! dt = ts[:-1] - ts[1:]                                                          # (S,) > 0
    #! slopes = (xs[:-1] - xs[1:]) / dt[:, None, None]                                # (S, B, D)
    #! dev = np.sum((total[None] - slopes) ** 2, axis=2).mean(axis=1)                 # (S,) E ||.||^2 per segment
    #! return float(np.mean(dev))
    total = (xs[0] - xs[-1]) / (ts[0] - ts[-1])                                   # (B, D)
    dt = ts[:-1] - ts[1:]                                                          # (S,) > 0
    slopes = (xs[:-1] - xs[1:]) / dt[:, None, None]                                # (S, B, D)
    dev = np.sum((total[None] - slopes) ** 2, axis=2).mean(axis=1)                 # (S,) E ||.||^2 per segment
    return float(np.sum(dev * dt) / (ts[0] - ts[-1]))
    ### END SOLUTION


# ---- a network that takes the process's time ------------------------------------------------------------------------
class FlowNetwork:
    """``model(x_t, t[, y])`` with t in the process's time [0, 1]: calls the network with the objective's time
    input (1000 t). Carries the network's ``dim`` / ``sample_shape``, ``num_classes`` and ``null_label``."""

    def __init__(self, network, objective="flow"):
        self.network, self.objective = network, get_objective(objective)
        for name in ("dim", "sample_shape", "num_classes", "null_label"):
            if hasattr(network, name):
                setattr(self, name, getattr(network, name))

    def __call__(self, x, t, y=None):
        return self.network(x, self.objective.time_input(t), y)


# ---- training -------------------------------------------------------------------------------------------------------
class FlowTrainer(Trainer):
    """The :class:`tinydiff.train.Trainer` loop with the flow-matching step (config.objective = "flow").

    ``pairs=(x0, z)`` (standardised data and the noise each came from) trains on fixed pairs instead of independent
    noise: rectified flow's reflow. ``init`` = (weights, standardizer) of a teacher starts from it (reflow does)."""

    objectives = ("flow",)

    def __init__(self, config: TrainConfig, out_dir=None, pairs=None, init=None):
        if config.coupling not in COUPLINGS:
            raise ValueError(f"unknown coupling {config.coupling!r}; expected one of {list(COUPLINGS)}")
        if config.reflow and pairs is None:
            raise ValueError("a reflow run trains on (noise, sample) pairs drawn from its teacher, which its checkpoint "
                             "does not keep: run `python -m tinydiff reflow` again instead of resuming it")
        super().__init__(config, out_dir)
        self.objective = get_objective(config.objective)
        self.process = self.objective.process(config)
        self.model.num_timesteps = None                  # continuous time: the network sees 1000 t, a float
        self.z = None
        if init is not None:
            weights, self.standardizer = init
            self.model.load_state_dict(weights)
            self.ema = EMA(self.model, config.ema_decay)          # the EMA starts from the teacher too
        if pairs is not None:
            x0, z = (np.asarray(a, dtype=np.float32) for a in pairs)
            if x0.shape != z.shape or x0.shape[1:] != self.x.shape[1:]:
                raise ValueError(f"reflow pairs must be two arrays of shape (N, {', '.join(map(str, self.x.shape[1:]))})"
                                 f", got {x0.shape} and {z.shape}")
            self.x, self.z, self.labels, self.num_classes = x0, z, None, 0

    def step(self) -> float:
        c, k, rng = self.config, self.step_count, self.rng
        idx = rng.integers(0, len(self.x), size=c.batch_size)
        x0 = self.x[idx]                                                         # (B, ...)
        if self.z is not None:
            eps = self.z[idx]                                                    # reflow: the pair's own noise
        else:
            eps = rng.standard_normal(x0.shape, dtype=np.float32)
            if c.coupling == "ot":
                eps = eps[ot_pairing(x0, eps, block=OT_BLOCK)]
        t = self.process.sample_t(c.batch_size, rng)                             # (B,) float in [0, 1]
        y = None
        if self.num_classes:
            y = np.where(rng.random(c.batch_size) < c.label_dropout, self.model.null_label, self.labels[idx])
        x_t = self.process.q_sample(x0, t, eps).astype(np.float32)               # (1 - t) x0 + t eps
        target = velocity_target(self.process, x0, eps, t)                      # eps - x0
        with np.errstate(over="ignore", invalid="ignore"):
            out = self.model.forward(x_t, self.objective.time_input(t), y)
            loss, grad, per_sample = flow_matching_loss(out, target)
            if not math.isfinite(loss):
                raise self._diverged(k, "the loss")
            self.model.backward(grad, input_grad=False)
            norm = clip_grad_norm(self.model.gradients(), c.grad_clip)
        if not math.isfinite(norm):
            raise self._diverged(k, "the gradient norm")
        self.opt.lr = warmup_cosine_lr(k, c.lr, c.warmup_steps, c.steps, c.min_lr)
        self.opt.step()
        self.ema.update()
        T = self.schedule.T                                                      # loss-vs-t buckets over [0, 1]
        self.log.record(k, loss, per_sample, np.minimum((t * T).astype(np.int64), T - 1), T, c.log_every)
        self.step_count += 1
        return loss

    def trained(self, use_ema: bool = True):
        """This run's model as a :class:`tinydiff.trained.TrainedDenoiser` that samples itself (EMA weights)."""
        m = super().trained(use_ema)
        m.network.num_timesteps = None
        m.network, m.process, m.prediction_type, m.objective = FlowNetwork(m.network), self.process, "velocity", "flow"
        return m


# ---- using a trained flow -------------------------------------------------------------------------------------------
def load_flow(path, use_ema: bool = True):
    """The :class:`tinydiff.trained.TrainedDenoiser` of a checkpoint trained with objective "flow" (its network a
    :class:`FlowNetwork`, its process the linear interpolant): ``load_flow(p).sample(1000, steps=4)``."""
    from tinydiff.trained import load_trained

    m = load_trained(path, use_ema=use_ema)
    if m.objective != "flow":
        raise ckpt.CheckpointError(f"{path} was trained with objective {m.objective!r}, not 'flow'")
    return m


def measure_straightness(model, process, n: int = 1000, steps: int = 100, seed=0) -> float:
    """Liu et al.'s straightness S of a flow model's ODE paths (:func:`straightness`), from ``n`` noises, on an Euler
    trajectory of ``steps`` steps in t (standardised units)."""
    _, traj = sample(model, (n, model.dim) if not hasattr(model, "sample_shape") else (n, *model.sample_shape),
                     process, method="euler-t", steps=steps, rng=seed, prediction_type="velocity",
                     return_trajectory=True)
    ts = np.where(traj.t < 0, process.t_min, traj.t)
    return straightness(ts, traj.x)


def generate_pairs(model, process, n: int, rng=None, method: str = "midpoint-t", steps: int = 50, y=None,
                   guidance_scale: float = 1.0, batch: int = 5000):
    """(x, z): n noises z ~ N(0, I) and the samples x = ODE(z) the flow carries them to (standardised units).
    Liu et al. (2023), Alg. 1 step 2 ("reflow"): the pairs of the next rectified flow."""
    rng = make_rng(rng)
    xs, zs = [], []
    shape = getattr(model, "sample_shape", None)
    for start in range(0, n, batch):
        m = min(batch, n - start)
        full = (m, *shape) if shape is not None else (m, model.dim)
        z = rng.standard_normal(full)
        yy = None if y is None else np.asarray(y)[start:start + m]
        xs.append(sample(model, full, process, method=method, steps=steps, x_T=z, prediction_type="velocity",
                         y=yy, guidance_scale=guidance_scale))
        zs.append(z)
    return np.concatenate(xs), np.concatenate(zs)


def reflow(checkpoint, out_dir=None, n_pairs: int = 10_000, steps: int | None = None, method: str = "midpoint-t",
           ode_steps: int = 25, seed: int = 0, progress: bool = True) -> FlowTrainer:
    """Rectified flow's reflow (Liu et al. 2023, Alg. 1): draw ``n_pairs`` (noise, sample) pairs from the flow in
    ``checkpoint`` with ``ode_steps`` steps of ``method``, and train a new flow on them, starting from its weights.
    Returns the trainer (its out_dir/model.npz is a flow checkpoint like any other; config.reflow counts rounds)."""
    m = load_flow(checkpoint)
    if m.num_classes:
        raise ValueError("reflow of a class-conditional flow is not supported: its pairs would need their labels")
    x, z = generate_pairs(m.network, m.process, n_pairs, rng=seed, method=method, steps=ode_steps)
    config = m.config
    new = TrainConfig.from_dict({**vars(config), "reflow": config.reflow + 1, "coupling": "independent", "seed": seed,
                                 **({"steps": steps} if steps is not None else {})})
    trainer = FlowTrainer(new, Path(out_dir) if out_dir is not None else None, pairs=(x, z),
                          init=(m.network.network.state_dict(), m.standardizer))
    trainer.train(progress)
    return trainer
