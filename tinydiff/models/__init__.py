"""Denoisers and judges built from tinydiff.nn: the MLP for points, the U-Net for images, the MNIST classifier.

Every denoiser has a config dataclass and a ``kind``; checkpoints store ``{"kind": ..., "config": {...}}`` and rebuild
the network with :func:`build_model`. A new model is one module plus one entry in :data:`MODELS`.
"""

from __future__ import annotations

from dataclasses import asdict

from tinydiff.models.mlp import MLPConfig, MLPDenoiser
from tinydiff.models.unet import UNet, UNetConfig

# kind -> (network class, its config dataclass). tinydiff.config.MODEL_KINDS lists the same keys without importing
# the networks (and Numba), for the command line.
MODELS = {
    "mlp": (MLPDenoiser, MLPConfig),
    "unet": (UNet, UNetConfig),
}


def build_model(kind: str, config, rng=0, dtype=None):
    """A fresh network of ``kind`` ("mlp" or "unet") from its config (the dataclass or a dict of its fields)."""
    if kind not in MODELS:
        raise ValueError(f"unknown model kind {kind!r}; expected one of {', '.join(MODELS)}")
    model_class, config_class = MODELS[kind]
    if not isinstance(config, config_class):
        config = config_class(**config)
    return model_class(config, rng=rng) if dtype is None else model_class(config, rng=rng, dtype=dtype)


def model_spec(model) -> dict:
    """``{"kind": ..., "config": {...}}``: what a checkpoint stores to rebuild ``model`` (meta/model)."""
    return {"kind": model.kind, "config": asdict(model.cfg)}


def model_from_spec(spec: dict, rng=0):
    """Rebuild from :func:`model_spec` output, or from an older checkpoint's bare kwargs dict (a UNet's has
    "channel_mults")."""
    if "kind" in spec and "config" in spec:
        return build_model(spec["kind"], spec["config"], rng=rng)
    return build_model("unet" if "channel_mults" in spec else "mlp", spec, rng=rng)
