"""Gradient checking: compare a module's hand-written backward with central finite differences, in float64.

Pick a fixed random projection r of the output and check the scalar L(x, theta) = sum(r * forward(x)). Then

    analytic:  dL/dx = backward(r)              dL/dtheta = module.gradients() after that backward
    numeric:   dL/dz_k ~ (L(z + eps e_k) - L(z - eps e_k)) / (2 eps)     for a coordinate z_k of an input or parameter

The central difference has error O(eps^2 f'''), so in float64 with eps = 1e-6 a correct backward agrees to about
1e-8 relative. We report, per tensor, the scale-aware relative error

    err = max_k |analytic_k - numeric_k| / max(max_k |analytic_k|, max_k |numeric_k|, atol)

over the checked coordinates (all of them for small tensors, a seeded random subset of ``max_coords`` for large ones).
Expect err < 1e-7 for a correct layer; err ~ 1 means the backward is wrong, not imprecise.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tinydiff.nn.module import Module


@dataclass
class GradCheckReport:
    """Relative error per tensor ("input0", "input1", ... and the qualified parameter names)."""

    errors: dict[str, float]
    rtol: float
    hints: dict[str, str] = field(default_factory=dict)   # a likely cause for each failing tensor

    @property
    def ok(self) -> bool:
        return all(e <= self.rtol for e in self.errors.values())

    def failures(self) -> dict[str, float]:
        return {k: e for k, e in self.errors.items() if e > self.rtol}

    def __str__(self) -> str:
        lines = [f"{'tensor':<30} rel. error   (threshold {self.rtol:.0e})"]
        for k, e in self.errors.items():
            lines.append(f"{k:<30} {e:.2e}   {'ok' if e <= self.rtol else 'FAIL'}")
        return "\n".join(lines)


def _loss(module, inputs, r) -> float:
    return float(np.sum(r * module.forward(*inputs)))


def _coords(size: int, max_coords: int, rng) -> np.ndarray:
    if size <= max_coords:
        return np.arange(size)
    return np.sort(rng.choice(size, max_coords, replace=False))


def central_differences(f, z, coords=None, eps: float = 1e-6) -> np.ndarray:
    """dL/dz_k ~ (L(z + eps e_k) - L(z - eps e_k)) / (2 eps), where L = f() is a scalar that reads the array z.

    z is nudged in place, one flat coordinate k at a time, and restored. ``coords``: the flat coordinates to
    differentiate (default: all of them, and the result has z's shape); otherwise the result follows their order."""
    flat = z.reshape(-1)
    if not np.shares_memory(flat, z):
        raise ValueError("central_differences: z must be a contiguous array (it is nudged in place)")
    ks = range(flat.size) if coords is None else coords
    out = np.empty(len(ks))
    for n, k in enumerate(ks):
        old = flat[k]
        flat[k] = old + eps
        up = f()
        flat[k] = old - eps
        down = f()
        flat[k] = old
        out[n] = (up - down) / (2 * eps)
    return out.reshape(z.shape) if coords is None else out


def _numeric(module, inputs, r, z, coords, eps) -> np.ndarray:
    """Central differences of L with respect to the flat coordinates ``coords`` of array z (modified in place)."""
    return central_differences(lambda: _loss(module, inputs, r), z, coords, eps)


def _rel_error(a, n, atol) -> float:
    scale = max(np.abs(a).max(initial=0.0), np.abs(n).max(initial=0.0), atol)
    return float(np.abs(a - n).max(initial=0.0) / scale)


def _hint(name: str, a: np.ndarray, n: np.ndarray, is_input: bool, params_ok: bool) -> str:
    """A likely cause for a mismatch between analytic (a) and numeric (n) gradients."""
    if not np.any(a) and np.any(n):
        return "the analytic gradient is all zeros: did backward fill it (self.grads[k][...] = ...)?"
    denom = float(n @ n)
    if denom > 0:
        c = float(a @ n) / denom                                         # best factor with a ~ c n
        if abs(c) > 1e-3 and np.allclose(a, c * n, rtol=1e-4, atol=1e-6 * np.abs(n).max()):
            return (f"the analytic gradient is {c:.4g} times the numeric one: a missing or extra constant factor "
                    "(a 1/N from a mean, a 2 from a square, or a sign)")
    if is_input:
        if params_ok:
            return ("input gradient wrong but parameter gradients right: check the chain rule through the "
                    "nonlinearity, and that backward returns dL/dx (not dL/dy)")
        return "check the chain rule from the output back to this input"
    if "bias" in name:
        return "did you sum over the batch axis (and every other axis the bias is broadcast over)?"
    if "weight" in name:
        return "check dW = dy^T x: the transpose, the order of the factors, and the sum over the batch"
    return "check the formula for this parameter's gradient"


def _locate_in_sequence(module: Module, errors: dict[str, float], rtol: float) -> str | None:
    """For a Sequential whose parameter gradients fail: the layers where the error can enter, as a hint.

    Gradients flow from the output down. A layer whose parameter gradients are right received a right gradient from
    above; a wrong backward in layer j spoils every gradient *below* j (the layers before it and the input), whatever
    their own formulas. So with k_fail the highest layer with a failing parameter and k_ok the next layer above it that
    has parameters (all right), the error enters in layers k_fail .. k_ok - 1, and nowhere else.
    """
    layers = getattr(module, "layers", None)
    if not isinstance(layers, list):
        return None
    failing = [int(k.split(".")[1]) for k, e in errors.items() if k.startswith("layers.") and e > rtol]
    if not failing:
        return None
    k_fail = max(failing)
    with_params = [i for i, layer in enumerate(layers) if i > k_fail and layer.parameters()]
    k_ok = with_params[0] if with_params else len(layers)
    names = ", ".join(f"layers.{i} ({type(layers[i]).__name__})" for i in range(k_fail, k_ok))
    above = f"layers.{k_ok}'s gradients are right" if k_ok < len(layers) else "no layer above it has parameters"
    if k_ok - k_fail == 1:
        return f"the error enters in {names} ({above}); everything below it inherits the wrong gradient"
    return (f"the error enters in one of {names}: {above}, and a wrong backward spoils every gradient below it, "
            "so the failing tensors here need not have wrong formulas. Check each candidate alone: "
            "check_module(model.layers[i], its input)")


def check_module(module: Module, *inputs, eps: float = 1e-6, rtol: float = 1e-6, atol: float = 1e-10,
                 max_coords: int = 60, seed: int = 0, verbose: bool = True) -> GradCheckReport:
    """Check ``module.backward`` against central differences for every float input and every parameter.

    The module must be built in float64 (``dtype=np.float64``); float inputs are converted to float64 copies, integer
    inputs (indices, time steps) are passed through and not checked. Put modules with randomness (Dropout) in eval
    mode first. Returns a ``GradCheckReport``; prints it when ``verbose``.
    """
    params = module.parameters()
    low = [k for k, p in params.items() if p.dtype != np.float64]
    if low:
        raise TypeError(f"check_module: parameters {low[:3]} are {params[low[0]].dtype}; build the module with "
                        "dtype=np.float64 for a gradient check (float32 rounding error swamps the finite differences)")
    # (seed, 1) not seed: a stream unlike default_rng(seed), so a test that draws its input from the same seed does not
    # get a projection r correlated with its input (that can make a normalisation's input gradient vanish by chance)
    rng = np.random.default_rng((seed, 1))
    xs = [np.array(x, dtype=np.float64) if np.asarray(x).dtype.kind == "f" else np.asarray(x) for x in inputs]

    grads_before = module.gradients()
    y = module.forward(*xs)
    r = rng.standard_normal(np.shape(y))                                 # L = sum(r * y)
    dxs = module.backward(r)
    if not isinstance(dxs, tuple):
        dxs = (dxs,)
    grads_after = module.gradients()
    rebound = [k for k in grads_before if grads_after[k] is not grads_before[k]]
    # judge the arrays held before forward: they are what an optimiser built from model.gradients() sees
    analytic_params = {k: g.copy() for k, g in grads_before.items()}

    errors, hints, pairs = {}, {}, {}
    for i, x in enumerate(xs):
        if x.dtype.kind != "f":
            continue
        name = f"input{i}"
        dx = dxs[i] if i < len(dxs) else None
        if dx is None:
            raise ValueError(f"check_module: backward returned no gradient for float {name}; return a tuple with one "
                             "entry per input (None only for integer inputs)")
        dx = np.asarray(dx, dtype=np.float64)
        if dx.shape != x.shape:
            raise ValueError(f"check_module: gradient for {name} has shape {dx.shape}, expected {x.shape}")
        coords = _coords(x.size, max_coords, rng)
        pairs[name] = (dx.reshape(-1)[coords], _numeric(module, xs, r, x, coords, eps), True)
    for k, p in params.items():
        coords = _coords(p.size, max_coords, rng)
        pairs[k] = (analytic_params[k].reshape(-1)[coords], _numeric(module, xs, r, p, coords, eps), False)

    for k, (a, n, _) in pairs.items():
        errors[k] = _rel_error(a, n, atol)
    params_ok = all(errors[k] <= rtol for k in params)
    located = _locate_in_sequence(module, errors, rtol)
    for k, (a, n, is_input) in pairs.items():
        if errors[k] > rtol:
            hints[k] = located or _hint(k, a, n, is_input, params_ok)
            if k in rebound:
                hints[k] = ("backward rebinds self.grads[...] instead of writing into it: use "
                            "self.grads[k][...] = value so the optimiser's references stay valid")
    report = GradCheckReport(errors, rtol, hints)
    if verbose:
        print(f"gradient check of {type(module).__name__}:\n{report}")
    return report


def assert_gradients_ok(module: Module, *inputs, **kwargs) -> GradCheckReport:
    """``check_module`` that raises AssertionError naming each failing tensor, its error, the threshold and a hint."""
    kwargs.setdefault("verbose", False)
    report = check_module(module, *inputs, **kwargs)
    if not report.ok:
        msgs = [f"grad of '{k}' wrong: relative error {e:.2e} (expected < {report.rtol:.0e}): {report.hints[k]}"
                for k, e in report.failures().items()]
        raise AssertionError(f"{type(module).__name__} failed the gradient check:\n  " + "\n  ".join(msgs))
    return report
