"""MLPTrainStep: MLPDenoiser's training step (forward, MSE, backward, clip, AdamW) with no allocation and few passes.

The layers in ``models/mlp.py`` are the readable path: each computes its part and caches it, and the optimiser loops
over the parameters. That costs, per step, a fresh array for every activation and gradient, a pass to add each bias,
one to apply GELU, one for the residual add, one for each bias gradient, and one AdamW call per parameter. At batch
32 those overheads are most of the step; at batch 1024 the extra passes over memory are. This object computes the
same numbers (float32 round-off apart: tests/test_mlp_step.py) as one routine over buffers allocated once:

    feats = [sin(s x f), cos(s x f), e_t]                                     (N, n_in)   written in place
    u_0 = feats W_in^T            h_0 = GELU(u_0 + b_in)                      gemm, then bias_gelu
    u_k = h_{k-1} W_k^T           h_k = h_{k-1} + GELU(u_k + b_k)             gemm, then bias_residual_gelu
                                  (both keep GELU'(u + b) in u's buffer: backward needs nothing else of u)
    out = h_K W_out^T + b_out;    L, dy = mse(out, target)
    dW_out = dy^T h_K;  db_out = sum dy;  dh = dy W_out
    for k = K..1:  dh <- dh + dskip (k < K);  dz = GELU'(u_k) dh, db_k = sum dz    (residual_)gelu_backward_bias
                   dW_k = dz^T h_{k-1};   dskip = dz W_k                         gemm, gemm
    dh <- dh + dskip;  dz = GELU'(u_0) dh, db_in = sum dz;   dW_in = dz^T feats
    then one pass of clip + AdamW over ONE flat array of all parameters      clip_adamw

(dL/dh_{k-1} = dh + dz W_k: the skip path and the block's path; the sum is formed in the next kernel's pass.)
Matrix products call BLAS directly with transpose flags (``kernels/gemm.py``): no transposed copy, no temporary.
The element-wise work is fused into the kernels of ``kernels/fused_mlp.py``.

The flat array: building the step moves every parameter, gradient and AdamW moment of the model and its optimiser
into one contiguous array each, and leaves in ``model.params``, ``model.grads`` and ``opt.state`` *views* of it under
the same names and shapes. So the Module protocol still holds (``model.forward``, ``model.backward``,
``state_dict``, ``load_state_dict``, the EMA and checkpoints see the same arrays), and clipping and AdamW become one
loop over P = 99k numbers instead of 11 calls. Build the step before anything else keeps references to the model's
arrays (an ``EMA``, another optimiser): they would hold the old arrays.

Covers the unconditional float32 MLPDenoiser (what ``Trainer`` trains on points); ``MLPTrainStep.supports(model)``
tells. Labels, float64 and gradient checks use the layers.
"""

from __future__ import annotations

import numpy as np

from tinydiff.models.mlp import MLPDenoiser
from tinydiff.nn.kernels import fused_mlp
from tinydiff.nn.kernels.gemm import gemm_blas as gemm


