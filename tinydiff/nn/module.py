"""The Module protocol: forward caches, backward consumes the cache, parameters live in flat named dicts.

There is no autograd in tinydiff. A layer is an object with two methods that sit together::

    y  = layer.forward(x)      # computes the output and caches what backward needs
    dx = layer.backward(dy)    # dL/dx from dL/dy, and fills layer.gradients() with dL/dparam

Parameters and their gradients are plain NumPy arrays held in two dicts, ``self.params`` and ``self.grads``, with the
same keys and shapes. ``parameters()`` and ``gradients()`` walk the tree of sub-modules and return *the live arrays*
under qualified names such as ``"blocks.0.linear.weight"``, so an optimiser can update them in place.

Conventions (every layer follows them):

- ``backward`` *overwrites* the gradients of the last forward (there is no zero_grad). A module used twice in one
  forward pass would lose the first use's cache: build two modules instead.
- Gradients are written into the preallocated arrays (``self.grads[name][...] = ...``), never rebound, so references
  that an optimiser holds stay valid.
- ``load_state_dict`` copies values into the existing arrays for the same reason.
- Parameters are created in ``dtype`` (float32 for training, float64 for gradient checks).

The dtype rule (one for every layer):

- A layer computes in one float dtype: its parameters' (or its ``dtype`` for a layer without parameters, such as
  ``SinusoidalEmbedding``). A float array of another precision going into ``forward`` raises ``DtypeError`` (a
  ``TypeError``) that names the layer the caller called, not one inside it, and says how to fix it: cast with
  ``x.astype(np.float32)`` or build the layer with ``dtype=np.float64``. Nothing is cast silently, so a float64
  gradient check can never run in float32 by accident, nor a float32 model quietly in float64. Arrays without a
  precision of their own (integers, booleans, Python lists) are converted to the layer's dtype.
- Composite layers (``Sequential``, ``ResBlock``, ``SelfAttention2d``) check at their entry, so the error names them,
  not the GroupNorm inside: a new layer starts its ``forward`` with ``x = self.check_dtype(x)``.
- Parameter-free layers (activations, ``Dropout``, ``Upsample``, ``AvgPool2d``) keep the input's float dtype.
- ``backward`` converts dL/dy to the layer's dtype (a loss may hand back float64 for a float32 output).
- Models (``MLPDenoiser``, ``UNet``, ``MNISTClassifier``) are the user-facing objects: they *cast* their inputs at
  their boundary (samplers pass float64 x_t to float32 networks); the denoisers return dL/dx in the input's dtype.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from tinydiff.errors import DtypeError


class Module:
    """Base class. Subclasses implement ``forward`` and ``backward`` and register parameters with ``add_param``."""

    def __init__(self):
        self.training = True
        self.params: dict[str, np.ndarray] = {}  # this module's own parameters (not its children's)
        self.grads: dict[str, np.ndarray] = {}   # same keys and shapes as params

    # ---- the two methods every layer writes --------------------------------------------------------------------
    def forward(self, *inputs):
        raise NotImplementedError(f"{type(self).__name__}.forward is not implemented")

    def backward(self, grad_output):
        raise NotImplementedError(f"{type(self).__name__}.backward is not implemented")

    def __call__(self, *inputs):
        return self.forward(*inputs)

    # ---- parameters ------------------------------------------------------------------------------------------
    def add_param(self, name: str, value: np.ndarray) -> np.ndarray:
        """Register ``value`` as a parameter with a zero gradient of the same shape and dtype."""
        value = np.ascontiguousarray(value)
        self.params[name] = value
        self.grads[name] = np.zeros_like(value)
        return value

    def named_children(self) -> Iterator[tuple[str, "Module"]]:
        """Sub-modules held as attributes, or in lists/tuples of modules (named ``attr.0``, ``attr.1``, ...)."""
        for name, value in vars(self).items():
            if isinstance(value, Module):
                yield name, value
            elif isinstance(value, (list, tuple)) and value and all(isinstance(v, Module) for v in value):
                for i, v in enumerate(value):
                    yield f"{name}.{i}", v

    def modules(self) -> Iterator["Module"]:
        """This module and every sub-module, depth first."""
        yield self
        for _, child in self.named_children():
            yield from child.modules()

    def _named(self, attr: str, prefix: str = "") -> dict[str, np.ndarray]:
        out = {prefix + k: v for k, v in getattr(self, attr).items()}
        for name, child in self.named_children():
            out.update(child._named(attr, prefix + name + "."))
        return out

    def parameters(self) -> dict[str, np.ndarray]:
        """Qualified name -> live parameter array, for this module and all sub-modules."""
        return self._named("params")

    def gradients(self) -> dict[str, np.ndarray]:
        """Qualified name -> live gradient array (same keys and shapes as ``parameters()``), from the last backward."""
        return self._named("grads")

    def compute_dtype(self) -> np.dtype | None:
        """The float dtype this module computes in: its ``dtype`` attribute, else its (first) parameter's; None for a
        parameter-free layer, which keeps its input's dtype."""
        dtype = getattr(self, "dtype", None)
        if dtype is not None:
            return np.dtype(dtype)
        for m in self.modules():
            for p in m.params.values():
                return p.dtype
        return None

    def check_dtype(self, x, name: str = "x", convert: bool = True) -> np.ndarray:
        """``x`` as an array in this module's dtype, under the dtype rule (module docstring): a float array of another
        precision raises DtypeError naming this module; integers, booleans, lists and Python numbers are converted
        (``convert=False`` leaves them alone: a Sequential may start with an Embedding, which takes integer indices)."""
        dtype = self.compute_dtype()
        typed = isinstance(x, np.ndarray)           # a list or a Python number has no precision of its own
        x = np.asarray(x)
        if dtype is None or x.dtype == dtype:
            return x
        if typed and x.dtype.kind in "fc":
            layer = type(self).__name__
            what = f"has {dtype.name} parameters" if self.parameters() else f"computes in {dtype.name}"
            raise DtypeError(
                f"{layer} {what} but {name} is {x.dtype.name}. Cast the input with "
                f"{name}.astype(np.{dtype.name}), or build the {layer} with dtype=np.{x.dtype.name}."
            )
        return x.astype(dtype) if convert else x

    def num_parameters(self) -> int:
        return sum(p.size for p in self.parameters().values())

    # ---- saving and loading ----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """A copy of every parameter under its qualified name (save it with ``np.savez``; no pickle needed)."""
        return {k: v.copy() for k, v in self.parameters().items()}

    def load_state_dict(self, state: dict[str, np.ndarray], strict: bool = True) -> None:
        """Copy ``state`` into the live parameter arrays. Shapes must match and values be finite (no NaN or inf);
        with ``strict`` the keys must match too. Nothing is copied unless every entry passes."""
        params = self.parameters()
        missing = sorted(set(params) - set(state))
        unexpected = sorted(set(state) - set(params))
        if strict and (missing or unexpected):
            raise KeyError(
                f"{type(self).__name__}.load_state_dict: keys do not match "
                f"(missing: {missing[:5]}{'...' if len(missing) > 5 else ''}, "
                f"unexpected: {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}). "
                "Was the checkpoint saved from a model with a different configuration?"
            )
        values = {name: np.asarray(state[name]) for name in params if name in state}
        for name, value in values.items():                      # check everything before copying anything
            if value.shape != params[name].shape:
                raise ValueError(
                    f"{type(self).__name__}.load_state_dict: '{name}' has shape {value.shape} in the state dict but "
                    f"{params[name].shape} in the model. Was the checkpoint saved from a model with a different "
                    "configuration?"
                )
        check_finite_state(f"{type(self).__name__}.load_state_dict", values)
        for name, value in values.items():
            params[name][...] = value

    # ---- modes -----------------------------------------------------------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        """Training mode (dropout active). Returns self."""
        for m in self.modules():
            m.training = mode
        return self

    def eval(self) -> "Module":
        """Evaluation mode (dropout off). Returns self."""
        return self.train(False)

    def __repr__(self) -> str:
        children = list(self.named_children())
        if not children:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"{type(self).__name__}("]
        for name, child in children:
            lines.append("  (" + name + "): " + repr(child).replace("\n", "\n  "))
        return "\n".join(lines) + "\n)"

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={tuple(v.shape)}" for k, v in self.params.items())


def check_finite_state(where: str, state: dict[str, np.ndarray]) -> None:
    """Raise ValueError naming the first entry of ``state`` that holds NaN or inf (weights, EMA or optimiser state
    from a run that diverged, or a corrupt file: loaded, they would make every output NaN)."""
    for name, value in state.items():
        value = np.asarray(value)
        if value.dtype.kind in "fc" and not np.all(np.isfinite(value)):
            raise ValueError(f"{where}: '{name}' holds {value.size - np.isfinite(value).sum()} NaN or inf value(s): "
                             "it comes from a run that diverged, or a corrupt file. Load an earlier checkpoint.")


class Sequential(Module):
    """Apply modules in order: ``y = m_n(...m_2(m_1(x)))``; backward runs them in reverse."""

    def __init__(self, *layers: Module):
        super().__init__()
        self.layers = list(layers)

    def forward(self, x):
        x = self.check_dtype(x, convert=False)      # here, so that a mismatch names the Sequential (module docstring)
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, grad_output):
        for layer in reversed(self.layers):
            grad_output = layer.backward(grad_output)
        return grad_output

    def __getitem__(self, i: int) -> Module:
        return self.layers[i]

    def __len__(self) -> int:
        return len(self.layers)