def _flatten(model, opt) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Move the model's parameters and gradients and the optimiser's moments into flat arrays (theta, grad, m, v),
    rebinding every dict entry to a view of them (values are copied over). Returns the four flat arrays."""
    params = model.parameters()
    sizes = [p.size for p in params.values()]
    offsets = np.cumsum([0] + sizes)
    flat = {name: np.empty(offsets[-1], np.float32) for name in ("theta", "grad", "m", "v")}

    def view(array_name, i, shape):
        return flat[array_name][offsets[i]:offsets[i + 1]].reshape(shape)

    index = {name: i for i, name in enumerate(params)}
    for prefix, module in _named_modules(model):
        for local in list(module.params):
            i = index[prefix + local]
            for d, array_name in ((module.params, "theta"), (module.grads, "grad")):
                new = view(array_name, i, d[local].shape)
                new[...] = d[local]
                d[local] = new
    opt.params, opt.grads = model.parameters(), model.gradients()
    for buffer in ("m", "v"):
        for name, old in opt.state[buffer].items():
            new = view(buffer, index[name], old.shape)
            new[...] = old
            opt.state[buffer][name] = new
    return flat["theta"], flat["grad"], flat["m"], flat["v"]


def _named_modules(module, prefix=""):
    yield prefix, module
    for name, child in module.named_children():
        yield from _named_modules(child, prefix + name + ".")


class MLPTrainStep:
    """The fused training step of an unconditional float32 ``MLPDenoiser`` optimised by ``opt`` (an ``AdamW``).

        step = MLPTrainStep(model, opt)                      # flattens model and optimiser state (see above)
        loss, out = step.loss_and_gradients(x_t, t, target)  # fills model.gradients(); out: (N, D), a buffer
        norm = step.clip_and_update(lr, max_norm=1.0)        # clip + AdamW; returns the norm before clipping

    ``loss_and_gradients`` gives the loss, output and gradients of ``mse_loss(model.forward(x_t, t), target)`` and
    ``model.backward(dy, input_grad=False)``. ``clip_and_update`` does ``clip_grad_norm`` then ``opt.step()`` (with
    ``opt.lr = lr``); if the norm is NaN or inf it changes nothing and returns it, so the caller can stop the run.
    """

    def __init__(self, model: MLPDenoiser, opt):
        if not self.supports(model):
            raise TypeError(f"MLPTrainStep: needs an unconditional float32 MLPDenoiser, got {type(model).__name__}"
                            f"{'' if not isinstance(model, MLPDenoiser) else f' (num_classes={model.num_classes}, dtype={model.dtype})'}"
                            "; train it with model.forward / model.backward instead")
        if not getattr(opt, "decoupled", False):
            raise TypeError(f"MLPTrainStep: the fused update is AdamW's; got {type(opt).__name__}")
        self.model, self.opt = model, opt
        self.theta, self.grad, self.m, self.v = _flatten(model, opt)
        self.kernels = fused_mlp.KERNELS
        self._n = None                                                 # batch size the buffers are allocated for

    @staticmethod
    def supports(model) -> bool:
        return isinstance(model, MLPDenoiser) and not model.num_classes and model.dtype == np.float32

    def _allocate(self, n: int) -> None:
        """Buffers for batch size n (reallocated only when n changes)."""
        m = self.model
        D, H, K = m.dim, m.input.out_features, len(m.blocks)
        half = len(m.x_embed.freqs)
        self._n = n
        self.args = np.empty((n, D, half), np.float32)                 # s x_d f_j
        self.sin, self.cos = np.empty_like(self.args), np.empty_like(self.args)
        self.feats = np.empty((n, m.input.in_features), np.float32)    # [e_x, e_t]
        self.u = np.empty((K + 1, n, H), np.float32)                   # u = h W^T, then GELU'(u + b) for backward
        self.h = np.empty((K + 1, n, H), np.float32)                   # block outputs
        self.out, self.dy = np.empty((n, D), np.float32), np.empty((n, D), np.float32)
        self.dh, self.dz, self.dskip = (np.empty((n, H), np.float32) for _ in range(3))

    def _features(self, x, t) -> None:
        """feats = [Fourier features of x, time sinusoids of t]: what MLPDenoiser.forward feeds its first layer."""
        m = self.model
        np.multiply((m.x_embed.scale * x)[:, :, None], m.x_embed.freqs, out=self.args)   # (N, D, half)
        np.sin(self.args, out=self.sin)                                                  # NumPy's vectorised sin
        np.cos(self.args, out=self.cos)
        if len(m._t_table) <= t.max(initial=0):
            m._time_features(t)                                          # grow the model's table of time sinusoids
        self.kernels["place_features"](self.sin, self.cos, m._t_table, t, self.feats)

    def loss_and_gradients(self, x, t, target) -> tuple[float, np.ndarray]:
        """x: (N, D) float32 points, t: (N,) int steps, target: (N, D). Returns (loss, out (N, D))."""
        x, t, _ = self.model._check(x, t, None)
        x = np.asarray(x, np.float32)
        target = np.asarray(target, np.float32)
        if len(x) != self._n:
            self._allocate(len(x))
        m, k = self.model, self.kernels
        u, h, dh, dz, dskip = self.u, self.h, self.dh, self.dz, self.dskip
        self._features(x, t)
        # forward
        gemm(self.feats, m.input.params["weight"], u[0], trans_b=True)                  # u_0 = feats W_in^T
        k["bias_gelu"](u[0], m.input.params["bias"], h[0])                            # h_0 = GELU(u_0 + b)
        for i, block in enumerate(m.blocks):
            lin = block.linear
            gemm(h[i], lin.params["weight"], u[i + 1], trans_b=True)                  # u = h W^T
            k["bias_residual_gelu"](u[i + 1], lin.params["bias"], h[i], h[i + 1])    # h' = h + GELU(u + b)
        out = m.output
        gemm(h[-1], out.params["weight"], self.out, trans_b=True)
        self.out += out.params["bias"]                                                # out = h W^T + b
        loss = k["mse"](self.out, target, self.dy)                                    # L, dy
        # backward
        gemm(self.dy, h[-1], out.grads["weight"], trans_a=True)                      # dW_out = dy^T h
        np.sum(self.dy, axis=0, out=out.grads["bias"])
        gemm(self.dy, out.params["weight"], dh)                                       # dh = dy W_out
        first = True
        for i in reversed(range(len(m.blocks))):
            lin = m.blocks[i].linear
            if first:                                                                 # dz = GELU'(u) dh, db
                k["gelu_backward_bias"](u[i + 1], dh, dz, lin.grads["bias"])
            else:                                                                     # the same after dh += dskip
                k["residual_gelu_backward_bias"](u[i + 1], dh, dskip, dz, lin.grads["bias"])
            first = False
            gemm(dz, h[i], lin.grads["weight"], trans_a=True)                         # dW = dz^T h
            gemm(dz, lin.params["weight"], dskip)                                     # dskip = dz W (h's 2nd path)
        if first:
            k["gelu_backward_bias"](u[0], dh, dz, m.input.grads["bias"])
        else:
            k["residual_gelu_backward_bias"](u[0], dh, dskip, dz, m.input.grads["bias"])
        gemm(dz, self.feats, m.input.grads["weight"], trans_a=True)                   # dW_in = dz^T feats
        return float(loss), self.out

    def clip_and_update(self, lr: float, max_norm: float) -> float:
        """Clip the global gradient norm to ``max_norm`` and take one AdamW step at ``lr``; return the norm before."""
        opt = self.opt
        opt.lr = lr
        norm = self.kernels["clip_adamw"](self.theta, self.grad, self.m, self.v, float(lr), float(opt.beta1),
                                          float(opt.beta2), float(opt.eps), float(opt.weight_decay),
                                          opt.step_count + 1, float(max_norm))
        if np.isfinite(norm):
            opt.step_count += 1
        return float(norm)
